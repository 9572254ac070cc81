"""`imdsr bench service` end to end on a tiny setting: every part runs, ratios and plot come out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imdsr.cli import app


@pytest.mark.timeout(300)
def test_bench_service_runs_every_part(variant_weights, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    res = CliRunner().invoke(app, [
        "bench", "service", "--variant", "c4", "--weights", str(variant_weights["c4"]),
        "--size", "48", "--concurrency", "1", "--concurrency", "2", "--rounds", "1",
        "--threads", "1", "--settle", "0", "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "service.json").read_text())
    assert set(report["model_ms"]) == {"bare (published architecture, onnxruntime)",
                                       "bare (published architecture, openvino defaults)",
                                       "bare (published architecture, openvino defaults, reshaped "
                                       "to the image)",
                                       "served graph, onnxruntime", "served graph, openvino"}
    # the bare anchors: timed before Triton and after the service, the faster kept
    assert all(len(runs) == 2 and report["model_ms"][name] == min(runs)
               for name, runs in report["anchor_runs"].items())
    assert len(report["anchor_runs"]) == 3
    # each timing says what it computed in; the service, what the loaded model resolved "auto" to
    from triton_host.python_backend.runtimes import resolve_precision

    assert set(report["precisions"]) == set(report["model_ms"])
    assert report["precisions"]["served graph, openvino"] == report["served_precision"] == \
        resolve_precision("openvino", "auto")
    systems = {(lv["system"], lv["concurrency"]) for lv in report["levels"]}
    for system in ("triton onnxruntime batching on", "triton onnxruntime batching off",
                   "triton openvino batching on", "triton openvino batching off", "service"):
        assert {(system, 1), (system, 2)} <= systems
    assert all(lv["failures"] == 0 and lv["mpx_per_s"] > 0 for lv in report["levels"])
    text = (out / "service.md").read_text()
    assert "service lone p50 / bare model time" in text
    assert "service Mpx/s at 4 clients / openvino defaults Mpx/s" not in text  # no 4-client level
    assert f"the full service served {report['served_precision']}" in text
    assert (out / "service.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
