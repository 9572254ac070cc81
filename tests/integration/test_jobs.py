"""Issue 25, item 2: jobs, through the real gateway (uvicorn on loopback) and the real Triton,
with the default (local) store in a temporary folder.

A job takes what ``POST /upscale`` takes and refuses what it refuses; its result is the same
image with the same headers; it can be cancelled (its tiles stop, its admitted work goes); its
own limits (queue, bytes on disk, time to live) answer 429, 413 and 410.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from service.settings import Settings
from tests.support.gateway import Gateway
from tests.support.jobs import metric, photo, submit, wait_for

FAST = {"default_model": "c4", "tile": 32, "tile_context": 0}  # two cores: c4, small tiles
CONTRACT_KEYS = {"id", "status", "model", "progress", "created", "started", "finished", "expires",
                 "error", "result"}
SAME_HEADERS = ("x-model", "x-model-reason", "x-input-size", "x-output-size", "x-tiles",
                "x-bit-depth", "content-type", "etag", "cache-control", "vary", "x-frames")


def _settings(triton, tmp_path: Path, **overrides: object) -> Settings:  # noqa: ANN001
    return Settings(**{"triton_url": triton.grpc_url, "jobs_dir": tmp_path / "jobs", **FAST,
                       **overrides})


@pytest.fixture(scope="module")
def gateway(triton_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:  # noqa: ANN001
    with Gateway(_settings(triton_server, tmp_path_factory.mktemp("jobs"))) as gw:
        yield gw


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def _done(url: str, response: httpx.Response) -> dict:
    assert response.status_code == 202, response.text
    return wait_for(url, response.json()["id"], {"done", "failed"})


CASES = {
    "raw png": dict(content=photo(70, 50), headers={"Content-Type": "image/png"}),
    "multipart, form options": dict(files={"image": ("a.png", photo(70, 50), "image/png")},
                                    data={"format": "jpeg", "outscale": "2"}),
    "accept webp, query options": dict(content=photo(64, 48, "RGBA"), params={"width": "200"},
                                       headers={"Content-Type": "image/png",
                                                "Accept": "image/webp"}),
}


@pytest.mark.parametrize("case", CASES)
def test_job_result_is_what_upscale_answers(gateway: Gateway, case: str) -> None:
    kwargs = CASES[case]
    r = httpx.post(f"{gateway.url}/jobs", timeout=60, **kwargs)
    assert r.status_code == 202, r.text
    submitted = r.json()
    assert set(submitted) == CONTRACT_KEYS
    assert r.headers["location"] == f"/jobs/{submitted['id']}"
    assert submitted["status"] in ("queued", "running", "done") and submitted["model"] == "c4"
    assert len(submitted["id"]) >= 20  # secrets.token_urlsafe(16)

    job = wait_for(gateway.url, submitted["id"], {"done", "failed"})
    assert job["status"] == "done" and job["error"] is None, job
    assert job["result"] == f"/jobs/{job['id']}/result"
    assert job["started"] and job["finished"] and job["expires"]
    progress = job["progress"]
    assert progress["tiles_done"] == progress["tiles_total"] > 0
    assert progress["frames_done"] == progress["frames_total"] == 1

    result = httpx.get(f"{gateway.url}{job['result']}", timeout=60)
    direct = httpx.post(f"{gateway.url}/upscale", timeout=60, **kwargs)
    assert result.status_code == direct.status_code == 200, (result.text, direct.text)
    assert np.array_equal(_pixels(result.content), _pixels(direct.content))
    for name in SAME_HEADERS:
        assert result.headers.get(name) == direct.headers.get(name), name
    # Progress counts the alpha plane's tiles too (through the model: as many again).
    alpha = Image.open(io.BytesIO(result.content)).mode == "RGBA"
    assert int(result.headers["x-tiles"]) * (2 if alpha else 1) == progress["tiles_total"]
    again = httpx.get(f"{gateway.url}{job['result']}", headers={"If-None-Match": result.headers["etag"]})
    assert again.status_code == 304 and again.headers["etag"] == result.headers["etag"]


ERROR_CASES = [
    (b"not an image at all", "image/png", "", 415, "unsupported_media_type"),
    (photo(70, 50)[:60], "image/png", "", 400, "corrupt_image"),
    (b"", "image/png", "", 400, "corrupt_image"),
    (photo(70, 50), "text/plain", "", 415, "unsupported_media_type"),
    (photo(70, 50), "image/png", "?model=nope", 422, "unknown_model"),
    (photo(70, 50), "image/png", "?format=gif", 422, "invalid_parameter"),
    (photo(70, 50), "image/png", "?colour=red", 422, "invalid_parameter"),
    (photo(70, 50), "image/png", "?outscale=2&width=100", 422, "invalid_parameter"),
    (photo(70, 50), "image/png", "?tile=4096", 422, "invalid_parameter"),
]


@pytest.mark.parametrize(("body", "content_type", "query", "status", "code"), ERROR_CASES)
def test_job_refuses_what_upscale_refuses(gateway: Gateway, body: bytes, content_type: str,
                                          query: str, status: int, code: str) -> None:
    answers = [httpx.post(f"{gateway.url}{route}{query}", content=body, timeout=60,
                          headers={"Content-Type": content_type}) for route in ("/upscale", "/jobs")]
    for r in answers:
        assert r.status_code == status, r.text
        assert r.json()["error"] == code
    assert answers[0].json()["detail"] == answers[1].json()["detail"]


def test_work_that_can_never_be_admitted_is_413_for_both(triton_server, tmp_path: Path) -> None:  # noqa: ANN001
    # A memory budget no 512x512 (2048x2048 out) request fits in: admission's 413.
    with Gateway(_settings(triton_server, tmp_path, memory_budget_bytes=4 << 20)) as gw:
        for route in ("/upscale", "/jobs"):
            r = httpx.post(f"{gw.url}{route}", content=photo(512, 512), timeout=60,
                           headers={"Content-Type": "image/png"})
            assert r.status_code == 413 and r.json()["error"] == "image_too_large", r.text
            assert "memory budget" in r.json()["detail"]


def test_job_limits_queue_and_disk(triton_server, tmp_path: Path) -> None:  # noqa: ANN001
    small = photo(70, 50)  # 280x200 out: at most 168 kB raw, so about 0.26 MB reserved
    # No worker: what is queued stays queued.
    with Gateway(_settings(triton_server, tmp_path / "q", jobs_workers=0, jobs_max_queued=2)) as gw:
        assert [submit(gw.url, small).status_code for _ in range(2)] == [202, 202]
        full = submit(gw.url, small)
        assert full.status_code == 429 and full.json()["error"] == "too_many_requests", full.text
        assert "IMDSR_JOBS_MAX_QUEUED" in full.json()["detail"]
        assert int(full.headers["retry-after"]) >= 1
    with Gateway(_settings(triton_server, tmp_path / "d", jobs_workers=0,
                           jobs_max_result_bytes=400_000)) as gw:
        assert submit(gw.url, small).status_code == 202
        full = submit(gw.url, small)
        assert full.status_code == 429 and "IMDSR_JOBS_MAX_RESULT_BYTES" in full.json()["detail"]
        assert int(full.headers["retry-after"]) >= 1
        never = submit(gw.url, photo(140, 100))  # its result alone may need more than the budget
        assert never.status_code == 413 and never.json()["error"] == "image_too_large", never.text


def test_cancel_stops_tiles_and_releases_admitted_work(triton_server, tmp_path: Path) -> None:  # noqa: ANN001
    # c16nla with its shipped tiling: 12 tiles of several seconds each on the shared cores.
    settings = _settings(triton_server, tmp_path, default_model="c16nla", tile=256, tile_context=None)
    stats = f"{triton_server.http_url}/v2/models/imdeception_c16nla/stats"

    def executed() -> int:
        return sum(int(s["inference_count"]) for s in httpx.get(stats, timeout=10).json()["model_stats"])

    with Gateway(settings) as gw:
        before = executed()
        running_id = submit(gw.url, photo(1024, 768, seed=3)).json()["id"]
        queued_id = submit(gw.url, photo(1024, 768, seed=4)).json()["id"]  # one worker: it waits
        running = wait_for(gw.url, running_id, {"running"}, timeout_s=180,
                           until=lambda j: j["progress"]["tiles_done"] >= 1)
        assert running["progress"]["tiles_total"] == 12
        assert httpx.get(f"{gw.url}/jobs/{queued_id}").json()["status"] == "queued"
        early = httpx.get(f"{gw.url}/jobs/{running_id}/result")
        assert early.status_code == 409 and early.json()["error"] == "job_not_done"
        assert early.json()["detail"]["status"] == "running"
        assert metric(gw.url, "imdsr_gateway_admitted_work_seconds") > 0

        queued_gone = httpx.delete(f"{gw.url}/jobs/{queued_id}")
        assert queued_gone.status_code == 200 and queued_gone.json()["status"] == "cancelled"
        assert not (settings.jobs_dir / "inputs" / queued_id).exists()
        cancelled = httpx.delete(f"{gw.url}/jobs/{running_id}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled" and cancelled.json()["result"] is None
        # Released at once, not when the job's remaining tiles would have run.
        deadline = time.monotonic() + 2
        while metric(gw.url, "imdsr_gateway_admitted_work_seconds") > 0 or \
                metric(gw.url, "imdsr_gateway_jobs_running") > 0:
            assert time.monotonic() < deadline, "admitted work still counted after the cancel"
            time.sleep(0.1)
        # Only the tiles already in Triton may finish (a batch Triton is executing cannot be
        # stopped); nothing more is sent: once Triton is idle, far fewer than the 12 have run.
        deadline, previous, ran = time.monotonic() + 120, -1, executed() - before
        while ran != previous:  # two readings a tile's time apart agree: Triton is idle
            assert time.monotonic() < deadline, "Triton still busy two minutes after the cancel"
            time.sleep(8)
            previous, ran = ran, executed() - before
        placed = cancelled.json()["progress"]["tiles_done"]
        assert ran < 12 and ran <= placed + 2 * settings.tiles_in_flight, (ran, placed)
        after = httpx.get(f"{gw.url}/jobs/{running_id}/result")
        assert after.status_code == 409 and after.json()["detail"]["status"] == "cancelled"
        again = httpx.delete(f"{gw.url}/jobs/{running_id}")
        assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_done_result_expires_410_and_its_file_goes(triton_server, tmp_path: Path) -> None:  # noqa: ANN001
    settings = _settings(triton_server, tmp_path, jobs_ttl_s=1.0)
    with Gateway(settings) as gw:
        job = _done(gw.url, submit(gw.url, photo(70, 50)))
        path = settings.jobs_dir / "results" / job["id"]
        assert path.is_file() and not (settings.jobs_dir / "inputs" / job["id"]).exists()
        time.sleep(1.2)
        gone = httpx.get(f"{gw.url}/jobs/{job['id']}/result")
        assert gone.status_code == 410 and gone.json()["error"] == "job_expired", gone.text
        deadline = time.monotonic() + 15  # the next upkeep deletes the file
        while path.exists():
            assert time.monotonic() < deadline, "expired result still on disk"
            time.sleep(0.2)
        tomb = httpx.get(f"{gw.url}/jobs/{job['id']}").json()
        assert tomb["status"] == "done" and tomb["result"] is None


def test_delete_of_a_done_job_deletes_its_result(gateway: Gateway) -> None:
    job = _done(gateway.url, submit(gateway.url, photo(70, 50)))
    r = httpx.delete(f"{gateway.url}/jobs/{job['id']}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["result"] is None
    after = httpx.get(f"{gateway.url}/jobs/{job['id']}/result")
    assert after.status_code == 409 and after.json()["detail"]["status"] == "cancelled"


@pytest.mark.parametrize("job_id", ["AAAAAAAAAAAAAAAAAAAAAA", "short", "x" * 200])
def test_unknown_job_is_404_json(gateway: Gateway, job_id: str) -> None:
    for method, path in (("GET", ""), ("GET", "/result"), ("DELETE", "")):
        r = httpx.request(method, f"{gateway.url}/jobs/{job_id}{path}")
        assert r.status_code == 404 and r.json()["error"] == "job_not_found", (method, path, r.text)


def test_openapi_documents_every_job_route_and_status(gateway: Gateway) -> None:
    spec = httpx.get(f"{gateway.url}/openapi.json").json()
    paths = spec["paths"]
    assert "202" in paths["/jobs"]["post"]["responses"]
    assert "Location" in paths["/jobs"]["post"]["responses"]["202"]["headers"]
    assert {"429", "413", "415", "422"} <= set(paths["/jobs"]["post"]["responses"])
    assert "multipart/form-data" in paths["/jobs"]["post"]["requestBody"]["content"]
    assert {"get", "delete"} <= set(paths["/jobs/{job_id}"])
    assert {"200", "304", "409", "410", "404"} <= set(paths["/jobs/{job_id}/result"]["get"]["responses"])
    states = spec["components"]["schemas"]["JobState"]["enum"]
    assert states == ["queued", "running", "done", "failed", "cancelled"]
    assert set(spec["components"]["schemas"]["JobStatus"]["properties"]) == CONTRACT_KEYS
