"""IMDeception's peers: structure, golden outputs through the importer, refusals, registry."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from imdsr.cli import app
from tests.support.reference import CHECKPOINT_PREFIX, PEER_CHECKPOINTS, peer_golden, peer_layout, sin_weights
from training.models import create_model, get_variant, list_variants
from training.models.registry import _index, get_architecture
from training.summary import against_challenge, measure
from training.weights.ntire22 import import_published, published_layout, to_published
from training.weights.store import load_into, read_meta

runner = CliRunner()

# Every variant the challenge's table has a row for (NTIRE 2022 ESR report; the repository's
# figs/results.png), and every variant with a published checkpoint: from the registry's entries.
CHALLENGED = [v for v in list_variants() if get_variant(v).challenge is not None]
PUBLISHED = [v for v in list_variants() if get_variant(v).checkpoint]


def _save_pth(tmp_path: Path, variant: str) -> Path:
    file = PEER_CHECKPOINTS[variant]
    path = tmp_path / file
    torch.save({k: torch.from_numpy(v) for k, v in sin_weights(peer_layout(file)).items()}, path)
    return path


@pytest.mark.parametrize("variant", CHALLENGED)
def test_structure_matches_the_challenge_table(variant: str) -> None:
    spec = get_variant(variant)
    row = spec.challenge
    assert row is not None
    c = measure(create_model(variant), 256, 256)
    assert c.params == spec.paper_params and (c.params, c.flops) == (spec.params, spec.flops)
    # at the table's printed precision: params, FLOPs, activations and #conv (the challenge counts
    # the convs of the published code, which splits IMDeception's grouped ones)
    assert against_challenge(c, spec) == []


def test_a_differing_challenge_figure_is_named() -> None:
    spec = get_variant("rlfn")
    c = measure(create_model("rlfn"), 256, 256)
    assert spec.challenge is not None
    off = replace(spec, challenge=replace(spec.challenge, convs=40, flops_g=19.71))
    assert against_challenge(c, off) == ["FLOPs 19.70G here, 19.71G in the table",
                                         "#conv 39 here, 40 in the table"]


@pytest.mark.parametrize("variant", list(PEER_CHECKPOINTS))
def test_import_reproduces_the_reference_implementation(tmp_path: Path, variant: str) -> None:
    arch = get_variant(variant).arch
    dst = tmp_path / f"{variant}.safetensors"
    result = runner.invoke(app, ["weights", "import-ntire22", "--arch", arch,
                                 str(_save_pth(tmp_path, variant)), str(dst)])
    assert result.exit_code == 0, result.output
    assert f"variant {variant}," in result.output
    meta = read_meta(dst)
    assert (meta.variant, meta.scale) == (variant, 4)
    file = PEER_CHECKPOINTS[variant]
    assert meta.source.startswith(f"{CHECKPOINT_PREFIX[file]}:{file}:sha256=")
    model = create_model(variant).eval()
    load_into(model, dst, variant, 4)
    for x, y in peer_golden(PEER_CHECKPOINTS[variant]).values():
        with torch.inference_mode():
            out = model(torch.from_numpy(x)).numpy()
        assert out.shape == y.shape
        assert np.abs(out - y).max() < 1e-4 * max(1.0, float(np.abs(y).max()))


@pytest.mark.parametrize("variant", list(PEER_CHECKPOINTS))
def test_published_layout_is_the_checkpoint_s(variant: str) -> None:
    model = create_model(variant)
    assert list(published_layout(model, get_variant(variant).arch).items()) == peer_layout(
        PEER_CHECKPOINTS[variant])


@pytest.mark.parametrize("variant", PUBLISHED)
def test_every_published_variant_round_trips_through_its_layout(variant: str) -> None:
    torch.manual_seed(0)
    model = create_model(variant)
    arch = get_variant(variant).arch
    found, state = import_published(to_published(model, arch), arch)
    assert found == variant
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(state[name], tensor, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("variant", "mutate", "expected"),
    [
        ("rlfn", lambda c: c.pop("B3.esa.conv2.weight"), "missing tensors: B3.esa.conv2.weight"),
        ("efdn", lambda c: c.__setitem__("B5.c1_d.weight", torch.zeros(3)),
         "unexpected tensors: B5.c1_d.weight"),
        ("imdn", lambda c: c.__setitem__("model.2.weight", torch.zeros(48, 64, 1, 1)),
         "model.2.weight: expected [48, 64, 3, 3], got [48, 64, 1, 1]"),
    ],
    ids=["missing", "extra", "wrong-shape"],
)
def test_import_refuses_mismatches_naming_the_tensor(tmp_path: Path, variant, mutate, expected) -> None:
    src = _save_pth(tmp_path, variant)
    ckpt = torch.load(src, weights_only=True)
    mutate(ckpt)
    torch.save(ckpt, src)
    dst = tmp_path / "out.safetensors"
    result = runner.invoke(app, ["weights", "import-ntire22", "--arch", get_variant(variant).arch,
                                 str(src), str(dst)])
    assert result.exit_code == 2
    assert expected in result.output
    assert not dst.exists()


def test_import_refuses_another_architecture_s_checkpoint(tmp_path: Path) -> None:
    result = runner.invoke(app, ["weights", "import-ntire22", "--arch", "efdn",
                                 str(_save_pth(tmp_path, "rlfn")), str(tmp_path / "o.safetensors")])
    assert result.exit_code == 2
    assert "does not match the published efdn layout" in result.output
    result = runner.invoke(app, ["weights", "import-ntire22", "--arch", "swinir",
                                 str(_save_pth(tmp_path, "rlfn")), str(tmp_path / "o.safetensors")])
    assert result.exit_code == 2
    assert "unknown architecture 'swinir'" in result.output


def test_registry_names_every_architecture_and_triton_names() -> None:
    assert list_variants("imdn") == ["imdn", "imdn_nb7"]
    assert {get_variant(v).triton_name for v in list_variants()} >= {
        "imdeception_c16nla", "imdn", "imdn_nb7", "rlfn", "efdn"}


@pytest.mark.parametrize("variant", list_variants())
def test_registry_figures_are_the_measured_ones(variant: str) -> None:
    """The exporter publishes the registry's static params/FLOPs (no torch in the server images'
    export stage): they must be what the structure built here measures."""
    spec = get_variant(variant)
    c = measure(create_model(variant), 256, 256)
    assert (spec.params, spec.flops) == (c.params, c.flops)


@pytest.mark.parametrize("variant", list_variants())
def test_every_entry_has_a_starting_admission_rate(variant: str) -> None:
    """Admission starts from it until it has learnt the model's own; without one, a model is
    admitted at the gateway's default, whatever its speed (rlfn once was, at c16nla's)."""
    rate = get_variant(variant).seconds_per_mpx
    assert rate is not None and rate > 0


def test_an_entry_is_checked_when_the_registry_is_built() -> None:
    rlfn = get_architecture("rlfn")
    with pytest.raises(ValueError, match="'rlfn' registered twice"):
        _index((rlfn, rlfn))
    renamed = replace(rlfn, variants=(replace(rlfn.variants[0], name="fast"),))
    with pytest.raises(ValueError, match="must be 'rlfn' or start with 'rlfn_'"):
        _index((renamed,))


def test_model_summary_lists_every_variant_with_the_paper_s_figures() -> None:
    result = runner.invoke(app, ["model", "summary", "--height", "64", "--width", "64"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()
            if line.split() and line.split()[0] in list_variants()}
    assert list(rows) == list_variants()
    for variant, cells in rows.items():
        spec = get_variant(variant)
        assert cells[1] == spec.arch
        assert cells[2] == f"{spec.params:,}"  # the measured count (held above)
    assert "c12: the paper reports 198,000 parameters; the structure built here has 181,452." in result.output
    assert "counts at 256x256" in result.output


@pytest.mark.parametrize("variant", list_variants())
def test_every_variant_builds_from_its_entry_and_upscales_odd_sizes(variant: str) -> None:
    model = create_model(variant).eval()
    side = get_variant(variant).tiling.min_side  # the smallest window its entry says it runs
    for shape in ((max(17, side), max(23, side)), (side, side + 1)):
        with torch.inference_mode():
            y = model(torch.rand(1, 3, *shape))
        assert y.shape == (1, 3, 4 * shape[0], 4 * shape[1])
