"""MATLAB-compatible bicubic ``imresize`` (numpy only).

DIV2K's LR images were made with MATLAB's ``imresize(hr, 1/4, 'bicubic')``; SR papers report
their bicubic baseline with the same function upscaling. This is the project's one copy of it:
Keys cubic kernel with a = -0.5, antialiasing when shrinking (the kernel is stretched by
1/scale), symmetric (mirror, edge pixel repeated) borders, output size ``ceil(in * scale)``,
and the dimension with the larger reduction resized first, as MATLAB does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

KERNEL_WIDTH = 4.0  # Keys' cubic spans [-2, 2]


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


@dataclass(frozen=True)
class Contributions:
    """For each output sample along one axis: the input indices it reads and their weights."""

    weights: np.ndarray  # (out_len, taps) float64, rows sum to 1
    indices: np.ndarray  # (out_len, taps) int, 0-based, already mirrored into range


def contributions(in_len: int, out_len: int, scale: float, antialias: bool = True) -> Contributions:
    """MATLAB's ``contributions``: sample positions, kernel weights, symmetric borders."""
    if scale < 1 and antialias:
        # Shrinking: stretch the kernel so it low-passes at the new Nyquist rate.
        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * cubic(scale * x)

        width = KERNEL_WIDTH / scale
    else:
        kernel, width = cubic, KERNEL_WIDTH
    x = np.arange(1, out_len + 1, dtype=np.float64)
    # Output pixel centres mapped into input coordinates (1-based, MATLAB's convention).
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    w = kernel(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)
    # Symmetric padding: index sequence 1..n, n..1 repeated.
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    idx0 = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    keep = np.any(w != 0, axis=0)  # drop all-zero tap columns, as MATLAB does
    return Contributions(weights=w[:, keep], indices=idx0[:, keep])


def _resize_axis(img: np.ndarray, axis: int, out_len: int, scale: float,
                 antialias: bool) -> np.ndarray:
    c = contributions(img.shape[axis], out_len, scale, antialias)
    moved = np.moveaxis(img, axis, 0)
    out = np.zeros((out_len,) + moved.shape[1:], dtype=np.float64)
    # One gather per tap keeps memory at one output-sized buffer even for 5K photos.
    for t in range(c.weights.shape[1]):
        w = c.weights[:, t].reshape((-1,) + (1,) * (moved.ndim - 1))
        out += w * moved[c.indices[:, t]]
    return np.moveaxis(out, 0, axis)


def output_shape(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    return (int(math.ceil(shape[0] * scale)), int(math.ceil(shape[1] * scale)))


def imresize(img: np.ndarray, scale: float, antialias: bool = True) -> np.ndarray:
    """Resize an HxW or HxWxC image by ``scale`` like MATLAB ``imresize(img, scale)``.

    uint8 input gives uint8 output (rounded, clipped, as MATLAB does); float input gives float64
    output in the same units, unclipped.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    was_uint8 = img.dtype == np.uint8
    x = img.astype(np.float64)
    out_h, out_w = output_shape(img.shape[:2], scale)
    # MATLAB resizes the dimension with the smaller scale factor first; equal scales: rows first.
    # Both axes share one scale here, so rows go first.
    x = _resize_axis(x, 0, out_h, scale, antialias)
    x = _resize_axis(x, 1, out_w, scale, antialias)
    if was_uint8:
        return np.clip(np.round(x), 0, 255).astype(np.uint8)
    return x


def downscale(hr: np.ndarray, factor: int) -> np.ndarray:
    """LR image the DIV2K way: ``imresize(hr, 1/factor)``."""
    return imresize(hr, 1.0 / factor)


def upscale(lr: np.ndarray, factor: int) -> np.ndarray:
    """Bicubic baseline the SR-paper way: ``imresize(lr, factor)``."""
    return imresize(lr, float(factor))


def modcrop(img: np.ndarray, factor: int) -> np.ndarray:
    """Crop bottom/right so both sides are multiples of ``factor`` (LR and HR then align)."""
    h, w = img.shape[:2]
    return img[: h - h % factor, : w - w % factor]
