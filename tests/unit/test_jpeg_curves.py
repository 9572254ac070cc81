"""The JPEG-quality curves and crops of the model card (issue 27), and shipping a fine-tune."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from training.crops import crops_figure, parse_box
from training.degrade_plot import crossing, plot_jpeg_curves
from training.evaluate import Cell
from training.models import create_model
from training.train.ship import same_structure


def _tables(real: list[float], plain: list[float]) -> dict[str, dict[str, dict[str, Cell]]]:
    out = {"clean": {"real": {"bsd100": Cell(27.2, 0.7)}, "plain": {"bsd100": Cell(27.3, 0.7)}}}
    for q, a, b in zip((30, 60, 90), real, plain, strict=True):
        out[f"jpeg{q}"] = {"real": {"bsd100": Cell(a, 0.6)}, "plain": {"bsd100": Cell(b, 0.6)}}
    return out


def test_crossing_is_the_first_quality_where_the_jpeg_model_stops_winning(tmp_path: Path) -> None:
    assert crossing(_tables([25.0, 26.0, 26.9], [24.5, 25.9, 27.0]), "real", "plain", "bsd100") == 90
    assert crossing(_tables([25.0, 26.0, 27.1], [24.5, 25.9, 27.0]), "real", "plain", "bsd100") is None
    png = plot_jpeg_curves(_tables([25.0, 26.0, 26.9], [24.5, 25.9, 27.0]), tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_crops_figure_draws_each_method(tmp_path: Path) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (64, 72, 3), dtype=np.uint8)
    out = crops_figure(hr, {"c4": create_model("c4")}, "jpeg50", [(0, 0, 32), (16, 8, 32)],
                       tmp_path / "crops.png")
    assert out.stat().st_size > 1000
    with pytest.raises(ValueError, match="leaves the 72x64 image"):
        crops_figure(hr, {}, "clean", [(60, 0, 32)], tmp_path / "x.png")
    with pytest.raises(ValueError, match="x,y,size"):
        parse_box("1,2")


def test_model_crops_cli_refuses_bad_input_by_name(tmp_path: Path) -> None:
    from imdsr.cli import app

    res = CliRunner().invoke(app, ["model", "crops", str(tmp_path / "none.png"), "-o",
                                   str(tmp_path / "o.png"), "--weights", "c4", "--box", "0,0,32"])
    assert res.exit_code != 0 and "none.png" in res.output


def test_c16nla_real_has_c16nlas_structure_and_no_other() -> None:
    assert same_structure("c16nla", "c16nla_real") and not same_structure("c4", "c16nla_real")
