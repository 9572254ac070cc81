"""Window buckets: images are padded to a few sizes before tiling, so the runtime sees a few window
shapes (bounded memory), and tiles still reproduce whole-image inference (of the padded image)."""

from __future__ import annotations

import numpy as np
import pytest

from imdsr.imaging import codec
from imdsr.imaging.pipeline import tile_count, upscale_sync
from imdsr.imaging.tiling import DEFAULT_BUCKET, DEFAULT_TILE, TilingRule, plan_tiles
from imdsr.imaging.windows import WHOLE_IMAGE, TileTooLargeError, WindowLimits, choose_tile
from training.models.registry import get_variant

SIZES = [(h, w) for h in (1, 17, 63, 64, 65, 120, 191, 320, 321, 479, 600, 1023, 1500, 2047)
         for w in (5, 80, 200, 257, 640, 999, 2048)]


def _shapes(rule: TilingRule, tile: int, sizes: list[tuple[int, int]]) -> set[tuple[int, int]]:
    return {s for h, w in sizes for s in plan_tiles(*rule.padded(h, w), tile, rule.context,
                                                   rule.align).shapes}


def test_sides_snap_up_to_the_bucket_and_never_past_what_runs_whole() -> None:
    rule = TilingRule()
    assert rule.bucket == DEFAULT_BUCKET == 64
    for n in range(1, 3000, 7):
        side = rule.padded_side(n)
        assert side % 64 == 0 and n <= side < n + 64
    assert TilingRule(bucket=0).padded(21, 26) == (21, 26)  # off: as before buckets
    assert TilingRule(min_side=15, bucket=0).padded(9, 40) == (15, 40)  # RLFN's smallest window
    efdn = get_variant("efdn").tiling  # runs whole up to 1024: padding never takes it past that
    assert efdn.padded_side(1000) == 1024 and efdn.padded_side(1024) == 1024
    assert TilingRule(whole_up_to=1000).padded_side(990) == 1000
    with pytest.raises(ValueError, match="invalid tiling rule"):
        TilingRule(bucket=-1)


def test_the_default_tiling_sends_at_most_25_window_shapes() -> None:
    """c16nla at the gateway's defaults: every window side a multiple of 64 up to 320, whatever
    the image size (without buckets, every image size brings shapes of its own)."""
    rng = np.random.default_rng(0)
    sizes = SIZES + [tuple(rng.integers(1, 2049, 2)) for _ in range(300)]
    shapes = _shapes(TilingRule(), DEFAULT_TILE, sizes)
    sides = {side for shape in shapes for side in shape}
    assert sides <= {64, 128, 192, 256, 320} and len(shapes) <= 25
    assert len(_shapes(TilingRule(bucket=0), DEFAULT_TILE, sizes)) > 200
    # IMDN (16 px of context, alignment 1): its 288-px interior window and multiples of 64
    imdn = get_variant("imdn").tiling
    assert {s for shape in _shapes(imdn, imdn.tile(DEFAULT_TILE), sizes) for s in shape} <= \
        {64, 128, 192, 256, 288}


@pytest.mark.parametrize("variant", ["rlfn", "efdn"])
def test_models_that_run_whole_stay_one_window_once_padded(variant: str) -> None:
    # EFDN's 21-px context is less than the 63 px a bucket may add: the tile must cover the
    # padded image, or a "whole" image would be cut in two (inexact for its attention).
    rule = get_variant(variant).tiling
    limits = WindowLimits(max_side=1024, min_side=rule.min_side)
    for h, w in [(s, t) for s in (1, 9, 577, 640, 1000, 1024) for t in (3, 100, 961, 1024)]:
        tile = choose_tile(rule, limits, h, w)
        plan = plan_tiles(*rule.padded(h, w), tile, rule.context, rule.align)
        assert len(plan) == 1 and tile_count(h, w, tile=tile, rule=rule,
                                             alpha_through_model=False) == 1, (h, w)
        assert max(plan.tiles[0].shape) <= limits.max_side


def test_a_whole_image_must_fit_the_model_once_padded() -> None:
    rule = TilingRule()
    assert choose_tile(rule, WindowLimits(max_side=320), 300, 290, requested=WHOLE_IMAGE) == 320
    with pytest.raises(TileTooLargeError, match="window of 320 px"):  # 280 px pads to 320
        choose_tile(rule, WindowLimits(max_side=288), 280, 280, requested=WHOLE_IMAGE)


class _Recorder:
    """A stand-in network with a border-sensitive response (a 3x3 box filter, zero-padded like a
    convolution, then x4 nearest): it computes, so padding and stitching are really exercised."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.shapes.append(batch.shape[2:])
        padded = np.pad(batch, ((0, 0), (0, 0), (1, 1), (1, 1)))
        h, w = batch.shape[2:]
        box = sum(padded[:, :, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)) / 9
        return box.repeat(4, axis=2).repeat(4, axis=3)


def _photo(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    base = 128 + 90 * np.sin(x / 5.0) * np.cos(y / 7.0)
    noise = np.random.default_rng(1).normal(0, 10, (h, w, 3))
    return np.clip(base[..., None] + noise, 0, 255).astype(np.uint8)


def test_the_pipeline_pads_symmetrically_tiles_exactly_and_crops_back() -> None:
    rgb = _photo(150, 203)  # pads to 192 x 256
    picture = codec.Picture(color=rgb, alpha=None, gray=False, source_format="PNG")
    rule = TilingRule(context=32)
    whole_net, tiled_net = _Recorder(), _Recorder()
    whole = upscale_sync(picture, whole_net, tile=rule.one_window(150, 203), rule=rule)
    tiled = upscale_sync(picture, tiled_net, tile=64, rule=rule)
    assert whole.picture.color.shape == tiled.picture.color.shape == (600, 812, 3)
    assert whole_net.shapes == [(192, 256)]
    assert tiled.tiles == len(tiled_net.shapes) > 1
    assert {s for shape in tiled_net.shapes for s in shape} <= {64, 128}
    # tiles of the padded image are the padded image's whole-image result
    assert np.array_equal(tiled.picture.color, whole.picture.color)
    # and that is the network on the image mirrored out to the bucket, cropped
    mirrored = np.pad(rgb, ((0, 42), (0, 53), (0, 0)), mode="symmetric")
    x = mirrored.astype(np.float32).transpose(2, 0, 1)[None] / 255
    expected = np.rint(np.clip(_Recorder()(x)[0].transpose(1, 2, 0), 0, 1) * 255)[:600, :812]
    assert np.array_equal(whole.picture.color, expected.astype(np.uint8))
    # without buckets the border is the network's own zero padding: a different result there
    bare = upscale_sync(picture, _Recorder(), tile=rule.one_window(150, 203),
                        rule=TilingRule(context=32, bucket=0))
    assert not np.array_equal(bare.picture.color, whole.picture.color)
    assert np.array_equal(bare.picture.color[:560, :780], whole.picture.color[:560, :780])
