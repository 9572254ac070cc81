"""Schedule, losses, crops/augmentations and the bicubic start."""

import numpy as np
import pytest
import torch

from imdsr.imaging.resize import downscale, upscale
from training.data.crops import CropSampler, dihedral
from training.data.pairs import Pair
from training.models.registry import VARIANTS, create_model
from training.train.config import PhaseConfig
from training.train.init import _luma_chroma_construction, apply_start, linear_path
from training.train.losses import charbonnier, make_loss
from training.train.schedule import knee_lr


def test_knee_schedule_shape():
    ph = PhaseConfig(steps=100, peak_lr=5e-4, warmup=10, explore=40)
    lrs = [knee_lr(i, ph) for i in range(100)]
    assert lrs[0] == pytest.approx(5e-5)
    assert lrs[9] == pytest.approx(5e-4)
    assert all(lr == pytest.approx(5e-4) for lr in lrs[10:50])
    assert all(a > b for a, b in zip(lrs[50:], lrs[51:], strict=False))  # strictly decaying
    assert lrs[99] == pytest.approx(5e-4 / 50)
    assert knee_lr(100, ph) == pytest.approx(0.0)


def test_losses():
    p, t = torch.zeros(4), torch.tensor([0.0, 0.3, -0.4, 0.0])
    want = np.mean(np.sqrt(np.array([0, 0.09, 0.16, 0]) + 0.01))
    assert float(charbonnier(p, t, 0.1)) == pytest.approx(want, rel=1e-6)
    assert float(make_loss("l1")(p, t)) == pytest.approx(0.175)
    assert float(make_loss("l2")(p, t)) == pytest.approx(0.0625)
    with pytest.raises(ValueError):
        make_loss("huber")


def test_dihedral_group_is_eight_distinct():
    a = np.arange(12).reshape(3, 4, 1)
    outs = {dihedral(a, k).tobytes() + bytes(dihedral(a, k).shape) for k in range(8)}
    assert len(outs) == 8


def _pair(seed: int = 0) -> Pair:
    hr = np.random.default_rng(seed).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    return Pair("x", hr, downscale(hr, 4))


def test_crops_are_aligned_deterministic_and_augmented():
    pair = _pair()
    s = CropSampler([pair], lr_size=8, scale=4, batch=6, seed=3, augment=False)
    lr, hr = s.batch_at(5)
    assert lr.shape == (6, 3, 8, 8) and hr.shape == (6, 3, 32, 32)
    # Each LR crop is a window of the cached LR at the position its HR crop came from.
    full_lr = pair.lr.transpose(2, 0, 1).astype(np.float32) / 255
    for i in range(6):
        hits = [(y, x) for y in range(full_lr.shape[1] - 7) for x in range(full_lr.shape[2] - 7)
                if np.array_equal(full_lr[:, y:y + 8, x:x + 8], lr[i])]
        y, x = hits[0]
        np.testing.assert_array_equal(pair.hr[4 * y:4 * y + 32, 4 * x:4 * x + 32].transpose(2, 0, 1)
                                      .astype(np.float32) / 255, hr[i])
    again = CropSampler([pair], 8, 4, 6, seed=3, augment=False).batch_at(5)
    np.testing.assert_array_equal(again[0], lr)
    assert not np.array_equal(s.batch_at(6)[0], lr)
    aug = CropSampler([pair], 8, 4, 64, seed=3, augment=True)
    la, ha = aug.batch_at(0)
    assert la.shape == (64, 3, 8, 8) and ha.shape == (64, 3, 32, 32)


@pytest.mark.parametrize("variant", [v for v, s in VARIANTS.items() if s.architecture.bicubic_start])
def test_bicubic_start_is_bicubic_inside(variant):
    """Every registered architecture (IMDeception and the NTIRE 2022 peers) starts as bicubic:
    with `residual_out` zeroed the net is head -> tail, and a head of >= 27 channels makes that
    MATLAB bicubic exactly (narrower heads get the approximation tested below)."""
    rng = np.random.default_rng(0)
    lr = rng.random((24, 24, 3))
    torch.manual_seed(0)
    model = create_model(variant)
    note = apply_start(model, "bicubic", variant)
    x = torch.from_numpy(lr.transpose(2, 0, 1)[None].astype(np.float32))
    with torch.no_grad():
        y = model(x)[0].numpy().transpose(1, 2, 0)
        linear = linear_path(model, x)[0].numpy().transpose(1, 2, 0)
    assert not model.residual_out.weight.any() and not model.residual_out.bias.any()
    np.testing.assert_allclose(y, linear, atol=1e-6)  # the residual branch contributes nothing
    if model.head.out_channels < 27:
        assert note == "luma/chroma bicubic approximation"
        return
    assert note == "exact bicubic start"
    ref = upscale(lr, 4)
    assert np.abs(y - ref)[12:-12, 12:-12].max() < 1e-4


def test_every_peer_gets_the_exact_start():
    for name, spec in VARIANTS.items():
        if spec.arch != "imdeception":
            assert create_model(name).head.out_channels >= 27, name


def test_bicubic_start_refuses_a_model_without_residual_out():
    from torch import nn

    class Bare(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = 4
            self.head = nn.Conv2d(3, 32, 3, padding=1)
            self.tail = nn.Conv2d(32, 48, 3, padding=1)

    model = Bare()
    before = model.head.weight.detach().clone()
    with pytest.raises(TypeError, match="residual_out"):
        apply_start(model, "bicubic", "bare")
    assert torch.equal(model.head.weight, before)  # refused before anything was changed


def test_narrow_head_start_is_close_to_bicubic_on_grey():
    # The c4 construction is exact for grey images (chroma zero), approximate otherwise.
    g = np.random.default_rng(1).random((24, 24, 1)).repeat(3, 2)
    model = create_model("c4")
    _luma_chroma_construction(model)
    x = torch.from_numpy(g.transpose(2, 0, 1)[None].astype(np.float32))
    with torch.no_grad():
        y = linear_path(model, x)[0].numpy().transpose(1, 2, 0)
        full = model(x)[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(y, full, atol=1e-6)  # residual branch contributes nothing
    assert np.abs(y - upscale(g, 4))[12:-12, 12:-12].max() < 1e-4


def test_flat_crops_are_resampled():
    from training.data.crops import detail

    flat = np.full((64, 64, 3), 90, np.uint8)
    flat[:, 32:] = np.random.default_rng(0).integers(0, 256, (64, 32, 3), dtype=np.uint8)
    pair = Pair("half", flat, downscale(flat, 4))
    s = CropSampler([pair], lr_size=6, scale=4, batch=32, seed=0, augment=False,
                    min_detail=0.05, tries=50)
    lr, _ = s.batch_at(0)
    crops = (lr.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)
    assert min(detail(c) for c in crops) >= 0.05


def test_fit_long_side():
    from training.data.pairs import fit_long_side

    img = np.zeros((100, 60, 3), np.uint8)
    assert fit_long_side(img, 0) is img and fit_long_side(img, 100) is img
    assert fit_long_side(img, 50).shape == (50, 30, 3)


def test_multiscale_pairs(tmp_path):
    from PIL import Image

    from imdsr.imaging.resize import imresize
    from training.data.pairs import load_pairs

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (101, 83, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    pairs = load_pairs([tmp_path / "a.png"], 4, tmp_path / "cache", hr_scales=(1.0, 0.5))
    assert [p.name for p in pairs] == ["a", "a@0.5"]
    full, half = pairs
    assert full.hr.shape == (100, 80, 3) and full.lr.shape == (25, 20, 3)
    # The shrunk HR is the MATLAB-style bicubic of the photo, cropped to the scale; its LR its x4.
    np.testing.assert_array_equal(half.hr, imresize(img, 0.5)[:48, :40])
    np.testing.assert_array_equal(half.lr, downscale(np.asarray(half.hr), 4))
    again = load_pairs([tmp_path / "a.png"], 4, tmp_path / "cache", hr_scales=(0.5,))
    np.testing.assert_array_equal(again[0].hr, half.hr)  # from the cache, same bytes
    with pytest.raises(ValueError, match="hr_scale"):
        load_pairs([tmp_path / "a.png"], 4, tmp_path / "cache", hr_scales=(1.5,))


def test_photo_heuristic(tmp_path):
    from PIL import Image

    from training.data.photos import is_photo

    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (1000, 1100, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(tmp_path / "photo.jpg")
    Image.fromarray(noisy).save(tmp_path / "art.png")
    Image.fromarray(noisy[:500]).save(tmp_path / "small.jpg")
    Image.fromarray(np.full_like(noisy, 40)).save(tmp_path / "flat.jpg")
    Image.fromarray(noisy).save(tmp_path / "screenshot.jpg")
    verdicts = {p.stem: is_photo(p)[0] for p in tmp_path.iterdir()}
    assert verdicts == {"photo": True, "art": False, "small": False, "flat": False,
                        "screenshot": False}


def test_parallel_cache_build_matches_serial(tmp_path):
    from PIL import Image

    from training.data.pairs import load_pairs

    rng = np.random.default_rng(1)
    files = []
    for i in range(3):
        files.append(tmp_path / f"p{i}.png")
        Image.fromarray(rng.integers(0, 256, (64, 72, 3), dtype=np.uint8)).save(files[-1])
    par = load_pairs(files, 4, tmp_path / "par", hr_scales=(1.0, 0.5), workers=2)
    ser = load_pairs(files, 4, tmp_path / "ser", hr_scales=(1.0, 0.5))
    assert [p.name for p in par] == [p.name for p in ser]
    for a, b in zip(par, ser, strict=True):
        np.testing.assert_array_equal(a.hr, b.hr)
        np.testing.assert_array_equal(a.lr, b.lr)


def test_worker_batches_are_the_in_process_batches():
    from training.data.loader import step_batches

    sampler = CropSampler([_pair(0), _pair(1)], 6, 4, 3, seed=5)
    inline = list(step_batches(sampler, 7, 12))
    ahead = list(step_batches(sampler, 7, 12, workers=2))
    assert len(inline) == len(ahead) == 5
    for (a_lr, a_hr), (b_lr, b_hr) in zip(inline, ahead, strict=True):
        torch.testing.assert_close(a_lr, b_lr, rtol=0, atol=0)
        torch.testing.assert_close(a_hr, b_hr, rtol=0, atol=0)
    lr, _ = sampler.batch_at(9)
    np.testing.assert_array_equal(inline[2][0].numpy(), lr)  # item i is step start + i


def test_photo_set_builds_where_its_parent_folder_does_not_exist_yet(tmp_path, monkeypatch):
    # A fresh clone has no data/: `imdsr data photos data/photos` once failed in mkdtemp there.
    from PIL import Image

    from training.data import photos

    def fake_fetch(workdir):
        tree = workdir / "tree"
        tree.mkdir(parents=True)
        rng = np.random.default_rng(0)
        side = photos.MIN_SIDE
        Image.fromarray(rng.integers(0, 256, (side, side + 8, 3), dtype=np.uint8)).save(tree / "a.jpg")
        return tree

    monkeypatch.setattr(photos, "fetch_debian_wallpapers", fake_fetch)
    out = tmp_path / "data" / "photos"
    entries = photos.build_from_debian(out)
    assert len(entries) == 1 and (out / "manifest.json").is_file()


def test_mixed_sets_are_drawn_by_their_shares_and_small_images_left_out():
    big = [Pair(f"b{i}", *(lambda hr: (hr, downscale(hr, 4)))(
        np.random.default_rng(i).integers(0, 256, (128, 160, 3), dtype=np.uint8))) for i in range(3)]
    small = [_pair(7)]                        # LR 16x20: too small for a 24 px crop
    medium = [Pair("m", *(lambda hr: (hr, downscale(hr, 4)))(
        np.random.default_rng(9).integers(0, 256, (96, 96, 3), dtype=np.uint8)))]
    pairs = big + small + medium
    groups = [0, 0, 0, 1, 1]
    # Set 1 (one 24x24-LR image) gets 70% of the draws although it is 1/6 of the area.
    s = CropSampler(pairs, 24, 4, 1, seed=0, groups=groups, shares=[0.3, 0.7])
    assert s.dropped == ["x"]
    assert s.weights[s.groups == 1].sum() == pytest.approx(0.7)
    assert s.weights[s.groups == 0].sum() == pytest.approx(0.3)
    by_area = CropSampler(pairs, 24, 4, 1, seed=0, groups=groups)
    assert by_area.weights[by_area.groups == 1].sum() == pytest.approx(24 * 24 / (3 * 32 * 40 + 576))
    with pytest.raises(ValueError, match="no training images with an LR side of at least 64"):
        CropSampler(pairs, 64, 4, 1, seed=0)


def test_data_sets_config(tmp_path):
    from training.train.config import DataConfig, SetConfig

    assert DataConfig(root="x").training_sets() == [SetConfig(root="x")]
    mixed = DataConfig(sets=[{"root": "a", "weight": 0.6, "holdout": 4}, {"root": "b", "weight": 0.4}])
    assert [s.root for s in mixed.training_sets()] == ["a", "b"]
    with pytest.raises(ValueError, match="give every set a weight > 0, or none"):
        DataConfig(sets=[{"root": "a", "weight": 0.6}, {"root": "b"}])


def test_holdout_picks_evenly_spaced_images(tmp_path):
    from PIL import Image

    from training.data.photos import find_hr_images

    for i in range(12):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / f"{i:02d}.png")
    train, valid = find_hr_images(tmp_path, holdout=3)
    assert [p.stem for p in valid] == ["00", "04", "08"] and len(train) == 9
    assert find_hr_images(tmp_path, holdout=0)[1] == []
    assert [p.stem for p in find_hr_images(tmp_path)[1]] == ["03", "11"]


def test_flat_validation_crops_can_be_left_out():
    from training.train.loop import val_pairs

    flat_hr = np.full((64, 64, 3), 120, np.uint8)
    flat = Pair("flat", flat_hr, downscale(flat_hr, 4))
    busy = _pair(3)
    assert [p.name for p in val_pairs([flat, busy], 32, 4, 8)] == ["flat", "x"]
    assert [p.name for p in val_pairs([flat, busy], 32, 4, 8, min_detail=0.03)] == ["x"]
    assert [p.name for p in val_pairs([flat, busy, busy], 32, 4, 1, min_detail=0.03)] == ["x"]
