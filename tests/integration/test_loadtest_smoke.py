"""`make loadtest`'s runner for 20 s: it starts Triton (committed repository) and the gateway itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.triton
@pytest.mark.timeout(240)
def test_loadtest_runner_smoke(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "loadtest" / "run.py"), "--duration", "20s", "--users", "2",
         "--scenarios", "small", "--results", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=230)
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"

    [run_dir] = tmp_path.iterdir()   # one UTC-timestamped folder per run
    for report in ("locust_stats.csv", "report.html", "summary.txt"):
        assert (run_dir / report).stat().st_size > 0, report

    # scenario  ok  shed  fail  req/s  out-MP/s  p50  p95  p99
    rows = {" ".join(cols[:4]): cols[4:] for line in res.stdout.splitlines()
            if (cols := line.split()) and cols[0] == "/upscale"}
    assert set(rows) == {f"/upscale small {fmt} {model}" for fmt in ("png", "jpeg", "webp")
                         for model in ("c16nla", "c4")}, res.stdout
    for name, (ok, _shed, fail, rps, mpix, *_latency) in rows.items():
        assert int(fail) == 0, name
        assert int(ok) > 0 and float(rps) > 0, name
        assert float(mpix) > 0, name
    [total] = [line.split() for line in res.stdout.splitlines() if line.startswith("total ")]
    assert int(total[3]) == 0 and float(total[4]) > 0
