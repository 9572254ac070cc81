"""Resume equivalence and an end-to-end train -> ship -> eval on a tiny folder (CI-fast)."""

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.support.photos import smooth_photos
from training.train.checkpoint import LAST, load_checkpoint
from training.train.config import DataConfig, PhaseConfig, TrainConfig
from training.train.loop import Trainer


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    """Nine smooth random 'photos' (one lands in the validation split)."""
    return smooth_photos(tmp_path_factory.mktemp("photos"))


def _cfg(root: Path, out: Path, name: str, phase2: bool = False) -> TrainConfig:
    return TrainConfig(
        name=name, variant="c4", seed=1, init="bicubic", init_fit_steps=3, threads=1,
        phase1=PhaseConfig(loss="charbonnier", steps=4, peak_lr=1e-3, warmup=1, explore=1),
        phase2=PhaseConfig(loss="l2", steps=2, peak_lr=1e-4, warmup=0, explore=0) if phase2
        else None,
        data=DataConfig(root=str(root), cache=str(out / "cache"), lr_crop=8, batch=2,
                        val_crop=64, val_images=1),
        out_dir=str(out), val_every=2, ckpt_every=2, log_every=1)


def _states(run_dir: Path) -> dict[str, torch.Tensor]:
    ck = load_checkpoint(run_dir / LAST)
    flat = {f"model.{k}": v for k, v in ck["model"].items()}
    flat.update({f"ema.{k}": v for k, v in ck["ema"].items()})
    return flat


def test_killed_run_resumes_to_the_same_state(tiny_folder, tmp_path):
    straight = _cfg(tiny_folder, tmp_path, "straight", phase2=True)
    Trainer(straight).run()
    pieces = _cfg(tiny_folder, tmp_path, "pieces", phase2=True)
    # A piece that stops right after its first step, as a killed run's last checkpoint would.
    first = Trainer(pieces, max_minutes=1e-9).run()
    assert first.step == 1
    while load_checkpoint(pieces.run_dir / LAST)["state"]["step"] < 6:
        Trainer(pieces, resume=True, max_minutes=1e-9).run()
    a, b = _states(straight.run_dir), _states(pieces.run_dir)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    rows = (pieces.run_dir / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == [str(i) for i in range(1, 7)]


def test_resume_with_an_edited_config_says_what_changed(tiny_folder, tmp_path, capsys):
    import json

    cfg = _cfg(tiny_folder, tmp_path, "edited")
    Trainer(cfg, max_minutes=1e-9).run()
    capsys.readouterr()
    Trainer(cfg, resume=True, max_minutes=1e-9).run()  # same config: nothing to say
    assert "changed config" not in capsys.readouterr().err
    assert not (cfg.run_dir / "config_changes.log").exists()
    base = _cfg(tiny_folder, tmp_path, "edited")  # configs are immutable: edit a copy
    longer = base.model_copy(update={"phase1": base.phase1.model_copy(update={"steps": 6})})
    Trainer(longer, resume=True, max_minutes=1e-9).run()
    err = capsys.readouterr().err
    assert "changed config" in err and "phase1.steps: 4 -> 6" in err
    assert "phase1.steps: 4 -> 6" in (cfg.run_dir / "config_changes.log").read_text()
    assert json.loads((cfg.run_dir / "config.json").read_text())["phase1"]["steps"] == 6


def test_train_ship_eval_end_to_end(tiny_folder, tmp_path):
    from imdsr.cli import app

    cfg = _cfg(tiny_folder, tmp_path, "e2e")
    state = Trainer(cfg).run()
    assert state.best_step > 0
    assert (cfg.run_dir / "curves.png").stat().st_size > 0
    weights = tmp_path / "c4.safetensors"
    runner = CliRunner()
    res = runner.invoke(app, ["ship", str(cfg.run_dir), "--out", str(weights)])
    assert res.exit_code == 0, res.output
    # A fine-tune ships under another variant's name only where the structure is the same.
    res = runner.invoke(app, ["ship", str(cfg.run_dir), "--out", str(tmp_path / "x.safetensors"),
                              "--as", "c16nla_real"])
    assert res.exit_code == 2 and "structure is not 'c16nla_real'" in res.output, res.output
    res = runner.invoke(app, ["eval", "--variant", "c4", "--weights", str(weights),
                              "--data", str(tiny_folder)])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[0].split()[0] == "image" and lines[-1].split()[0] == "mean"
    assert len(lines) == 1 + 9 + 1


def test_data_photos_dedupes_and_writes_manifest(tiny_folder, tmp_path):
    import json
    import shutil

    from imdsr.cli import app

    src = tmp_path / "src"
    shutil.copytree(tiny_folder, src)
    shutil.copy(src / "img0.png", src / "copy_of_img0.png")
    out = tmp_path / "set"
    res = CliRunner().invoke(app, ["data", "photos", str(out), "--from", str(src), "--no-filter"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["count"] == 9
    assert all(len(p["sha256"]) == 64 and p["width"] == 96 for p in manifest["photos"])


@pytest.mark.parametrize("variant", ["imdn", "rlfn", "efdn"])
def test_cli_trains_and_ships_a_peer(tiny_folder, tmp_path, variant):
    """`imdsr train` runs the NTIRE 2022 peers with the same recipe code as IMDeception: a few
    steps from the exact bicubic start, then `imdsr ship`; the weights load as that variant."""
    import csv
    import math

    from imdsr.cli import app
    from training.weights.store import load_model

    config = tmp_path / f"tiny_{variant}.toml"
    config.write_text(f"""
name = "tiny_{variant}"
variant = "{variant}"
seed = 1
init = "bicubic"
charbonnier_eps = 1e-3
threads = 1
out_dir = "{tmp_path}"
val_every = 3
ckpt_every = 3
log_every = 1

[phase1]
loss = "charbonnier"
steps = 3
peak_lr = 1e-3
warmup = 1
explore = 1

[data]
root = "{tiny_folder}"
cache = "{tmp_path / 'cache'}"
lr_crop = 16
batch = 2
val_crop = 64
val_images = 1
""")
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--config", str(config)])
    assert res.exit_code == 0, res.output
    run_dir = tmp_path / f"tiny_{variant}"
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    assert math.isfinite(float(rows[-1]["val_y_psnr"]))
    weights = tmp_path / f"{variant}.safetensors"
    res = runner.invoke(app, ["ship", str(run_dir), "--out", str(weights)])
    assert res.exit_code == 0, res.output
    model, meta = load_model(variant, weights)
    assert meta.variant == variant and meta.training["init"] == "exact bicubic start"
    with torch.no_grad():
        out = model(torch.rand(1, 3, 16, 16))
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()


def test_benchmark_images_are_refused_as_training_data(tiny_folder, tmp_path, monkeypatch):
    """A benchmark image (by its manifest hash) in a training folder stops the run at start."""
    import shutil

    from training.data import standard
    from training.data.standard import write_manifest

    folder = tmp_path / "mixed"
    shutil.copytree(tiny_folder, folder)
    bench = folder / "img4.png"  # lands in the training split
    manifest = tmp_path / "manifest.json"
    write_manifest({"set5": ("x/y", "stand-in Set5", [("img_001.png", Path("a.png"), bench)])},
                   manifest)
    monkeypatch.setattr(standard, "MANIFEST", manifest)
    with pytest.raises(ValueError, match="1 training/validation images are benchmark images"):
        Trainer(_cfg(folder, tmp_path, "leak"))
