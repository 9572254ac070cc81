"""Random HR/LR crop pairs with the 8 dihedral augmentations, deterministic under a seed.

The batch for step ``i`` depends only on ``(seed, i)``, so a resumed run sees exactly the
batches an uninterrupted one would, with no sampler state to checkpoint. That holds for the LR
degradations too (``training/data/degrade.py``): each sample's degradations come from its own generator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from training.data.degrade import Degrader
from training.data.pairs import Pair

if TYPE_CHECKING:
    from training.train.config import DegradeConfig


def dihedral(img: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/rotations of an HxWxC array (k in 0..7)."""
    if k >= 4:
        img = img[:, ::-1]
    return np.rot90(img, k % 4, axes=(0, 1))


def random_crop(pair: Pair, lr_size: int, scale: int, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """LR crop, its HR crop, and the LR crop's origin (the blur remakes the LR from there)."""
    h, w = pair.lr.shape[:2]
    if h < lr_size or w < lr_size:
        raise ValueError(f"{pair.name}: LR {h}x{w} smaller than crop {lr_size}")
    y = int(rng.integers(0, h - lr_size + 1))
    x = int(rng.integers(0, w - lr_size + 1))
    lr = pair.lr[y : y + lr_size, x : x + lr_size]
    hr = pair.hr[y * scale : (y + lr_size) * scale, x * scale : (x + lr_size) * scale]
    return np.asarray(lr), np.asarray(hr), (y, x)


def detail(lr: np.ndarray) -> float:
    """Mean absolute horizontal+vertical difference of a uint8 crop, on the 0..1 scale."""
    a = lr.astype(np.float32) / 255.0
    return float(np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean())


class CropSampler:
    """Makes batches of (LR, HR) crops as float32 NCHW arrays in [0, 1]."""

    def __init__(self, pairs: list[Pair], lr_size: int, scale: int, batch: int, seed: int,
                 augment: bool = True, min_detail: float = 0.0, tries: int = 10,
                 groups: list[int] | None = None, shares: list[float] | None = None,
                 degrade: DegradeConfig | None = None) -> None:
        """``groups[i]`` is the set of ``pairs[i]``; ``shares[g]`` that set's share of the draws
        (within a set, by area). Without them every image is drawn by area. Pairs whose LR is
        smaller than a crop (T91 has 51 such images at 48 px) are left out: ``self.dropped``.
        ``degrade``: degradations of the LR crops (the HR crops stay as cut)."""
        groups = list(groups) if groups is not None else [0] * len(pairs)
        if len(groups) != len(pairs):
            raise ValueError("one group per pair")
        fits = [min(p.lr.shape[:2]) >= lr_size for p in pairs]
        self.dropped = [p.name for p, ok in zip(pairs, fits, strict=True) if not ok]
        pairs = [p for p, ok in zip(pairs, fits, strict=True) if ok]
        groups = [g for g, ok in zip(groups, fits, strict=True) if ok]
        if not pairs:
            raise ValueError(f"no training images with an LR side of at least {lr_size} px")
        self.pairs, self.lr_size, self.scale = pairs, lr_size, scale
        self.batch, self.seed, self.augment = batch, seed, augment
        # Flat crops (sky, gradients) teach little once the net is bicubic; resample a crop
        # whose LR ``detail`` is under ``min_detail``, up to ``tries`` times.
        self.min_detail, self.tries = min_detail, tries
        # Pick images in proportion to their area, so each pixel is about equally likely, and
        # scale each set to its share where shares are given.
        area = np.array([p.lr.shape[0] * p.lr.shape[1] for p in pairs], dtype=np.float64)
        g = np.array(groups)
        if shares is not None:
            share = np.array(shares, dtype=np.float64)
            present = np.unique(g)
            share = share / share[present].sum()
            for k in present:
                area[g == k] *= share[k] / area[g == k].sum()
        self.weights = area / area.sum()
        self.groups = g
        self.degrader = (Degrader(degrade, scale, seed) if degrade is not None and degrade.enabled
                         else None)

    def batch_at(self, step: int, rank: int = 0) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, step, rank])
        lrs, hrs = [], []
        for index in range(self.batch):
            for _ in range(max(self.tries, 1)):
                pair = self.pairs[int(rng.choice(len(self.pairs), p=self.weights))]
                lr, hr, origin = random_crop(pair, self.lr_size, self.scale, rng)
                if self.min_detail <= 0 or detail(lr) >= self.min_detail:
                    break
            # The degradations draw from their own generators, never from ``rng``: the crops
            # and flips are a clean run's.
            sample = self.degrader.sample(step, rank, index) if self.degrader else None
            if sample is not None:
                lr = sample.resample(pair.hr, origin, lr)
            if self.augment:
                k = int(rng.integers(0, 8))
                lr, hr = dihedral(lr, k), dihedral(hr, k)
            if sample is not None:
                lr = sample.corrupt(lr)
            lrs.append(lr)
            hrs.append(hr)
        to_nchw = lambda a: np.stack(a).transpose(0, 3, 1, 2).astype(np.float32) / 255.0  # noqa: E731
        return to_nchw(lrs), to_nchw(hrs)
