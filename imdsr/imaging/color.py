"""Colour conversion as SR papers measure it: MATLAB ``rgb2ycbcr``'s luma (ITU-R BT.601)."""

from __future__ import annotations

import numpy as np

# MATLAB rgb2ycbcr on [0, 1] inputs: Y = 16 + 65.481 R + 128.553 G + 24.966 B (studio range).
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])
_Y_OFFSET = 16.0


def to_float01(img: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float64 [0, 1]; float input is taken to be [0, 1] already."""
    if img.dtype == np.uint8:
        return img.astype(np.float64) / 255.0
    return img.astype(np.float64)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """HxWx3 RGB (uint8, or float in [0, 1]) -> HxW float64 Y on the [0, 255] scale (16..235)."""
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected HxWx3 RGB, got shape {img.shape}")
    return to_float01(img) @ _Y_WEIGHTS + _Y_OFFSET
