"""LR degradations of the training crops (issue 27): each does what its config says, they are
reproducible from the seed, and the HR target never changes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from imdsr.imaging.resize import downscale
from tests.support.photos import smooth_photos
from training.data.crops import CropSampler
from training.data.degrade import (
    POISSON_PEAK,
    Degrader,
    apply_named,
    blurred_lr,
    named_pairs,
    parse_names,
)
from training.data.loader import step_batches
from training.data.pairs import Pair
from training.train.config import DataConfig, DegradeConfig, PhaseConfig, TrainConfig, load_config

ROOT = Path(__file__).resolve().parents[2]


def _cfg(**sections: dict) -> DegradeConfig:
    return DegradeConfig.model_validate(sections)


def _one(cfg: DegradeConfig, lr: np.ndarray, index: int = 0, step: int = 0) -> np.ndarray:
    """``lr`` through the degradations after the flip (noise, JPEG) of one sample."""
    return Degrader(cfg, 4, seed=1).sample(step, 0, index).corrupt(lr)


def _pil_jpeg(img: np.ndarray, quality: int, **opts: object) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality, **opts)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _texture(seed: int = 0, side: int = 48) -> np.ndarray:
    small = np.random.default_rng(seed).integers(0, 256, (side // 4, side // 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((side, side), Image.BICUBIC))


@pytest.mark.parametrize("quality", [30, 62, 95])
def test_jpeg_is_pils_encode_decode_at_the_drawn_quality(quality):
    lr = _texture()
    cfg = _cfg(jpeg={"p": 1.0, "quality": [quality, quality]})
    out = _one(cfg, lr)
    np.testing.assert_array_equal(out, _pil_jpeg(lr, quality))  # PIL's default: 4:2:0
    np.testing.assert_array_equal(out, _pil_jpeg(lr, quality, subsampling="4:2:0"))
    assert not np.array_equal(out, _pil_jpeg(lr, quality, subsampling="4:4:4"))
    full = _cfg(jpeg={"p": 1.0, "quality": [quality, quality], "p444": 1.0})
    np.testing.assert_array_equal(_one(full, lr), _pil_jpeg(lr, quality, subsampling="4:4:4"))


def test_jpeg_quality_is_drawn_over_the_whole_range():
    lr = _texture()
    cfg = _cfg(jpeg={"p": 1.0, "quality": [40, 42]})
    by_q = {q: _pil_jpeg(lr, q).tobytes() for q in (40, 41, 42)}
    assert len(set(by_q.values())) == 3
    seen = {next(q for q, b in by_q.items() if b == _one(cfg, lr, i).tobytes()) for i in range(40)}
    assert seen == {40, 41, 42}


def test_gaussian_noise_has_the_configured_sigma():
    flat = np.full((128, 128, 3), 128, np.uint8)
    for sigma in (2.0, 6.0):
        out = _one(_cfg(noise={"p": 1.0, "sigma": [sigma, sigma]}), flat).astype(np.float64)
        # Rounding to 8 bits adds 1/12 of a level squared.
        assert np.std(out - 128) == pytest.approx(np.sqrt(sigma**2 + 1 / 12), rel=0.03)
        assert abs(np.mean(out - 128)) < 0.1
        per_channel = np.corrcoef((out - 128).reshape(-1, 3).T)
        assert np.abs(per_channel[np.triu_indices(3, 1)]).max() < 0.05  # independent channels
    grey = _one(_cfg(noise={"p": 1.0, "sigma": [4, 4], "grey_p": 1.0}), flat)
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])
    assert np.std(grey.astype(np.float64)) > 3


@pytest.mark.parametrize("level", [64, 192])
def test_poisson_noise_is_shot_noise_at_the_configured_scale(level):
    flat = np.full((128, 128, 3), level, np.uint8)
    scale = 0.6
    out = _one(_cfg(poisson={"p": 1.0, "scale": [scale, scale]}), flat).astype(np.float64)
    want = scale * 255 * np.sqrt(level / 255 / POISSON_PEAK)
    assert np.std(out - level) == pytest.approx(np.sqrt(want**2 + 1 / 12), rel=0.04)
    assert abs(np.mean(out - level)) < 0.15


def test_probability_zero_is_the_identity():
    """Ranges set but every probability 0: not one value of a batch changes."""
    lr = _texture()
    off = _cfg(blur={"p": 0, "sigma": [1, 2]}, noise={"p": 0, "sigma": [5, 9]},
               poisson={"p": 0, "scale": [1, 2]}, jpeg={"p": 0, "quality": [30, 40]})
    assert not off.enabled
    sample = Degrader(off, 4, seed=1).sample(0, 0, 0)
    assert sample.corrupt(lr) is lr
    pair = _pair()
    crop = pair.lr[1:13, 2:14]
    assert sample.resample(pair.hr, (1, 2), crop) is crop
    clean = CropSampler([pair], 12, 4, 8, seed=3).batch_at(4)
    zero = CropSampler([pair], 12, 4, 8, seed=3, degrade=off).batch_at(4)
    for a, b in zip(clean, zero, strict=True):
        np.testing.assert_array_equal(a, b)


def _pair(seed: int = 0) -> Pair:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    hr = np.asarray(Image.fromarray(small).resize((192, 160), Image.BICUBIC))
    return Pair("x", hr, downscale(hr, 4))


def _high_freq(img: np.ndarray) -> float:
    a = img.astype(np.float64)
    lap = 4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:]
    return float(np.mean(lap**2))


def test_blur_before_the_downscale():
    pair = _pair()
    # sigma 0: the cached bicubic LR's crop bit for bit, inside and at the image border, so the
    # blur sits exactly where the downscale does.
    for y, x in ((0, 0), (9, 14), (40 - 12, 48 - 12), (3, 48 - 12)):
        np.testing.assert_array_equal(blurred_lr(pair.hr, (y, x), 12, 4, 0.0),
                                      pair.lr[y : y + 12, x : x + 12])
    energies = [_high_freq(blurred_lr(pair.hr, (10, 10), 24, 4, s)) for s in (0.0, 1.0, 2.0, 3.0)]
    assert all(a > b for a, b in zip(energies, energies[1:], strict=False)), energies
    assert energies[-1] < 0.7 * energies[0]
    # Through the config: p 1 with one sigma is that blur at that crop.
    cfg = _cfg(blur={"p": 1.0, "sigma": [2.0, 2.0]})
    out = Degrader(cfg, 4, seed=1).sample(0, 0, 0).resample(pair.hr, (10, 10), pair.lr[10:34, 10:34])
    np.testing.assert_array_equal(out, blurred_lr(pair.hr, (10, 10), 24, 4, 2.0))


ALL_ON = {"blur": {"p": 0.5, "sigma": [0.5, 1.5]}, "noise": {"p": 0.5, "sigma": [1, 5]},
          "poisson": {"p": 0.5, "scale": [0.1, 0.5]}, "jpeg": {"p": 0.8, "quality": [30, 95]}}


def test_same_seed_same_degradations_other_samples_differ():
    flat = Pair("flat", np.full((64, 64, 3), 100, np.uint8), np.full((16, 16, 3), 100, np.uint8))
    noisy = _cfg(noise={"p": 1.0, "sigma": [3, 3]})
    a = CropSampler([flat], 8, 4, 6, seed=5, degrade=noisy).batch_at(7)[0]
    b = CropSampler([flat], 8, 4, 6, seed=5, degrade=noisy).batch_at(7)[0]
    np.testing.assert_array_equal(a, b)
    # Every crop of a flat image is the same: any difference is the degradation's.
    assert len({a[i].tobytes() for i in range(6)}) == 6, "each index draws its own"
    other_step = CropSampler([flat], 8, 4, 6, seed=5, degrade=noisy).batch_at(8)[0]
    other_seed = CropSampler([flat], 8, 4, 6, seed=6, degrade=noisy).batch_at(7)[0]
    assert not np.array_equal(a, other_step) and not np.array_equal(a, other_seed)


def test_workers_and_resumption_give_the_same_degradations():
    sampler = CropSampler([_pair(0), _pair(1)], 12, 4, 4, seed=2, degrade=_cfg(**ALL_ON))
    straight = list(step_batches(sampler, 0, 6))
    resumed = list(step_batches(sampler, 3, 6, workers=2))
    for (lr_a, hr_a), (lr_b, hr_b) in zip(straight[3:], resumed, strict=True):
        assert np.array_equal(lr_a.numpy(), lr_b.numpy()) and np.array_equal(hr_a.numpy(), hr_b.numpy())


def test_the_trainers_batches_keep_the_hr_and_degrade_the_lr(tmp_path):
    """The trainer's own sampler: its HR crops are the clean run's bit for bit (and the cached
    pairs are unchanged), its LR crops are degraded, and validation covers each named input."""
    from training.train.loop import Trainer

    photos = tmp_path / "photos"
    photos.mkdir()
    smooth_photos(photos)

    def trainer(degrade: DegradeConfig) -> Trainer:
        return Trainer(TrainConfig(
            name="t", variant="c4", seed=4, threads=1, phase1=PhaseConfig(steps=4),
            data=DataConfig(root=str(photos), cache=str(tmp_path / "cache"), lr_crop=16, batch=8,
                            val_crop=64, val_images=1),
            degrade=degrade, out_dir=str(tmp_path)))

    clean = trainer(DegradeConfig())
    real = trainer(_cfg(**ALL_ON, val=["clean", "jpeg50"]))
    before = [np.array(p.hr) for p in real.pairs]
    changed = 0
    clean_batches = step_batches(clean.sampler, 0, 4)
    for (lr_c, hr_c), (lr_r, hr_r) in zip(clean_batches, step_batches(real.sampler, 0, 4, workers=1),
                                          strict=True):
        assert np.array_equal(hr_c.numpy(), hr_r.numpy())
        changed += int(not np.array_equal(lr_c.numpy(), lr_r.numpy()))
    assert changed == 4
    for pair, hr in zip(real.pairs, before, strict=True):
        assert np.array_equal(pair.hr, hr)
    assert [p.name for p in real.val] == [clean.val[0].name, clean.val[0].name + "@jpeg50"]
    assert np.array_equal(real.val[1].hr, clean.val[0].hr)
    np.testing.assert_array_equal(real.val[1].lr, _pil_jpeg(np.asarray(clean.val[0].lr), 50))


def test_named_degradations_and_config_checks():
    assert parse_names("jpeg50, jpeg75,jpeg50") == ["clean", "jpeg50", "jpeg75"]
    assert parse_names("clean,jpeg100") == ["clean", "jpeg100"]
    for bad in ("jpeg0", "jpeg101", "png", "blur2"):
        with pytest.raises(ValueError, match="unknown degradation"):
            parse_names(bad)
    lr = _texture()
    assert apply_named(lr, "clean") is lr
    np.testing.assert_array_equal(apply_named(lr, "jpeg75"), _pil_jpeg(lr, 75, subsampling="4:2:0"))
    pair = Pair("a", np.zeros((48, 48, 3), np.uint8), lr)
    assert [p.name for p in named_pairs([pair], ["clean", "jpeg30"])] == ["a", "a@jpeg30"]
    for bad in ({"jpeg": {"quality": [80, 40]}}, {"jpeg": {"quality": [0, 40]}},
                {"noise": {"p": 1.5}}, {"blur": {"sigma": [-1, 1]}}, {"val": ["jpeg"]},
                {"val": []}, {"jpeg": {"q": 3}}):
        with pytest.raises(ValidationError):
            DegradeConfig.model_validate(bad)


@pytest.mark.parametrize("name", ["cpu_c16nla_real_291", "gpu_c16nla_real_291"])
def test_the_real_configs_load_with_degradations_on(name):
    cfg = load_config(ROOT / "training" / "configs" / f"{name}.toml")
    assert cfg.degrade.enabled and cfg.degrade.jpeg.p >= 0.5
    assert cfg.init.startswith("weights:") and "c16nla" in cfg.init
    assert "jpeg50" in cfg.degrade.val and "clean" in cfg.degrade.val
