"""The gateway's memory, measured on its own process (kernel high-water mark): a maximum-size
request holds about its output once more, and a burst of them stays inside a 2 GiB pod."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.memory import _status, measure, photo_jpeg
from bench.service import gateway
from service.admission import HELD_PER_OUTPUT_BYTE

POD_LIMIT = 2 << 30
BUDGET = int(0.6 * POD_LIMIT)  # the gateway's default share of a cgroup limit


@pytest.mark.timeout(300)
def test_largest_requests_fit_the_pod(triton_server, tmp_path: Path) -> None:  # noqa: ANN001
    params = {"model": "c4", "format": "png"}
    body = photo_jpeg(2048, 1536)  # the largest input the gateway accepts (4 Mpx), 8192x6144 out
    env = {"IMDSR_MEMORY_BUDGET_BYTES": str(BUDGET)}
    with gateway(triton_server.grpc_url, "c4", tmp_path / "gateway.log", env) as (pid, url):
        # One small request first: code paths, codecs and thread pools load once per process.
        measure(pid, url, photo_jpeg(512, 384), (512, 384), 1, "warm-up", params)
        one = measure(pid, url, body, (2048, 1536), 1, "one", params)
        assert one.statuses == (200,)
        # Within what admission reserves for it (about 2x its output; 6.6 before the fix).
        assert one.ratio < HELD_PER_OUTPUT_BYTE, one
        burst = measure(pid, url, body, (2048, 1536), 8, "burst", params)
        total_peak = _status(pid)["VmHWM"]
    assert set(burst.statuses) <= {200, 429} and 200 in burst.statuses, burst.statuses
    assert total_peak < POD_LIMIT, total_peak  # the whole process, idle part included
