"""`imdsr data standard` and `imdsr eval --benchmark` on small stand-in sets.

The real sets are third-party images that are never committed; these tests write a few images in
the layout of the public repositories, a manifest of their hashes in place of the committed one,
and run the real command line on them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from imdsr.cli import app
from training.data import standard
from training.data.standard import (
    BENCHMARKS,
    TRAIN_SETS,
    StandardSetError,
    build_set,
    load_manifest,
    parse_set_names,
    set_files,
    write_manifest,
)


def test_committed_manifest_lists_the_standard_sets():
    sets = load_manifest()
    assert set(sets) == {*TRAIN_SETS, *BENCHMARKS}
    counts = {name: len(s.files) for name, s in sets.items()}
    assert counts == {"train291": 291, "set5": 5, "set14": 14, "bsd100": 100, "urban100": 100}
    for s in sets.values():
        names = [f.name for f in s.files]
        assert len(set(names)) == len(names)
        assert all(re.fullmatch(r"[0-9a-f]{64}", f.sha256) for f in s.files)
    t91 = [f for f in sets["train291"].files if f.source.startswith("data/yang91/")]
    assert len(t91) == 91


@pytest.fixture
def clone(tmp_path, monkeypatch) -> Path:
    """A stand-in clone (SelfExSR's layout) with 'set5' of 3 images and 'set14' of 2, and a
    manifest of them in place of the committed one."""
    repo = tmp_path / "SelfExSR"
    rng = np.random.default_rng(0)
    sets = {}
    for name, folder, count in (("set5", "Set5", 3), ("set14", "Set14", 2)):
        files = []
        d = repo / "data" / folder / "image_SRF_4"
        d.mkdir(parents=True)
        for i in range(count):
            small = rng.integers(0, 256, (9 + i, 11, 3), dtype=np.uint8)
            img = Image.fromarray(small).resize((70 + 4 * i, 83), Image.BICUBIC)
            path = d / f"img_{i + 1:03d}_SRF_4_HR.png"
            img.save(path)
            files.append((f"img_{i + 1:03d}.png", path.relative_to(repo), path))
        sets[name] = ("jbhuang0604/SelfExSR", folder, files)
    manifest = tmp_path / "manifest.json"
    write_manifest(sets, manifest)
    monkeypatch.setattr(standard, "MANIFEST", manifest)
    return repo


def test_build_copies_and_verifies(clone, tmp_path):
    out = build_set("set5", [tmp_path / "elsewhere", clone], tmp_path / "sets")
    assert sorted(p.name for p in out.iterdir()) == ["img_001.png", "img_002.png", "img_003.png"]
    assert [p.name for p in set_files("set5", tmp_path / "sets")] == sorted(
        p.name for p in out.iterdir())


def test_missing_and_changed_files_are_named(clone, tmp_path):
    (clone / "data/Set5/image_SRF_4/img_002_SRF_4_HR.png").unlink()
    third = clone / "data/Set5/image_SRF_4/img_003_SRF_4_HR.png"
    third.write_bytes(third.read_bytes() + b"x")
    with pytest.raises(StandardSetError) as err:
        build_set("set5", [clone], tmp_path / "sets")
    msg = str(err.value)
    assert "1 missing and 1 changed of 3" in msg
    assert "img_002_SRF_4_HR.png" in msg and "img_003_SRF_4_HR.png" in msg
    assert not (tmp_path / "sets" / "set5").exists(), "nothing is half-built"


def test_a_built_set_that_changed_is_refused(clone, tmp_path):
    out = build_set("set14", [clone], tmp_path / "sets")
    (out / "img_001.png").write_bytes(b"not the image")
    with pytest.raises(StandardSetError, match="1 of 2 files missing or changed.*img_001.png"):
        set_files("set14", tmp_path / "sets")
    with pytest.raises(StandardSetError, match="does not exist; build it"):
        set_files("set5", tmp_path / "nowhere")


def test_set_names_are_checked(clone):
    assert parse_set_names("set14, set5") == ["set14", "set5"]
    assert parse_set_names("all") == ["set5", "set14"]
    with pytest.raises(StandardSetError, match="unknown set urban1000; known: set5, set14"):
        parse_set_names("set5,urban1000")


def test_data_standard_command(clone, tmp_path):
    runner = CliRunner()
    out = tmp_path / "sets"
    ok = runner.invoke(app, ["data", "standard", "set5,set14", "--from", str(clone),
                             "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    assert "set5: 3 files verified" in ok.output and "set14: 2 files verified" in ok.output
    bad = runner.invoke(app, ["data", "standard", "set5", "--from", str(tmp_path / "empty"),
                              "--out", str(out)])
    assert bad.exit_code == 2
    assert "missing: data/Set5/image_SRF_4/img_001_SRF_4_HR.png" in bad.output


def _cells(output: str, label: str) -> list[float]:
    line = next(ln for ln in output.splitlines() if ln.startswith(label + " "))
    return [float(x) for x in re.findall(r"\d+\.\d+", line[len(label):])]


def test_eval_benchmark_is_the_per_image_protocol_averaged(clone, tmp_path):
    """The Table 3 numbers are the means of `imdsr eval --data` over the same images: so where
    --data reproduces the paper (docs/MODEL_CARD.md), --benchmark does too."""
    from training.evaluate import evaluate_images, folder_photos, mean_row
    from training.weights.store import load_model, shipped_weights

    runner = CliRunner()
    out = tmp_path / "sets"
    assert runner.invoke(app, ["data", "standard", "all", "--from", str(clone),
                               "--out", str(out)]).exit_code == 0
    c16 = shipped_weights("c16nla")
    res = runner.invoke(app, ["eval", "--benchmark", "set5,set14", "--sets-root", str(out),
                              "--models", "c4", "--weights", f"c16nla={c16}"])
    assert res.exit_code == 0, res.output
    for label, variant in (("c4", "c4"), (f"c16nla ({c16.name})", "c16nla")):
        model, _ = load_model(variant)
        want = []
        for name in ("set5", "set14"):
            mean = mean_row(evaluate_images(model, folder_photos(out / name), 4))
            want += [mean.model.y_psnr, mean.model.y_ssim]
            bic = (mean.bicubic.y_psnr, mean.bicubic.y_ssim)
        got = _cells(res.output, label)
        want.append((want[0] + want[2]) / 2)  # the mean PSNR column
        assert got == pytest.approx(want, abs=0.006), label
    assert _cells(res.output, "bicubic")[2:4] == pytest.approx(list(bic), abs=0.006)


def test_eval_benchmark_refusals(clone, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["eval", "--benchmark", "set5", "--sets-root", str(tmp_path)])
    assert res.exit_code == 2 and "imdsr data standard set5" in res.output
    res = runner.invoke(app, ["eval", "--benchmark", "set7"])
    assert res.exit_code == 2 and "unknown set set7" in res.output
    out = tmp_path / "sets"
    runner.invoke(app, ["data", "standard", "set5", "--from", str(clone), "--out", str(out)])
    res = runner.invoke(app, ["eval", "--benchmark", "set5", "--sets-root", str(out),
                              "--models", "c99"])
    assert res.exit_code == 2 and "unknown variant c99" in res.output
    res = runner.invoke(app, ["eval", "--benchmark", "set5", "--sets-root", str(out),
                              "--weights", "c16nla=" + str(tmp_path / "none.safetensors")])
    assert res.exit_code == 2 and "weights file not found" in res.output


def _pil_jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    import io

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality, subsampling="4:2:0")
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def test_eval_benchmark_degrade_measures_clean_and_jpeg_side_by_side(clone, tmp_path):
    """--degrade jpeg50,jpeg75: the clean rows are the plain benchmark's, and each JPEG block is
    the per-image protocol with PIL's JPEG (4:2:0) applied to the LR before bicubic and model."""
    from imdsr.imaging.resize import downscale, modcrop
    from training.data.pairs import load_rgb
    from training.evaluate import evaluate_pair
    from training.weights.store import load_model

    runner = CliRunner()
    out = tmp_path / "sets"
    assert runner.invoke(app, ["data", "standard", "all", "--from", str(clone),
                               "--out", str(out)]).exit_code == 0
    common = ["eval", "--benchmark", "set5,set14", "--sets-root", str(out), "--models", "c4"]
    plain = runner.invoke(app, common)
    res = runner.invoke(app, [*common, "--degrade", "jpeg50,jpeg75"])
    assert res.exit_code == 0, res.output
    rows = {}
    header, *lines = res.stdout.strip().splitlines()  # stdout: the progress bar is on stderr
    assert header.split()[:2] == ["LR", "method"]
    for line in lines:
        lr, method, *cells = re.split(r"\s{2,}", line.strip())
        rows[lr, method] = [float(x) for x in re.findall(r"\d+\.\d+", " ".join(cells))]
    assert list(rows) == [(d, m) for d in ("clean", "jpeg50", "jpeg75") for m in ("bicubic", "c4")]
    for method in ("bicubic", "c4"):
        assert rows["clean", method] == _cells(plain.stdout, method)
    model, _ = load_model("c4")
    for quality in (50, 75):
        for k, name in enumerate(("set5", "set14")):
            got = [evaluate_pair(model, p.name, hr, _pil_jpeg(downscale(hr, 4), quality), 4)
                   for p in sorted((out / name).iterdir())
                   for hr in [modcrop(load_rgb(p), 4)]]
            for method, pick in (("bicubic", lambda r: r.bicubic), ("c4", lambda r: r.model)):
                want = [np.mean([pick(r).y_psnr for r in got]), np.mean([pick(r).y_ssim for r in got])]
                assert rows[f"jpeg{quality}", method][2 * k : 2 * k + 2] == pytest.approx(want, abs=0.006)
    assert rows["jpeg50", "bicubic"][0] < rows["jpeg75", "bicubic"][0] < rows["clean", "bicubic"][0]
    bad = runner.invoke(app, [*common, "--degrade", "jpeg500"])
    assert bad.exit_code == 2 and "unknown degradation 'jpeg500'" in bad.output
    alone = runner.invoke(app, ["eval", "--variant", "c4", "--degrade", "jpeg50"])
    assert alone.exit_code == 2 and "--degrade" in alone.output


def test_pack_keeps_every_pixel(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(src / "t1.bmp")
    Image.fromarray(rng.integers(0, 256, (25, 17, 3), dtype=np.uint8)).save(src / "100075.png")
    res = CliRunner().invoke(app, ["data", "pack", str(src), str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "2 images" in res.output
    for name in ("t1.bmp", "100075.png"):
        packed = tmp_path / "out" / (Path(name).stem + ".webp")
        with Image.open(src / name) as a, Image.open(packed) as b:
            assert np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))
    res = CliRunner().invoke(app, ["data", "pack", str(tmp_path / "none"), str(tmp_path / "o")])
    assert res.exit_code == 2 and "no images under" in res.output
