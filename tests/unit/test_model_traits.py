"""The starting admission rate travels like the other model traits: the registry entry -> the cpu
config.pbtxt (export) -> the gateway's traits, which never import the model code."""

from __future__ import annotations

import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as mc

from export.model_config import render_model_config
from export.serving import ServingConfig, load_serving
from imdsr.contract import SECONDS_PER_MPX_PARAM
from service.model_traits import ModelTraits, starting_rate
from service.settings import Settings
from training.models import get_variant, list_variants


@pytest.fixture(scope="module")
def cfg() -> ServingConfig:
    return load_serving()


def _traits(variant: str, target: str, cfg: ServingConfig) -> ModelTraits:
    """As the gateway gets them: Triton's JSON form of the rendered config.pbtxt."""
    m = text_format.Parse(render_model_config(variant, target, cfg), mc.ModelConfig())  # type: ignore[arg-type]
    config = json_format.MessageToDict(m, preserving_proto_field_name=True)
    return ModelTraits.from_config(m.name, config)


@pytest.mark.parametrize("variant", list_variants())
def test_a_cpu_model_starts_at_its_entry_s_rate(cfg: ServingConfig, variant: str) -> None:
    traits = _traits(variant, "cpu", cfg)
    assert traits.seconds_per_mpx == get_variant(variant).seconds_per_mpx
    assert starting_rate(variant, traits, Settings()) == get_variant(variant).seconds_per_mpx


def test_rlfn_is_no_longer_admitted_at_the_default_rate(cfg: ServingConfig) -> None:
    settings = Settings()
    rlfn = starting_rate("rlfn", _traits("rlfn", "cpu", cfg), settings)
    c16nla = starting_rate("c16nla", _traits("c16nla", "cpu", cfg), settings)
    assert rlfn < settings.default_seconds_per_mpx and c16nla / rlfn > 2


@pytest.mark.parametrize("target", ["gpu", "jetson"])
def test_an_accelerator_s_model_publishes_no_cpu_rate(cfg: ServingConfig, target: str) -> None:
    assert SECONDS_PER_MPX_PARAM not in render_model_config("c16nla", target, cfg)  # type: ignore[arg-type]
    traits = _traits("c16nla", target, cfg)
    assert traits.seconds_per_mpx is None
    assert starting_rate("c16nla", traits, Settings(default_seconds_per_mpx=0.02)) == 0.02


def test_the_operator_s_override_wins_and_a_bad_published_rate_is_ignored(cfg: ServingConfig) -> None:
    traits = _traits("rlfn", "cpu", cfg)
    assert starting_rate("rlfn", traits, Settings(seconds_per_mpx={"rlfn": 0.5})) == 0.5
    for bad in ("0", "-1", "inf", "nan", "fast"):
        published = ModelTraits.from_config("rlfn", {"parameters": {
            SECONDS_PER_MPX_PARAM: {"string_value": bad}}})
        assert published.seconds_per_mpx is None
        assert starting_rate("rlfn", published, Settings()) == Settings().default_seconds_per_mpx


@pytest.mark.parametrize("variant", list_variants())
@pytest.mark.parametrize("target", ["cpu", "gpu", "jetson"])
def test_every_model_says_when_to_pick_it_on_every_target(cfg: ServingConfig, variant: str,
                                                          target: str) -> None:
    """Issue 27: one line per model for a person choosing (GET /models, the page), from its entry."""
    line = get_variant(variant).use_when
    assert line and "\n" not in line and len(line) <= 200, variant
    assert _traits(variant, target, cfg).use_when == line


def test_the_jpeg_model_s_line_says_it_suits_compressed_photos() -> None:
    line = get_variant(Settings().jpeg_model).use_when.lower()
    assert "compressed" in line and "jpeg" in line
    assert "clean" in get_variant("c16nla").use_when
