"""SRneXt's own parts: the fixed shift of the MLP, and its published file's wrapper and range."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

from imdsr.cli import app
from tests.support.reference import peer_golden, peer_layout, sin_weights
from training.models import create_model
from training.models.srnext import shift_fifths
from training.weights.store import load_into

FILE = "team05_exnet.pth"


def test_each_fifth_of_the_channels_moves_one_pixel_with_zeros_at_the_border() -> None:
    x = torch.arange(5 * 3 * 4, dtype=torch.float32).reshape(1, 5, 3, 4) + 1
    y = shift_fifths(x)
    assert torch.equal(y[0, 0, :, :-1], x[0, 0, :, 1:]) and not y[0, 0, :, -1].any()  # from the right
    assert torch.equal(y[0, 1, :, 1:], x[0, 1, :, :-1]) and not y[0, 1, :, 0].any()   # from the left
    assert torch.equal(y[0, 2, :-1], x[0, 2, 1:]) and not y[0, 2, -1].any()           # from below
    assert torch.equal(y[0, 3, 1:], x[0, 3, :-1]) and not y[0, 3, 0].any()            # from above
    assert torch.equal(y[0, 4], x[0, 4])


def test_the_published_file_s_params_wrapper_imports(tmp_path: Path) -> None:
    # team05_exnet.pth keeps its state dict under "params", as BasicSR saves it.
    src = tmp_path / FILE
    torch.save({"params": {k: torch.from_numpy(v) for k, v in sin_weights(peer_layout(FILE)).items()}}, src)
    dst = tmp_path / "srnext.safetensors"
    result = CliRunner().invoke(app, ["weights", "import-ntire22", "--arch", "srnext", str(src), str(dst)])
    assert result.exit_code == 0, result.output
    assert "variant srnext" in result.output and "244,558 params" in result.output
    model = create_model("srnext").eval()
    load_into(model, dst, "srnext", 4)
    x, y = peer_golden(FILE)["33x50"]
    with torch.inference_mode():
        out = model(torch.from_numpy(x)).numpy()
    assert np.abs(out - y).max() < 1e-4  # [0, 255] folded into head and tail


def test_bicubic_start_is_refused_by_name() -> None:
    from training.train.init import bicubic_start

    try:
        bicubic_start(create_model("srnext"))
    except TypeError as exc:
        assert "residual_out" in str(exc)
    else:
        raise AssertionError("SRneXt has no residual_out: the bicubic start must refuse it")
