"""Engine shapes by construction: every window the gateway can send lies inside the profile of
every target (cpu, gpu, jetson), and a tile that cannot fit is a 422 naming the limit."""

from __future__ import annotations

import itertools

import pytest

from export.serving import ServingConfig, load_serving
from export.trt_plan import engine_profile
from imdsr.imaging.tiling import ALIGN, plan_axis, plan_tiles
from imdsr.imaging.windows import TileTooLargeError, WindowLimits
from service import errors
from service.api import _tile_for
from service.schemas import UpscaleOptions
from service.settings import Settings
from tests.support import ROOT

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
    "jetson": Settings(tile=64, tile_context=32),
}
_tile = UpscaleOptions.model_fields["tile"].metadata
REQUEST_TILES = range(next(m.ge for m in _tile if hasattr(m, "ge")),
                      next(m.le for m in _tile if hasattr(m, "le")) + 1, ALIGN)
# Image sides: every side up to a few windows, and the largest an input may have.
SIDES = [*range(1, 3 * 320 + 70), 2047, 2048, 4095, 4096]


def _accepts(cfg: ServingConfig, target: str):  # noqa: ANN202
    """What the target's model accepts: the TensorRT profile, or (cpu) the published limit."""
    limits = cfg.window_limits()
    if target == "cpu":
        return lambda b, h, w: 1 <= b <= cfg.max_batch_for("cpu") and limits.admits(h, w)
    profile = engine_profile(limits, cfg.max_batch_for(target))  # type: ignore[arg-type]
    return profile.admits


@pytest.mark.parametrize("target", list(TARGETS))
def test_every_window_the_gateway_sends_fits_the_target(target: str) -> None:
    cfg = load_serving(TARGETS[target])
    accepts = _accepts(cfg, target)
    settings = GATEWAYS[target]
    limits = cfg.window_limits()
    served = refused = 0
    for requested in [None, *REQUEST_TILES]:
        try:
            tile = _tile_for(requested, settings, limits)
        except errors.InvalidParameterError as exc:
            assert exc.status == 422 and requested is not None
            assert f"up to {limits.max_side} px" in exc.detail[0]["msg"]
            assert exc.detail[0]["max_tile"] == limits.largest_tile(settings.tile_context)
            refused += 1
            continue
        served += 1
        context = settings.tile_context
        for side in SIDES:
            for span in plan_axis(side, tile, context):
                length = span.stop - span.start
                assert accepts(1, length, 1) and accepts(1, 1, length), (target, tile, side, length)
    assert served >= 2 and refused >= 1, (served, refused)


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize(("h", "w"), [(1, 1), (21, 26), (31, 700), (2048, 2048), (4096, 1024)])
def test_small_and_large_images_are_served_on_every_target(target: str, h: int, w: int) -> None:
    cfg = load_serving(TARGETS[target])
    accepts = _accepts(cfg, target)
    settings = GATEWAYS[target]
    tile = _tile_for(None, settings, cfg.window_limits())
    plan = plan_tiles(h, w, tile, settings.tile_context)
    assert all(accepts(1, *shape) for shape in plan.shapes), plan.shapes


def test_default_tile_shrinks_to_what_the_model_accepts() -> None:
    settings = Settings(tile=512, tile_context=32)  # a gateway configured for a bigger engine
    assert _tile_for(None, settings, WindowLimits(max_side=128)) == 64
    assert _tile_for(None, settings, None) == 512  # a model that publishes no limit
    with pytest.raises(errors.ModelNotReadyError):  # context alone exceeds the engine
        _tile_for(None, Settings(tile_context=64), WindowLimits(max_side=96))


def test_window_limits_name_the_largest_tile() -> None:
    limits = WindowLimits(max_side=320)
    assert limits.largest_tile(32) == 256 and limits.largest_tile(0) == 320
    limits.check_tile(256, 32)
    with pytest.raises(TileTooLargeError, match="at most 256"):
        limits.check_tile(288, 32)
    with pytest.raises(ValueError):
        WindowLimits(max_side=0)
    assert all(limits.admits(h, w) for h, w in itertools.product((1, 160, 320), repeat=2))
    assert not limits.admits(321, 1)
