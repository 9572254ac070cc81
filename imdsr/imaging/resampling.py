"""High-quality resizing of image planes (alpha to x4, and the final size after the network).

Pillow resamples each plane in 32-bit float ("F" mode), so 8- and 16-bit planes take one path and
no precision is lost before the final rounding.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from imdsr.imaging.tiling import max_value

LANCZOS = Image.Resampling.LANCZOS
BICUBIC = Image.Resampling.BICUBIC


def resize_plane(plane: np.ndarray, size: tuple[int, int], method: Image.Resampling = LANCZOS
                 ) -> np.ndarray:
    """Resize an H x W integer plane to ``size`` = (height, width), clamped and rounded."""
    height, width = size
    top = max_value(plane.dtype)
    resized = Image.fromarray(plane.astype(np.float32), "F").resize((width, height), method)
    return np.rint(np.clip(np.asarray(resized), 0.0, top)).astype(plane.dtype)


def resize_image(image: np.ndarray, size: tuple[int, int], method: Image.Resampling = LANCZOS
                 ) -> np.ndarray:
    """Resize an H x W x C integer image plane by plane."""
    return np.dstack([resize_plane(image[..., c], size, method) for c in range(image.shape[2])])
