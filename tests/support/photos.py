"""Tiny smooth random 'photos' for training tests (upsampled noise: crops have texture, not edges)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def smooth_photos(root: Path, count: int = 9, side: int = 96, seed: int = 0) -> Path:
    """``count`` RGB PNGs of ``side`` px; with 9, one lands in the validation split."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        small = rng.integers(0, 256, (side // 8, side // 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((side, side), Image.BICUBIC).save(root / f"img{i}.png")
    return root
