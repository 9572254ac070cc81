"""``imdsr bench zoo``: the renderer, the seams measurement, the importer and the CLI's refusals.

No third-party weights: models are randomly initialised; checkpoints are made by our exporter.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from bench.zoo import (
    PUBLISHED,
    SeamRow,
    ZooReport,
    ZooRow,
    import_ntire22,
    render,
    seam_contexts,
    seams,
    table,
    torch_infer,
)
from imdsr.cli import app
from imdsr.imaging.tiling import TilingRule
from training.models import create_model, get_variant
from training.weights.store import read_meta

runner = CliRunner()


def _report() -> ZooReport:
    rule = get_variant("rlfn").tiling
    rows = [
        ZooRow("c16nla", "imdeception", 316_552, 20_705_181_696, 206_045_184, 62, 201_326_592,
               {"onnxruntime": 700.0, "openvino": 500.0}, {1: 1.5, 4: 1.6}, {1: 690.0, 4: 2600.0},
               0, 29.71, 0.8531, 27.96, 28.19),
        ZooRow("rlfn", "rlfn", 317_218, 19_695_306_752, 80_045_184, 39, 0,
               {"onnxruntime": 300.0, "openvino": 250.0}, {1: 3.0, 4: 3.2}, {1: 340.0, 4: 1300.0},
               0, 29.80, 0.8550, 28.00, 28.19),
    ]
    seam_rows = [SeamRow("rlfn", "rlfn", rule, 126, c, 12, 1.5, lv, f)
                 for c, lv, f in ((18, 40, 0.03), (30, 28, 0.01), (60, 9, 0.001))]
    return ZooReport("imdsr bench zoo --ntire22 zoo", "Test CPU, 2 cores available", "2025-01-01",
                     2, 3, service_setup="runtime openvino", seams_image="astronaut",
                     rows=rows, seams=seam_rows, seconds=300.0)


def test_table_has_one_row_per_model_with_the_challenge_figures_beside_it() -> None:
    text = table(_report())
    lines = text.splitlines()
    assert len(lines) == 4
    c16, rlfn = lines[2], lines[3]
    assert "0.317M" in c16 and "20.71" in c16 and "206.05" in c16 and "| 62 |" in c16
    # 256x256 in, x4 out: 1.048576 Mpx; 500 ms -> 2.10 Mpx/s
    assert "2.10 (500)" in c16 and "1.50 (700)" in c16
    assert "29.71 / 0.8531 (27.96)" in c16
    p = PUBLISHED["c16nla"]
    assert f"{p.psnr_val:.2f} / {p.psnr_test:.2f}" in c16 and "63.18" in c16 and "/ 134 |" in c16
    assert "ByteESR RLFN" in rlfn and "27.11" in rlfn and "| 3.00 | 3.20 |" in rlfn


def test_render_states_command_machine_seams_and_the_issue_s_figures() -> None:
    report = _report()
    doc = render(report, "model_zoo.png")
    assert "`imdsr bench zoo --ntire22 zoo`" in doc and "one run" in doc
    assert "Test CPU, 2 cores available" in doc
    assert "## Tiling seams" in doc and "no contrast-aware channel attention" in doc.lower()
    assert "| rlfn (rlfn) | 6 | 30 | 126 | **30** |" in doc
    assert "1.00%" in doc  # 0.01 of the pixels
    assert "Issue 17" in doc and "| 745 | 1.41 |" in doc
    assert "![" in doc and "model_zoo.png" in doc
    no_extras = ZooReport(report.command, report.machine, report.date, 2, 3, rows=report.rows)
    assert "## Tiling seams" not in render(no_extras)


def test_report_round_trips_through_json() -> None:
    report = _report()
    again = ZooReport.from_dict(json.loads(json.dumps(report.as_dict())))
    assert again == report


def test_seam_contexts_round_to_the_alignment() -> None:
    assert seam_contexts(get_variant("imdn").tiling) == [8, 16, 32]
    assert seam_contexts(get_variant("rlfn").tiling) == [12, 30, 60]
    assert seam_contexts(get_variant("efdn").tiling) == [7, 21, 42]
    assert seam_contexts(get_variant("c16nla").tiling) == [0, 32, 64]


def _blur_x4(x: np.ndarray) -> np.ndarray:
    """A 3x3 box filter with zero padding (a conv's reach: 1 px), then x4 nearest."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    h, w = x.shape[2:]
    out = sum(padded[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0
    return np.repeat(np.repeat(out, 4, axis=2), 4, axis=3).astype(np.float32)


def test_seams_are_zero_once_the_context_covers_the_reach() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)
    rows = seams("toy", "toy", image, _blur_x4, TilingRule(context=1, align=1), tile=8,
                 contexts=[0, 1, 2])
    assert [r.context for r in rows] == [0, 1, 2]
    assert all(r.tiles > 1 and r.tile == 8 for r in rows)
    no_context, *covered = rows
    assert no_context.max_levels > 1 and 0 < no_context.frac_over_1 < 1
    assert all(r.max_levels == 0 and r.frac_over_1 == 0 for r in covered)


def test_seams_run_a_real_architecture_with_its_rule() -> None:
    torch.manual_seed(0)
    model = create_model("efdn").eval()
    rule = get_variant("efdn").tiling
    image = np.random.default_rng(1).integers(0, 256, (24, 120, 3), dtype=np.uint8)
    rows = seams("efdn", "efdn", image, torch_infer(model), rule, tile=16)
    assert [r.context for r in rows] == seam_contexts(rule)
    assert all(r.tile == 14 and r.tiles > 1 for r in rows)  # 16 rounded down to align 7
    assert all(0 <= r.max_levels <= 255 and 0 <= r.frac_over_1 <= 1 for r in rows)


def test_import_ntire22_writes_project_weights_named_by_the_registry(tmp_path: Path) -> None:
    from training.weights.ntire22 import to_published

    torch.manual_seed(0)
    model = create_model("rlfn")
    zoo = tmp_path / "model_zoo"
    zoo.mkdir()
    torch.save(to_published(model, "rlfn"), zoo / get_variant("rlfn").checkpoint)
    found = import_ntire22(zoo, ["rlfn"], tmp_path / "out", progress=lambda _m: None)
    meta = read_meta(found["rlfn"])
    assert (meta.variant, meta.scale) == ("rlfn", 4)
    assert meta.source.startswith("ntire22:team04_rlfn.pth:sha256=")


def test_cli_refuses_an_unknown_variant_in_weights(tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "zoo", "--weights", f"nosuch={tmp_path / 'w.safetensors'}",
                                 "--out", str(tmp_path / "z.md")])
    assert result.exit_code == 2
    assert "'nosuch' is neither an architecture" in result.output
    assert not (tmp_path / "z.md").exists()


@pytest.mark.parametrize("args", [[], ["--ntire22", "EMPTY"]])
def test_cli_refuses_to_run_without_weights(tmp_path: Path, args: list[str]) -> None:
    args = [str(tmp_path) if a == "EMPTY" else a for a in args]
    result = runner.invoke(app, ["bench", "zoo", *args, "--out", str(tmp_path / "z.md")])
    assert result.exit_code == 2
    assert ("nothing to measure" if not args else "lacks team19_imdeception.pth") in result.output
