"""`imdsr bench wire`: one tiny end-to-end run through a real Triton."""

from __future__ import annotations

import pytest

from bench.wire import FORMATS


@pytest.mark.triton
@pytest.mark.timeout(180)
def test_bench_wire_runs_end_to_end(variant_weights) -> None:
    from typer.testing import CliRunner

    from imdsr.cli import app

    res = CliRunner().invoke(app, ["bench", "wire", "--variant", "c4", "--weights",
                                   str(variant_weights["c4"]), "--window", "32", "--iters", "2",
                                   "--threads", "1"])
    assert res.exit_code == 0, res.output
    rows = {line.split()[0]: line.split() for line in res.output.splitlines()
            if line.split() and line.split()[0] in FORMATS}
    assert set(rows) == set(FORMATS)
    # bytes column: FP16 half of FP32, UINT8 a quarter.
    assert [float(rows[w][3]) for w in FORMATS] == [1.0, 0.5, 0.25]
    assert float(rows["UINT8"][-1]) <= 0.5 + 1e-3  # rounding to 8 bits, nothing worse
