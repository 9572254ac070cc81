"""`imdsr bench precision`: the measurement behind precision "auto", run for real on c4 (the
served graph exported from the shipped weights, OpenVINO f32 and bf16, ONNX Runtime f32) with a
tiny "set" of photo crops made here, so that no standard set is needed."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.precision import CASES, FAITHFUL_DB, PrecisionReport, case_name, faithful, format_report
from training.weights.store import shipped_weights


def _measure(folder: Path) -> PrecisionReport:
    from skimage import data

    from bench.precision import run_precision_bench

    files = []
    for name, image in (("astronaut", data.astronaut()), ("chelsea", data.chelsea())):
        path = folder / f"{name}.png"
        Image.fromarray(image[64:192, 64:224]).save(path)
        files.append(path)
    return run_precision_bench("c4", shipped_weights("c4"), data.astronaut()[:64, :64], {"bsd100": files},
                               threads=1, repeats=1, progress=lambda _: None)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> PrecisionReport:
    # In a spawned process, as the command runs: OpenVINO's and PyTorch's thread pools started in
    # pytest's own process make the later tests that fork workers crash (a forked child inherits
    # their locks, not their threads).
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_measure, tmp_path_factory.mktemp("tiny_set")).result(timeout=600)


def test_every_case_is_timed_and_scored_beside_pytorch(report: PrecisionReport) -> None:
    assert set(report.ms) == {case_name(r, p) for r, p in CASES}
    assert all(ms > 0 for ms in report.ms.values())
    assert set(report.psnr) == {"pytorch f32", *report.ms}
    ref = report.psnr["pytorch f32"]["bsd100"]
    assert 20 < ref < 45
    # f32 runtimes reproduce PyTorch; bf16 stays within the project's faithful margin on c4
    for runtime, precision in CASES:
        got = report.psnr[case_name(runtime, precision)]["bsd100"]
        assert abs(got - ref) <= (0.005 if precision == "f32" else FAITHFUL_DB)
        assert faithful(report, case_name(runtime, precision)) is True
    assert 0 <= report.levels["max"] < 32 and 0 <= report.levels["pct_over_1"] < 20


def test_faithful_compares_with_pytorch_on_bsd100() -> None:
    r = PrecisionReport("c4", [], "f32", ms={"openvino bf16": 1.0},
                        psnr={"pytorch f32": {"bsd100": 27.0}, "openvino bf16": {"bsd100": 26.9}})
    assert faithful(r, "openvino bf16") is False
    r.psnr["openvino bf16"]["bsd100"] = 27.0 - FAITHFUL_DB / 2
    assert faithful(r, "openvino bf16") is True
    assert faithful(r, "openvino f32") is None  # not scored: no verdict


def test_the_report_names_the_machine_s_choice(report: PrecisionReport) -> None:
    text = format_report(report)
    assert f"precision auto -> {report.auto} here" in text
    assert "| openvino bf16 |" in text and "bsd100 Y-PSNR" in text
    assert np.isfinite(report.ms[case_name("openvino", "bf16")])


def test_the_command_refuses_bad_arguments_with_a_message(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from imdsr.cli import app

    result = CliRunner().invoke(app, ["bench", "precision", "--sets", "nope"])
    assert result.exit_code != 0 and "unknown set nope" in result.output
    result = CliRunner().invoke(app, ["bench", "precision", "--repeats", "0"])
    assert result.exit_code != 0 and "at least 1" in result.output
