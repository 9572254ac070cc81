"""HR/LR pairs: LR made once per scale with the MATLAB-style bicubic and cached as ``.npy``.

Both HR and LR are cached decoded (uint8 HxWx3 ``.npy``) so training opens them memory-mapped
and cuts crops without decoding a JPEG per sample.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from imdsr.imaging.resize import downscale, imresize, modcrop


@dataclass(frozen=True)
class Pair:
    name: str
    hr: np.ndarray  # uint8 HxWx3, sides multiples of the scale
    lr: np.ndarray  # uint8 (H/s)x(W/s)x3


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _cache_key(path: Path) -> str:
    st = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]


def fit_long_side(img: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink (MATLAB bicubic) so the long side is at most ``max_side``; 0 keeps the size.

    Wallpapers are often rendered or upsampled to 4-5K and carry little detail per pixel;
    bringing them to DIV2K's ~2K long side gives HR crops with photo-like pixel statistics.
    """
    long = max(img.shape[:2])
    if max_side <= 0 or long <= max_side:
        return img
    return imresize(img, max_side / long)


def _cache_files(path: Path, scale: int, cache_dir: Path, max_side: int, hr_scale: float
                 ) -> tuple[Path, Path]:
    key = _cache_key(path) + (f"-m{max_side}" if max_side > 0 else "")
    key += f"-s{hr_scale:g}" if hr_scale != 1 else ""
    return (cache_dir / "hr" / f"{path.stem}-{key}.npy",
            cache_dir / f"x{scale}" / f"{path.stem}-{key}.npy")


def _cached(hr_file: Path, lr_file: Path) -> bool:
    return hr_file.exists() and lr_file.exists()


def cached_pair(path: Path, scale: int, cache_dir: Path, max_side: int = 0, hr_scale: float = 1.0
                ) -> Pair:
    """Load (or make once and cache) the HR/LR pair for ``path`` at ``scale``.

    ``hr_scale`` < 1 shrinks the HR (after ``max_side``) before the LR is made: the same photo
    seen from further away, with more detail per pixel (multi-scale augmentation).
    """
    if not 0 < hr_scale <= 1:
        raise ValueError(f"hr_scale must be in (0, 1], got {hr_scale}")
    hr_file, lr_file = _cache_files(path, scale, cache_dir, max_side, hr_scale)
    if not _cached(hr_file, lr_file):
        hr = fit_long_side(load_rgb(path), max_side)
        hr = modcrop(hr if hr_scale == 1 else imresize(hr, hr_scale), scale)
        lr = downscale(hr, scale)
        for f, arr in ((hr_file, hr), (lr_file, lr)):
            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_suffix(f".{os.getpid()}.tmp.npy")  # concurrent runs may build the cache
            np.save(tmp, np.ascontiguousarray(arr))
            tmp.replace(f)  # atomic, so a killed build never leaves a half-written cache file
    hr = np.load(hr_file, mmap_mode="r")
    lr = np.load(lr_file, mmap_mode="r")
    return Pair(path.stem if hr_scale == 1 else f"{path.stem}@{hr_scale:g}", hr, lr)


def _build(args: tuple[Path, int, Path, int, float]) -> None:
    cached_pair(*args)  # returns nothing: the pair is read back from the cache, not pickled


def load_pairs(files: list[Path], scale: int, cache_dir: Path, max_side: int = 0,
               hr_scales: tuple[float, ...] = (1.0,), workers: int = 0) -> list[Pair]:
    """One pair per file and HR scale; ``workers`` > 1 builds missing cache entries in parallel
    (a fresh GPU machine rebuilds the whole cache, about 7 s of resizing per photo)."""
    jobs = [(f, scale, cache_dir, max_side, s) for f in files for s in hr_scales]
    # Only missing entries go to the pool: a built cache starts no processes.
    missing = [j for j in jobs if not _cached(*_cache_files(*j))]
    if workers > 1 and len(missing) > 1:
        with ProcessPoolExecutor(min(workers, len(missing))) as pool:
            list(pool.map(_build, missing))
    return [cached_pair(*job) for job in jobs]
