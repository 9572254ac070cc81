"""PSNR/SSIM/Y conventions of SR papers."""

import numpy as np
import pytest

from imdsr.imaging.color import rgb_to_y
from imdsr.imaging.metrics import psnr_255, rgb_psnr, ssim_255, y_psnr, y_ssim


def test_bt601_y_range():
    assert rgb_to_y(np.zeros((1, 1, 3), np.uint8))[0, 0] == pytest.approx(16.0)
    assert rgb_to_y(np.full((1, 1, 3), 255, np.uint8))[0, 0] == pytest.approx(235.0)
    red = np.zeros((1, 1, 3))
    red[..., 0] = 1.0
    assert rgb_to_y(red)[0, 0] == pytest.approx(16 + 65.481)


def test_psnr_known_mse():
    a = np.zeros((8, 8))
    assert psnr_255(a, a + 1) == pytest.approx(10 * np.log10(255**2))
    assert psnr_255(a, a) == float("inf")


def test_crop_and_float_vs_uint8():
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    sr = hr.copy()
    sr[:4] = 0  # damage only the border that crop=4 removes
    assert y_psnr(sr, hr, crop=4) == float("inf")
    assert rgb_psnr(sr.astype(np.float64) / 255, hr, crop=4) == float("inf")


def test_ssim_matches_skimage_gaussian():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(2)
    a = rng.random((40, 50)) * 255
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255)
    ref = structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=255)
    assert ssim_255(a, b) == pytest.approx(ref, abs=1e-6)
    assert ssim_255(a, a) == pytest.approx(1.0)


def test_y_ssim_identity():
    img = np.random.default_rng(3).integers(0, 256, (30, 30, 3), dtype=np.uint8)
    assert y_ssim(img, img) == pytest.approx(1.0)
