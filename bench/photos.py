"""The pictures the benchmarks run on: scikit-image's photos where the train extra is installed,
a seeded synthetic stand-in where it is not (the serving-only install has no scikit-image).

Its own module because ``imdsr bench`` (bench/cli.py) and the zoo run (bench/zoo.py) both need
them, and neither may import the other.
"""

from __future__ import annotations

import numpy as np


def synthetic(h: int, w: int) -> np.ndarray:
    """A smooth pattern plus seeded noise, uint8 HWC: texture at every scale, the same each run."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w]
    base = (np.sin(x / 9.0) * np.cos(y / 13.0) * 100 + 128)[..., None]
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def bench_images() -> list[tuple[str, np.ndarray]]:
    """Photos of several sizes, none a multiple of 4 or 32 on both sides."""
    try:
        import skimage.data as data
    except ImportError:  # the train extra is not installed: a synthetic stand-in
        return [("synthetic", synthetic(300, 451))]
    return [("astronaut crop", data.astronaut()[40:277, 100:401]),
            ("chelsea", data.chelsea()), ("coffee", data.coffee())]


def square_photo(size: int) -> tuple[str, np.ndarray]:
    """A real photo (scikit-image's astronaut) cropped to ``size``; synthetic where it is absent."""
    try:
        from skimage import data
    except ImportError:
        return "synthetic", synthetic(size, size)
    photo = data.astronaut()
    return "astronaut", np.ascontiguousarray(photo[:size, 64:64 + size])
