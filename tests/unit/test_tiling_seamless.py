"""Tiled inference equals whole-image inference (PyTorch model, no Triton).

At the default tile/context, on photos of several sizes (none a multiple of 4 or 32, all larger
than one window so that tiles really are stitched), no 8-bit pixel differs by more than 1 level.
Shipped weights are used where they exist; random weights otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bench.tiling import compare  # noqa: E402
from imdsr.imaging.tiling import DEFAULT_CONTEXT, DEFAULT_TILE, plan_tiles  # noqa: E402
from training.models import create_model  # noqa: E402


def _photo(h: int, w: int) -> np.ndarray:
    try:
        import skimage.data

        return skimage.data.astronaut()[7:7 + h, 3:3 + w]
    except ImportError:  # smooth structure plus noise, like a photo's statistics
        rng = np.random.default_rng(0)
        y, x = np.mgrid[0:h, 0:w]
        base = 128 + 80 * np.sin(x / 7.0) * np.cos(y / 11.0)
        return np.clip(base[..., None] + rng.normal(0, 15, (h, w, 3)), 0, 255).astype(np.uint8)


def _model(variant: str):  # noqa: ANN202 - a torch module
    torch.manual_seed(0)
    model = create_model(variant).eval()
    try:
        from training.weights.store import WeightsError, load_into, shipped_weights

        load_into(model, shipped_weights(variant), variant, 4)
    except (WeightsError, ImportError):
        pass  # random weights still exercise the alignment and context rules
    return model


@pytest.fixture(scope="module")
def infer():  # noqa: ANN201
    model = _model("c16nla")

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return run


@pytest.mark.parametrize(("h", "w"), [(349, 75), (59, 341), (338, 130)])
def test_default_tiling_is_seamless(infer, h: int, w: int) -> None:  # noqa: ANN001
    assert len(plan_tiles(h, w, DEFAULT_TILE, DEFAULT_CONTEXT)) > 1
    (row,) = compare("photo", _photo(h, w), infer, 4, [(DEFAULT_TILE, DEFAULT_CONTEXT)])
    assert row.max_levels_8bit <= 1, row


def test_small_tiles_with_context_are_seamless(infer) -> None:  # noqa: ANN001
    """Many small tiles (every rule exercised on a small image): still within one level."""
    (row,) = compare("photo", _photo(101, 134), infer, 4, [(32, 32)])
    assert row.tiles > 4 and row.max_levels_8bit <= 1, row


def test_without_context_tiles_show(infer) -> None:  # noqa: ANN001
    """The check has teeth: tiles with no context differ visibly."""
    (row,) = compare("photo", _photo(101, 134), infer, 4, [(32, 0)])
    assert row.max_levels_8bit > 8, row
