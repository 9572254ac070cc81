"""The job half of ``service.client``, without a gateway: reading ``JobStatus``, retrying after
``Retry-After``, following a job to its end, which files go through a job, and cancelling what a
run started, including a job whose ``POST /jobs`` was still under way at Ctrl-C.

The HTTP exchanges are scripted with ``httpx.MockTransport``: what is tested is the client's
parse and retry logic; the real gateway's routes are tested in tests/integration/test_job_clients.py.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from service import cli
from service.client import (
    DEFAULT_JOBS_ABOVE_MPX,
    FileTask,
    JobState,
    OpenJobs,
    RemoteJob,
    UpscaleFailed,
    UpscaleParams,
    cancel,
    network_output_mpx,
    parse_job,
    result,
    retry_delay,
    status,
    submit,
    upscale_task_by_job,
    uses_job,
    wait,
)

URL = "http://gateway.test"
Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def job_json(status: str = "queued", *, job_id: str = "j1", tiles: tuple[int, int] = (0, 0),
             frames: tuple[int, int] = (0, 1), **extra: object) -> dict[str, object]:
    """A JobStatus as the contract of issue 25 writes it."""
    return {"id": job_id, "status": status, "model": "c4",
            "progress": {"tiles_done": tiles[0], "tiles_total": tiles[1],
                         "frames_done": frames[0], "frames_total": frames[1]},
            "created": "2025-01-02T03:04:05Z", "started": None, "finished": None, "expires": None,
            "error": None, "result": f"/jobs/{job_id}/result" if status == "done" else None} | extra


def scripted(*answers: httpx.Response | Callable[[httpx.Request], Awaitable[httpx.Response]]
             ) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    """A client whose requests get ``answers`` in order; the requests are recorded."""
    seen: list[httpx.Request] = []
    queue = list(answers)

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        return answer if isinstance(answer, httpx.Response) else await answer(request)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler)), seen


def run(coro: Awaitable[object]) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


# --- reading JobStatus --------------------------------------------------------------------------


def test_a_job_status_is_read_field_by_field() -> None:
    payload = job_json("running", tiles=(3, 12), frames=(0, 1), started="2025-01-02T03:04:06+00:00",
                       queue_position=4)  # a field added later is ignored
    job = parse_job(httpx.Response(200, json=payload))
    assert job.id == "j1" and job.status is JobState.RUNNING and job.model == "c4"
    assert job.progress.tiles_done == 3 and job.progress.fraction == 0.25
    assert job.started is not None and job.started.year == 2025 and job.finished is None
    assert not job.status.finished and not job.done


@pytest.mark.parametrize(("progress", "fraction"), [
    ((0, 0, 0, 0), None),      # queued: nothing known yet
    ((5, 20, 0, 1), 0.25),     # by tiles
    ((0, 0, 2, 8), 0.25),      # frames when no tile count is known
    ((9, 8, 0, 1), 1.0),       # never past the end
])
def test_progress_fraction(progress: tuple[int, int, int, int], fraction: float | None) -> None:
    tiles_done, tiles_total, frames_done, frames_total = progress
    job = RemoteJob.model_validate(job_json("running", tiles=(tiles_done, tiles_total),
                                            frames=(frames_done, frames_total)))
    assert job.progress.fraction == fraction


def test_a_status_outside_the_contract_is_an_error_not_a_crash() -> None:
    with pytest.raises(UpscaleFailed, match="bad_job_status"):
        parse_job(httpx.Response(200, json=job_json("paused")))
    with pytest.raises(UpscaleFailed, match="bad_job_status"):
        parse_job(httpx.Response(200, text="<html>proxy</html>"))


def test_an_error_answer_keeps_the_gateways_code_and_detail() -> None:
    with pytest.raises(UpscaleFailed) as caught:
        parse_job(httpx.Response(404, json={"error": "not_found", "detail": "no job abc"}))
    assert (caught.value.status, caught.value.error) == (404, "not_found")
    assert str(caught.value) == "HTTP 404 not_found: no job abc"


def test_a_failed_job_reads_as_its_error() -> None:
    failed = RemoteJob.model_validate(job_json(
        "failed", error={"error": "image_too_large", "detail": {"pixels": 9, "max": 4}}))
    failure = failed.failure()
    assert failure.error == "image_too_large" and failure.detail == {"pixels": 9, "max": 4}
    assert str(failure) == 'job j1 failed: image_too_large: {"pixels": 9, "max": 4}'
    cancelled = RemoteJob.model_validate(job_json("cancelled")).failure()
    assert str(cancelled) == "job j1 cancelled: cancelled: the job ended cancelled"


# --- retries ------------------------------------------------------------------------------------


def test_retry_delay_reads_seconds_and_dates_and_is_capped() -> None:
    def answer(value: str | None) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": value} if value else {})

    assert retry_delay(answer("3"), 0, 30) == 3.0
    assert retry_delay(answer("300"), 0, 30) == 30.0                 # capped
    assert retry_delay(answer(None), 2, 30) == 4.0                    # 1, 2, 4 ... without one
    assert retry_delay(answer("soon"), 0, 30) == 1.0                  # unreadable: the same
    in_5_s = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3.0 <= retry_delay(answer(in_5_s), 0, 30) <= 5.0
    assert retry_delay(answer(email.utils.formatdate(0, usegmt=True)), 0, 30) == 0.0  # past


def test_submit_waits_out_a_full_queue_then_is_accepted(tmp_path: Path) -> None:
    async def go() -> tuple[RemoteJob, list[httpx.Request], float]:
        client, seen = scripted(
            httpx.Response(429, headers={"Retry-After": "0.2"}, json={"error": "too_many_requests",
                                                                       "detail": "queue full"}),
            httpx.Response(503, headers={"Retry-After": "0"}, json={"error": "triton_unavailable",
                                                                     "detail": "down"}),
            httpx.Response(202, headers={"Location": "/jobs/j1"}, json=job_json()))
        async with client:
            started = time.monotonic()
            job = await submit(client, URL, b"png", "image/png",
                               UpscaleParams(model="c4", format="webp", api_key="k"))
            return job, seen, time.monotonic() - started

    job, seen, elapsed = run(go())  # type: ignore[misc]
    assert job.id == "j1" and job.status is JobState.QUEUED
    assert len(seen) == 3 and elapsed >= 0.2  # the Retry-After was waited
    request = seen[-1]
    assert (request.method, request.url.path) == ("POST", "/jobs")
    assert dict(request.url.params) == {"model": "c4", "format": "webp"}  # the key is no parameter
    assert request.headers["content-type"] == "image/png" and request.content == b"png"


def test_submit_gives_up_after_its_retries_with_the_last_answer() -> None:
    async def go() -> None:
        full = httpx.Response(429, headers={"Retry-After": "0"},
                              json={"error": "too_many_requests", "detail": "queue full"})
        client, seen = scripted(full, full)
        async with client:
            with pytest.raises(UpscaleFailed, match="HTTP 429 too_many_requests: queue full"):
                await submit(client, URL, b"x", "image/png", UpscaleParams(), retries=1)
        assert len(seen) == 2

    run(go())


def test_submit_refuses_a_200() -> None:
    # POST /jobs answers 202; a 200 means something else answered (a proxy's page, /upscale)
    async def go() -> None:
        client, _ = scripted(httpx.Response(200, content=b"\x89PNG", headers={"Content-Type": "image/png"}))
        async with client:
            with pytest.raises(UpscaleFailed, match="HTTP 200"):
                await submit(client, URL, b"x", "image/png", UpscaleParams())

    run(go())


# --- following a job ----------------------------------------------------------------------------


def test_wait_yields_every_status_until_the_end_and_rides_out_a_busy_poll() -> None:
    async def go() -> tuple[list[RemoteJob], list[httpx.Request]]:
        client, seen = scripted(
            httpx.Response(200, json=job_json("running", tiles=(1, 4))),
            httpx.Response(503, headers={"Retry-After": "0"}, json={"error": "busy", "detail": ""}),
            httpx.Response(200, json=job_json("running", tiles=(3, 4))),
            httpx.Response(200, json=job_json("done", tiles=(4, 4))))
        first = RemoteJob.model_validate(job_json())
        async with client:
            return [job async for job in wait(client, URL, first, poll_s=0.0)], seen

    jobs, seen = run(go())  # type: ignore[misc]
    assert [(j.status.value, j.progress.tiles_done) for j in jobs] == [
        ("queued", 0), ("running", 1), ("running", 3), ("done", 4)]
    assert {(r.method, r.url.path) for r in seen} == {("GET", "/jobs/j1")} and len(seen) == 4


def test_wait_stops_at_a_finished_job_without_polling() -> None:
    async def go() -> list[RemoteJob]:
        client, _ = scripted()  # any request would fail: nothing is scripted
        async with client:
            return [j async for j in wait(client, URL, RemoteJob.model_validate(job_json("failed")))]

    assert [j.status for j in run(go())] == [JobState.FAILED]  # type: ignore[union-attr]


def test_status_of_a_job_the_gateway_forgot_raises() -> None:
    async def go() -> None:
        client, _ = scripted(httpx.Response(404, json={"error": "not_found", "detail": "j1"}))
        async with client:
            with pytest.raises(UpscaleFailed, match="HTTP 404 not_found"):
                await status(client, URL, "j1")

    run(go())


def test_result_uses_the_jobs_own_link_and_refuses_409_and_410() -> None:
    async def go() -> list[httpx.Request]:
        client, seen = scripted(
            httpx.Response(200, content=b"RIFF", headers={"Content-Type": "image/webp",
                                                          "X-Model": "c4"}),
            httpx.Response(409, json={"error": "job_not_done", "detail": "running"}),
            httpx.Response(410, json={"error": "job_expired", "detail": "gone"}))
        done = RemoteJob.model_validate(job_json("done", result="/base/jobs/j1/result"))
        async with client:
            answer = await result(client, URL, done)
            assert answer.content == b"RIFF" and answer.headers["x-model"] == "c4"
            with pytest.raises(UpscaleFailed, match="HTTP 409 job_not_done"):
                await result(client, URL, "j1")
            with pytest.raises(UpscaleFailed, match="HTTP 410 job_expired"):
                await result(client, URL, "j1")
        return seen

    seen = run(go())
    assert [r.url.path for r in seen] == ["/base/jobs/j1/result", "/jobs/j1/result",  # type: ignore[union-attr]
                                          "/jobs/j1/result"]


# --- which files go through a job ---------------------------------------------------------------


def test_the_cli_and_the_client_share_the_threshold() -> None:
    assert cli.DEFAULT_JOBS_ABOVE_MPX == DEFAULT_JOBS_ABOVE_MPX


def test_large_files_and_only_they_go_through_a_job(tmp_path: Path) -> None:
    large = tmp_path / "large.png"   # 512 x 512 x 16 = 4.19 Mpx out: just over the default
    Image.new("RGB", (512, 512), (10, 20, 30)).save(large)
    small = tmp_path / "small.png"   # 500 x 499 x 16 = 3.99 Mpx: just under it
    Image.new("RGB", (500, 499), (10, 20, 30)).save(small)
    anim = tmp_path / "anim.gif"     # 300 x 300 x 16 x 3 frames = 4.32 Mpx: frames count
    frames = [Image.new("RGB", (300, 300), (80 * i, 40, 200 - 60 * i)) for i in range(3)]
    frames[0].save(anim, save_all=True, append_images=frames[1:], duration=50)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")

    assert network_output_mpx(large) == pytest.approx(4.194304)
    assert network_output_mpx(anim) == pytest.approx(4.32)
    assert network_output_mpx(junk) == 0.0  # the gateway says what is wrong with it
    above = DEFAULT_JOBS_ABOVE_MPX
    assert uses_job(large, above) and uses_job(anim, above)
    assert not uses_job(small, above) and not uses_job(junk, above)
    assert uses_job(small, 3.992) and not uses_job(small, 3.9921)  # at the threshold: included
    assert all(uses_job(p, 0.0) for p in (large, small, anim, junk))  # 0: every file
    assert not any(uses_job(p, None) for p in (large, small, anim, junk))  # no --jobs


# --- cancelling what a run started --------------------------------------------------------------


def test_cancel_all_deletes_every_open_job_and_says_which_failed() -> None:
    async def go() -> tuple[OpenJobs, list[httpx.Request]]:
        client, seen = scripted(
            httpx.Response(200, json=job_json("cancelled", job_id="a")),
            httpx.Response(404, json={"error": "not_found", "detail": "b"}))
        open_jobs = OpenJobs(running={"a": Path("a.png"), "b": Path("b.png")})
        async with client:
            await open_jobs.cancel_all(client, URL)
        return open_jobs, seen

    open_jobs, seen = run(go())  # type: ignore[misc]
    assert [(r.method, r.url.path) for r in seen] == [("DELETE", "/jobs/a"), ("DELETE", "/jobs/b")]
    assert open_jobs.cancelled == ["a"]
    assert open_jobs.not_cancelled == ["b: HTTP 404 not_found: b"]
    assert open_jobs.running == {}


def test_cancel_answers_the_cancelled_job() -> None:
    async def go() -> RemoteJob:
        client, _ = scripted(httpx.Response(200, json=job_json("cancelled")))
        async with client:
            return await cancel(client, URL, "j1")

    assert run(go()).status is JobState.CANCELLED  # type: ignore[union-attr]


def test_a_run_cancelled_during_its_post_still_cancels_that_job(tmp_path: Path) -> None:
    """Ctrl-C while ``POST /jobs`` is under way: the answer is awaited (the POST is shielded),
    and the job it names is deleted, so nothing is left running on the gateway."""
    source = tmp_path / "photo.png"
    Image.new("RGB", (8, 8)).save(source)
    posted = asyncio.Event()

    async def slow_accept(_request: httpx.Request) -> httpx.Response:
        posted.set()
        await asyncio.sleep(0.3)  # the gateway reads the body, queues the job
        return httpx.Response(202, json=job_json(job_id="late"))

    async def go() -> tuple[OpenJobs, list[httpx.Request]]:
        client, seen = scripted(slow_accept, httpx.Response(200, json=job_json("cancelled",
                                                                               job_id="late")))
        open_jobs = OpenJobs()
        async with client:
            task = FileTask(source, tmp_path / "out" / "photo_x4.png")
            running = asyncio.create_task(upscale_task_by_job(client, URL, task, UpscaleParams(),
                                                              open_jobs, progress=False))
            await posted.wait()
            running.cancel()  # what asyncio.run does at Ctrl-C
            with pytest.raises(asyncio.CancelledError):
                await running
            await open_jobs.cancel_all(client, URL)
        return open_jobs, seen

    open_jobs, seen = run(go())  # type: ignore[misc]
    assert [(r.method, r.url.path) for r in seen] == [("POST", "/jobs"), ("DELETE", "/jobs/late")]
    assert open_jobs.cancelled == ["late"] and open_jobs.not_cancelled == []
    assert not (tmp_path / "out").exists()


def test_a_job_seen_finished_is_not_cancelled(tmp_path: Path) -> None:
    source = tmp_path / "photo.png"
    Image.new("RGB", (8, 8)).save(source)

    async def go() -> tuple[OpenJobs, list[httpx.Request], Path]:
        client, seen = scripted(
            httpx.Response(202, json=job_json()),
            httpx.Response(200, json=job_json("done", tiles=(1, 1))),
            httpx.Response(200, content=b"\x89PNG-bytes", headers={"Content-Type": "image/png"}))
        open_jobs = OpenJobs()
        async with client:
            task = FileTask(source, tmp_path / "out" / "photo_x4.jpg")  # corrected to .png
            done = await upscale_task_by_job(client, URL, task, UpscaleParams(), open_jobs,
                                             poll_s=0.0, progress=False)
            await open_jobs.cancel_all(client, URL)  # nothing left to cancel: no request
        return open_jobs, seen, done.path

    open_jobs, seen, path = run(go())  # type: ignore[misc]
    assert len(seen) == 3 and open_jobs.cancelled == [] and open_jobs.running == {}
    assert path == tmp_path / "out" / "photo_x4.png" and path.read_bytes() == b"\x89PNG-bytes"
    assert [p.name for p in path.parent.iterdir()] == ["photo_x4.png"]  # no .part left
