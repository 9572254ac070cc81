"""Engine shapes by construction: every window the gateway can send lies inside the profile of
every target (cpu, gpu, jetson), and a tile that cannot fit is refused naming the largest that
does; the one tile choice (``choose_tile``) that the gateway, ``imdsr infer`` and the gRPC example
share."""

from __future__ import annotations

import itertools

import pytest

from export.model_config import model_config
from export.serving import ServingConfig, load_serving
from export.trt_plan import engine_profile
from imdsr.imaging.tiling import ALIGN, TilingRule, plan_axis, plan_tiles
from imdsr.imaging.windows import (
    WHOLE_IMAGE,
    TileTooLargeError,
    WindowLimits,
    WindowTooSmallError,
    choose_tile,
)
from service.model_traits import ModelTraits
from service.schemas import UpscaleOptions
from service.settings import Settings
from tests.support import ROOT
from training.models.registry import ARCHITECTURES

# Each target with the serving config its deployment uses (k8s/base = export/serving.toml).
TARGETS = {
    "cpu": ROOT / "export" / "serving.toml",
    "gpu": ROOT / "k8s" / "base" / "serving.toml",
    "jetson": ROOT / "k8s" / "overlays" / "jetson" / "serving.toml",
}
# Gateway settings as deployed: the defaults, and each overlay's tile/context.
GATEWAYS = {
    "cpu": Settings(),
    "gpu": Settings(),
    "jetson": Settings(tile=64),
}
# One variant of each architecture in the registry: each publishes its own tiling rule.
VARIANTS = [arch.variants[0].name for arch in ARCHITECTURES.values()]
_tile = UpscaleOptions.model_fields["tile"].metadata
REQUEST_TILES = range(next(m.ge for m in _tile if hasattr(m, "ge")),
                      next(m.le for m in _tile if hasattr(m, "le")) + 1, ALIGN)
# Image sides: every side up to a few windows, and the largest an input may have.
SIDES = [*range(1, 3 * 320 + 70), 2047, 2048, 4095, 4096]
LARGEST = max(SIDES)  # an image no rule runs whole: the tile is the requested or default one


def _published(cfg: ServingConfig, target: str, variant: str) -> ModelTraits:
    """What the gateway reads from Triton: the traits in the config.pbtxt export writes."""
    msg = model_config(variant, target, cfg)  # type: ignore[arg-type]
    params = {p["key"]: p["value"] for p in msg["parameters"]}
    return ModelTraits.from_config(msg["name"], {"parameters": params})


def _accepts(cfg: ServingConfig, target: str, variant: str):  # noqa: ANN202
    """What the target's model accepts: the TensorRT profile, or (cpu) the published limit."""
    limits = _published(cfg, target, variant).limits
    assert limits is not None
    if target == "cpu":
        return lambda b, h, w: 1 <= b <= cfg.max_batch_for("cpu") and limits.admits(h, w)
    profile = engine_profile(cfg.window_limits(variant), cfg.max_batch_for(target))  # type: ignore[arg-type]
    return profile.admits


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("target", list(TARGETS))
def test_every_window_the_gateway_sends_fits_the_target(target: str, variant: str) -> None:
    cfg = load_serving(TARGETS[target])
    accepts = _accepts(cfg, target, variant)
    settings = GATEWAYS[target]
    traits = _published(cfg, target, variant)
    limits, rule = traits.limits, traits.with_context(settings.tile_context)
    served = refused = 0
    for requested in [None, *REQUEST_TILES]:
        try:
            tile = choose_tile(rule, limits, LARGEST, LARGEST, requested, settings.tile)
        except TileTooLargeError as exc:
            assert requested is not None
            assert f"up to {limits.max_side} px" in str(exc)
            assert exc.largest == limits.largest_tile(rule.context, rule.align)
            assert f"at most {exc.largest}" in str(exc)
            refused += 1
            continue
        served += 1
        assert tile % rule.align == 0
        for side in SIDES:
            for span in plan_axis(max(side, rule.min_side), tile, rule.context, rule.align):
                length = span.stop - span.start
                assert accepts(1, length, rule.min_side) and accepts(1, rule.min_side, length), (
                    target, tile, side, length)
    assert served >= 2 and refused >= 1, (served, refused)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize(("h", "w"), [(1, 1), (21, 26), (31, 700), (1000, 1024), (2048, 2048),
                                      (4096, 1024)])
def test_small_and_large_images_are_served_on_every_target(target: str, variant: str, h: int,
                                                           w: int) -> None:
    cfg = load_serving(TARGETS[target])
    accepts = _accepts(cfg, target, variant)
    traits = _published(cfg, target, variant)
    rule = traits.with_context(GATEWAYS[target].tile_context)
    tile = choose_tile(rule, traits.limits, h, w, default=GATEWAYS[target].tile)
    # Images smaller than the model's smallest window are padded to it (imaging/pipeline.py).
    plan = plan_tiles(max(h, rule.min_side), max(w, rule.min_side), tile, rule.context, rule.align)
    assert all(accepts(1, *shape) for shape in plan.shapes), plan.shapes
    if rule.whole_up_to and max(h, w) <= rule.whole_up_to and target == "cpu":
        assert len(plan) == 1  # RLFN and EFDN run whole images whole, where that is exact


def test_default_tile_shrinks_to_what_the_model_accepts() -> None:
    rule = TilingRule(context=32)  # below: a gateway configured for a bigger engine (tile 512)
    assert choose_tile(rule, WindowLimits(max_side=128), 2048, 2048, default=512) == 64
    # a model that publishes no limit (ONNX Runtime, PyTorch): the default as it is
    assert choose_tile(rule, None, 2048, 2048, default=512) == 512
    with pytest.raises(WindowTooSmallError, match="up to 96 px"):  # context alone fills the window
        choose_tile(TilingRule(context=64), WindowLimits(max_side=96), 2048, 2048, default=512)
    # RLFN: tiles rounded down to its alignment; whole up to its limit when the model takes it.
    rlfn = TilingRule(context=30, align=6, min_side=15, whole_up_to=1024)
    assert choose_tile(rlfn, WindowLimits(max_side=1024, min_side=15), 2048, 2048, 256) == 252
    # 1000 px is padded to its 1024-px bucket, which one tile (1026: rounded to 6) covers whole
    assert choose_tile(rlfn, WindowLimits(max_side=1024), 700, 1000, default=512) == 1026
    assert choose_tile(rlfn, WindowLimits(max_side=320), 700, 1000, default=512) == 258
    assert choose_tile(rlfn, None, 700, 1000, requested=64) == 1026  # the rule wins over a request
    unbucketed = TilingRule(context=30, align=6, min_side=15, whole_up_to=1024, bucket=0)
    assert choose_tile(unbucketed, WindowLimits(max_side=1024), 700, 1000, default=512) == 1002


def test_a_requested_tile_must_fit_and_names_the_largest_that_does() -> None:
    rule = TilingRule(context=32)
    limits = WindowLimits(max_side=320)
    assert choose_tile(rule, limits, 2048, 2048, requested=256) == 256
    assert choose_tile(rule, limits, 2048, 2048, requested=100) == 96  # rounded to the alignment
    with pytest.raises(TileTooLargeError, match="at most 256") as refused:
        choose_tile(rule, limits, 2048, 2048, requested=288)
    assert refused.value.largest == 256
    # RLFN's alignment: the message and ``largest`` name the same tile.
    rlfn = TilingRule(context=30, align=6, min_side=15)
    with pytest.raises(TileTooLargeError, match="at most 258") as refused:
        choose_tile(rlfn, limits, 2048, 2048, requested=300)
    assert refused.value.largest == 258


@pytest.mark.parametrize("rule", [TilingRule(context=32), TilingRule(context=30, align=6,
                                                                     min_side=15)],
                         ids=["imdeception", "rlfn"])
@pytest.mark.parametrize(("h", "w"), [(1, 1), (37, 53), (31, 700), (1024, 1088), (1090, 5)])
def test_whole_image_is_one_window(rule: TilingRule, h: int, w: int) -> None:
    tile = choose_tile(rule, None, h, w, requested=WHOLE_IMAGE)
    assert tile % rule.align == 0
    plan = plan_tiles(max(h, rule.min_side), max(w, rule.min_side), tile, rule.context, rule.align)
    assert len(plan) == 1, (tile, plan.shapes)
    limits = WindowLimits(max_side=512)
    if max(h, w) <= limits.max_side:
        assert choose_tile(rule, limits, h, w, requested=WHOLE_IMAGE) == tile
    else:
        with pytest.raises(TileTooLargeError, match="up to 512 px"):
            choose_tile(rule, limits, h, w, requested=WHOLE_IMAGE)


def test_window_limits_name_the_largest_tile() -> None:
    limits = WindowLimits(max_side=320)
    assert limits.largest_tile(32) == 256 and limits.largest_tile(0) == 320
    limits.check_tile(256, 32)
    with pytest.raises(TileTooLargeError, match="at most 256"):
        limits.check_tile(288, 32)
    with pytest.raises(TileTooLargeError, match="at most 258"):  # RLFN's alignment of 6
        limits.check_tile(264, 30, align=6)
    with pytest.raises(ValueError):
        WindowLimits(max_side=0)
    assert all(limits.admits(h, w) for h, w in itertools.product((1, 160, 320), repeat=2))
    assert not limits.admits(321, 1)
