"""`imdsr weights import-ntire22`: converts the published checkpoint, refuses anything else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from imdsr.cli import app
from tests.support.reference import golden, synthetic_checkpoint
from training.models import create_model
from training.weights.store import WeightsError, WeightsMeta, load_into, read_meta, save_weights

runner = CliRunner()


def _save_pth(tmp_path: Path, ckpt: dict[str, np.ndarray]) -> Path:
    path = tmp_path / "team19_imdeception.pth"
    torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in ckpt.items()}, path)
    return path


def test_import_then_load_reproduces_the_golden(tmp_path: Path) -> None:
    src = _save_pth(tmp_path, synthetic_checkpoint())
    dst = tmp_path / "c16nla.safetensors"
    result = runner.invoke(app, ["weights", "import-ntire22", str(src), str(dst)])
    assert result.exit_code == 0, result.output
    meta = read_meta(dst)
    assert (meta.variant, meta.scale) == ("c16nla", 4)
    assert meta.source.startswith("ntire22:team19_imdeception.pth:sha256=")
    model = create_model("c16nla").eval()
    load_into(model, dst, "c16nla", 4)
    x, y = golden()["33x50"]
    with torch.inference_mode():
        assert np.abs(model(torch.from_numpy(x)).numpy() - y).max() < 1e-4


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c.pop("block3.conv2.conv1.weight"), "missing tensors: block3.conv2.conv1.weight"),
        (lambda c: c.__setitem__("block7.conv0.weight", np.zeros(3, np.float32)),
         "unexpected tensors: block7.conv0.weight"),
        (lambda c: c.__setitem__("conv_out.weight", np.zeros((48, 64, 1, 1), np.float32)),
         "conv_out.weight: expected [48, 64, 3, 3], got [48, 64, 1, 1]"),
    ],
    ids=["missing", "extra", "wrong-shape"],
)
def test_importer_refuses_mismatches_naming_the_tensor(tmp_path: Path, mutate, expected: str) -> None:
    ckpt = synthetic_checkpoint()
    mutate(ckpt)
    dst = tmp_path / "out.safetensors"
    result = runner.invoke(app, ["weights", "import-ntire22", str(_save_pth(tmp_path, ckpt)), str(dst)])
    assert result.exit_code == 2
    assert expected in result.output
    assert not dst.exists()


def test_importer_refuses_a_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "x.pth"
    bad.write_bytes(b"not a checkpoint")
    result = runner.invoke(app, ["weights", "import-ntire22", str(bad), str(tmp_path / "o.safetensors")])
    assert result.exit_code == 2
    assert "not a readable PyTorch checkpoint" in result.output


def test_loading_checks_the_variant_in_the_metadata(tmp_path: Path) -> None:
    path = save_weights(tmp_path / "c4.safetensors", create_model("c4").state_dict(),
                        WeightsMeta("c4", 4, "test"))
    with pytest.raises(WeightsError, match="holds variant 'c4', not 'c8'"):
        load_into(create_model("c8"), path, "c8", 4)
    with pytest.raises(WeightsError, match="is for x4, not x2"):
        load_into(create_model("c4", scale=2), path, "c4", 2)
