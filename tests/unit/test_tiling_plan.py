"""Tiler invariants, without a model: coverage, grid alignment, border rules, stitching."""

from __future__ import annotations

import numpy as np
import pytest

from imdsr.imaging.pipeline import upscale_tiled
from imdsr.imaging.tiling import ALIGN, plan_axis, plan_tiles, tile_input

SIZES = [1, 5, 31, 32, 33, 95, 127, 128, 257, 300, 451, 1000, 1031]
SETTINGS = [(32, 0), (64, 32), (128, 32), (256, 32), (96, 64)]


@pytest.mark.parametrize(("tile", "context"), SETTINGS)
@pytest.mark.parametrize("n", SIZES)
def test_axis_invariants(n: int, tile: int, context: int) -> None:
    spans = plan_axis(n, tile, context)
    # Cores partition [0, n) in order.
    assert spans[0].core_start == 0 and spans[-1].core_stop == n
    for a, b in zip(spans, spans[1:], strict=False):
        assert a.core_stop == b.core_start
    size = tile + 2 * context
    for s in spans:
        assert s.start % ALIGN == 0  # attention regions coincide with the whole image's
        assert 0 <= s.start <= s.core_start < s.core_stop <= s.stop <= n
        # Context wherever the core is not at the border.
        assert s.start == 0 or s.core_start - s.start >= context
        assert s.stop == n or s.stop - s.core_stop >= context
        assert s.stop - s.start <= size
    # Interior windows share one size (Triton batches equal shapes); only the last may differ.
    assert all(s.stop - s.start == size for s in spans[:-1])
    assert spans[-1].stop == n


def test_small_images_are_one_tile() -> None:
    plan = plan_tiles(200, 250, 256, 32)
    assert len(plan) == 1 and plan.overhead == 1.0


def test_bad_settings() -> None:
    for tile, context in [(0, 0), (48, 32), (64, 16), (64, -32)]:
        with pytest.raises(ValueError):
            plan_axis(100, tile, context)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_identity_stitch_is_exact(dtype: type) -> None:
    rng = np.random.default_rng(1)
    top = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
    image = (rng.random((150, 203, 3)) * top).astype(dtype)

    def nearest(x: np.ndarray) -> np.ndarray:
        return x.repeat(4, axis=2).repeat(4, axis=3)

    out = upscale_tiled(image, nearest, 4, tile=32, context=32)
    assert out.dtype == image.dtype
    np.testing.assert_array_equal(out, image.repeat(4, axis=0).repeat(4, axis=1))


def test_tile_input_is_nchw_unit_range() -> None:
    image = np.full((40, 50, 3), 255, dtype=np.uint8)
    t = plan_tiles(40, 50, 32, 0).tiles[-1]
    x = tile_input(image, t)
    assert x.dtype == np.float32 and x.shape == (1, 3, *t.shape) and x.max() == 1.0


def test_uint8_results_are_copied_and_refused_for_16_bit() -> None:
    from imdsr.imaging.tiling import place

    out = np.zeros((160, 200, 3), np.uint8)
    tile = plan_tiles(40, 50, 32, 0).tiles[0]
    result = np.full((1, 3, tile.shape[0] * 4, tile.shape[1] * 4), 200, np.uint8)
    place(out, tile, result, 4)
    assert (out[:tile.shape[0] * 4, :tile.shape[1] * 4] == 200).all()
    with pytest.raises(TypeError, match="8-bit result"):
        place(np.zeros((160, 200, 3), np.uint16), tile, result, 4)
