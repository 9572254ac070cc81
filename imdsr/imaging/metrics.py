"""PSNR and SSIM as SR papers compute them (numpy only: serving and benchmarks use these too).

Inputs are uint8 images, or float images in [0, 1]; both are compared on the [0, 255] scale.
``y_psnr``/``y_ssim`` follow the paper's Table 3 (BT.601 Y, ``crop`` pixels shaved off each
border, crop = scale); ``rgb_psnr`` follows NTIRE's challenge convention (all three channels).
SSIM is Wang et al.'s: 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, statistics over
the window's valid positions only.
"""

from __future__ import annotations

import numpy as np

from imdsr.contract import SCALE
from imdsr.imaging.color import rgb_to_y

PEAK = 255.0


def _to255(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img.astype(np.float64)
    return np.asarray(img, dtype=np.float64) * PEAK


def _shave(img: np.ndarray, crop: int) -> np.ndarray:
    return img[crop:-crop, crop:-crop] if crop > 0 else img


def psnr_255(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two arrays already on the [0, 255] scale."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(PEAK * PEAK / mse)


def y_psnr(sr: np.ndarray, hr: np.ndarray, crop: int = SCALE) -> float:
    return psnr_255(_shave(rgb_to_y(sr), crop), _shave(rgb_to_y(hr), crop))


def rgb_psnr(sr: np.ndarray, hr: np.ndarray, crop: int = SCALE) -> float:
    return psnr_255(_shave(_to255(sr), crop), _shave(_to255(hr), crop))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable correlation keeping only positions where the whole window fits."""
    k = g.size
    rows = sum(g[i] * img[i : img.shape[0] - k + 1 + i] for i in range(k))
    return sum(g[i] * rows[:, i : rows.shape[1] - k + 1 + i] for i in range(k))


def ssim_255(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two single-channel images on the [0, 255] scale."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    if min(a.shape) < 11:
        raise ValueError(f"image {a.shape} smaller than the 11x11 SSIM window")
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    c1, c2 = (0.01 * PEAK) ** 2, (0.03 * PEAK) ** 2
    g = _gaussian_window()
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a**2
    var_b = _filter_valid(b * b, g) - mu_b**2
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def y_ssim(sr: np.ndarray, hr: np.ndarray, crop: int = SCALE) -> float:
    return ssim_255(_shave(rgb_to_y(sr), crop), _shave(rgb_to_y(hr), crop))
