"""MATLAB-style bicubic: kernel, weights and sizes checked against hand-computed values."""

import numpy as np
import pytest

from imdsr.imaging.resize import contributions, cubic, downscale, imresize, modcrop, upscale


def test_keys_kernel_hand_values():
    x = np.array([0.0, 0.25, 0.5, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5])
    # (1.5|x|^3 - 2.5|x|^2 + 1) inside 1, (-0.5|x|^3 + 2.5|x|^2 - 4|x| + 2) inside 2.
    want = [1.0, 0.8671875, 0.5625, 0.0, -0.0703125, -0.0625, -0.0234375, 0.0, 0.0]
    np.testing.assert_allclose(cubic(x), want, atol=1e-12)
    np.testing.assert_allclose(cubic(-x), want, atol=1e-12)


def test_x4_upscale_phase_weights():
    c = contributions(16, 64, 4.0, antialias=False)
    row = 8 * 4  # first output phase of LR pixel 8 (0-based): centre at 8 - 0.375
    w = dict(zip(c.indices[row].tolist(), c.weights[row].tolist(), strict=True))
    np.testing.assert_allclose([w[6], w[7], w[8], w[9]],
                               [-0.0439453125, 0.3896484375, 0.7275390625, -0.0732421875])


def test_half_downscale_antialiased_with_symmetric_border():
    # Output 1 of 8 -> 4 sits at input 1.5 (1-based); kernel 0.5*cubic(0.5 d) over 8 taps.
    half = [-0.01171875, -0.03515625, 0.11328125, 0.43359375]
    taps = half + half[::-1]
    c = contributions(8, 4, 0.5)
    # Taps at 1-based -2..5 mirror (edge repeated) to 0-based 2,1,0,0,1,2,3,4.
    want = np.zeros(8)
    for idx, wt in zip([2, 1, 0, 0, 1, 2, 3, 4], taps, strict=True):
        want[idx] += wt
    got = np.zeros(8)
    for idx, wt in zip(c.indices[0], c.weights[0], strict=True):
        got[idx] += wt
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_sizes_constants_and_dtype():
    img = np.full((13, 10, 3), 77, np.uint8)
    lr = downscale(img, 4)
    assert lr.shape == (4, 3, 3) and lr.dtype == np.uint8 and (lr == 77).all()  # ceil(13/4)=4
    up = upscale(np.full((5, 6), 0.3), 4)
    assert up.shape == (20, 24)
    np.testing.assert_allclose(up, 0.3, atol=1e-12)


def test_separable_matches_1d():
    rng = np.random.default_rng(0)
    img = rng.random((12, 12))
    rows_only = imresize(img[:, :1].repeat(12, 1), 0.25)[:, 0]
    col = imresize(img[:, :1], 0.25)  # a 12x1 image shrinks to 3x1
    np.testing.assert_allclose(rows_only, col[:, 0], atol=1e-12)


def test_modcrop_and_bad_scale():
    assert modcrop(np.zeros((10, 7, 3)), 4).shape == (8, 4, 3)
    with pytest.raises(ValueError):
        imresize(np.zeros((4, 4)), 0)
