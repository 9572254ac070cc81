"""Issue 25, item 3: two gateway processes on one real redis-server (loopback) share their jobs.

Submitted through one, a job is polled, fetched and cancelled through the other, and runs on
whichever gateway has a free worker; the files are in one folder both see (what a ReadWriteMany
volume gives the replicas in Kubernetes: docs/DEPLOY.md "Jobs across replicas").
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support.gateway_process import GatewayProcess
from tests.support.jobs import metric, photo, submit, wait_for
from tests.support.redis import RedisServer

SLOW = "?model=c16nla&tile=256"  # 512x512 in four tiles of several seconds each here


@pytest.fixture(scope="module")
def two_gateways(triton_server, tmp_path_factory: pytest.TempPathFactory  # noqa: ANN001
                 ) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    root = tmp_path_factory.mktemp("jobs_redis")
    with RedisServer(root / "redis") as redis:
        env = {"IMDSR_TRITON_URL": triton_server.grpc_url, "IMDSR_DEFAULT_MODEL": "c4",
               "IMDSR_TILE": "32", "IMDSR_TILE_CONTEXT": "0", "IMDSR_JOBS_STORE": redis.url,
               "IMDSR_JOBS_DIR": str(root / "shared"), "IMDSR_JOBS_WORKERS": "1"}
        with GatewayProcess(env, root / "a.log") as a, GatewayProcess(env, root / "b.log") as b:
            yield a, b


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_job_submitted_to_one_is_polled_and_fetched_through_the_other(two_gateways) -> None:  # noqa: ANN001
    a, b = two_gateways
    body = photo(70, 50)
    r = submit(a.url, body)
    assert r.status_code == 202, r.text
    job = wait_for(b.url, r.json()["id"], {"done", "failed"})
    assert job["status"] == "done", job
    result = httpx.get(f"{b.url}{job['result']}", timeout=60)
    direct = httpx.post(f"{a.url}/upscale", content=body, headers={"Content-Type": "image/png"},
                        timeout=60)
    assert result.status_code == direct.status_code == 200
    assert np.array_equal(_pixels(result.content), _pixels(direct.content))
    for name in ("x-model", "x-output-size", "x-tiles", "content-type", "etag"):
        assert result.headers[name] == direct.headers[name]


def test_jobs_run_on_whichever_is_free_and_cancel_through_either(two_gateways) -> None:  # noqa: ANN001
    a, b = two_gateways
    ids = [submit(a.url, photo(512, 512, seed=n), SLOW).json()["id"] for n in (7, 8)]
    for job_id in ids:
        wait_for(b.url, job_id, {"running"}, timeout_s=120)
    # One worker each: the second job went to the other gateway, not behind the first.
    assert metric(a.url, "imdsr_gateway_jobs_running") == 1
    assert metric(b.url, "imdsr_gateway_jobs_running") == 1
    for job_id in ids:
        gone = httpx.delete(f"{b.url}/jobs/{job_id}")
        assert gone.status_code == 200 and gone.json()["status"] == "cancelled", gone.text
    # Each gateway's heartbeat sees the cancel in the store and stops its run (tiles, budget).
    deadline = time.monotonic() + 5
    while any(metric(gw.url, name) > 0 for gw in (a, b)
              for name in ("imdsr_gateway_jobs_running", "imdsr_gateway_admitted_work_seconds")):
        assert time.monotonic() < deadline, "a cancelled job still runs"
        time.sleep(0.2)
    for gw in (a, b):
        for job_id in ids:
            after = httpx.get(f"{gw.url}/jobs/{job_id}/result")
            assert after.status_code == 409 and after.json()["detail"]["status"] == "cancelled"
    assert metric(a.url, "imdsr_gateway_jobs_finished_total", '{status="cancelled"}') + \
        metric(b.url, "imdsr_gateway_jobs_finished_total", '{status="cancelled"}') == 2
