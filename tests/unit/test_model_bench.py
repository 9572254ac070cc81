"""``imdsr bench model``: rows per variant/precision/batch, fp32 as its own reference, bad input."""

from typer.testing import CliRunner

from bench.model import bench_model, format_rows, precisions
from imdsr.cli import app


def test_cpu_bench_rows_are_measured_against_fp32():
    import torch

    rows = bench_model(["c4"], torch.device("cpu"), [1, 2], 16, min_s=0.01)
    assert precisions(torch.device("cpu")) == ["fp32"]
    assert [(r.variant, r.precision, r.batch) for r in rows] == [("c4", "fp32", 1), ("c4", "fp32", 2)]
    for r in rows:
        assert r.ms_per_batch > 0 and r.speedup == 1.0 and r.max_err_levels == 0.0
        assert abs(r.lr_mpx_per_s - r.batch * 16 * 16 / r.ms_per_batch / 1e3) < 1e-9
    table = format_rows(rows, 16, "CPU").splitlines()
    assert len(table) == 1 + 2 + 2 and table[3].startswith("| c4 | fp32 | 1 |")


def test_cli_rejects_bad_input():
    runner = CliRunner()
    res = runner.invoke(app, ["bench", "model", "--variant", "nope"])
    assert res.exit_code == 2 and "unknown variant" in res.output
    res = runner.invoke(app, ["bench", "model", "--size", "4", "--device", "cpu"])
    assert res.exit_code == 2 and "--size" in res.output
