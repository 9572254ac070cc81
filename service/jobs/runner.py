"""The gateway's job workers: each takes the oldest queued job from the store and runs it through
the same decode, plan and ``run_upscale`` as ``POST /upscale`` (so the result's pixels are the
same), from the input stored at submission; a clip (``Media.VIDEO``, decided at submission)
streams from its stored file through service/video/jobs.py into a partial result file that is
renamed into place once whole.

While a job runs, a heartbeat every ``BEAT_S`` writes its progress and extends its lease in the
store, and reads back whether it is still this gateway's: a ``DELETE /jobs/{id}`` through any
replica marks it cancelled there, the heartbeat sees it and cancels the run, which stops sending
tiles and releases its admitted work (as a hung-up request does, service/hangups.py). A gateway
that stops requeues its running jobs; one that dies leaves them with a lease that lapses after
``LEASE_S``, and the upkeep of any gateway on the store then requeues them (or fails them, after
``records.MAX_ATTEMPTS`` runs). The upkeep also expires finished jobs and deletes their files.

Admission applies to jobs as to requests: a job waits (queued as "running", progress 0) while
the work admitted ahead of it does not leave room, retrying after the Retry-After admission gives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from imdsr.video.transcode import TranscodeReport
from service import errors
from service.admission import WorkAdmission
from service.jobs import records
from service.jobs.files import JobFiles
from service.jobs.records import JobRecord, Media
from service.jobs.store import JobStore, StoreUnavailableError
from service.metrics import JOBS_FINISHED, JOBS_RUNNING, JOBS_STORED_BYTES
from service.model_traits import ModelTraits
from service.plan import UpscalePlan, cache_key
from service.schemas import ErrorBody, JobProgress, JobState, UpscaleOptions
from service.settings import Settings
from service.timings import Timings
from service.triton_client import TritonClient
from service.upscaling import (
    Progress,
    UpscaleAnswer,
    answer_headers,
    decode_input,
    plan_for,
    run_upscale,
)
from service.video.jobs import VideoJob, plan_clip, result_headers, run_clip

log = logging.getLogger("imdsr.jobs")
T = TypeVar("T")

BEAT_S = 0.5          # progress, lease and cancellation: a DELETE stops tiles within this
LEASE_S = 15.0        # a running job whose gateway gave no sign for this long is recovered
POLL_S = 1.0          # an idle worker looks for jobs other gateways queued this often
UPKEEP_S = 5.0        # recovery, expiry, purge
STORE_RETRY_S = 2.0   # after the store failed (Redis restarting)
MAX_ADMISSION_WAIT_S = 30  # a Retry-After longer than this is retried sooner
TOMBSTONE_MIN_S = 3600.0


def _progress(progress: Progress) -> JobProgress:
    return JobProgress(tiles_done=progress.tiles_done, tiles_total=progress.tiles_total,
                       frames_done=progress.frames_done, frames_total=progress.frames_total)


class JobRunner:
    def __init__(self, store: JobStore, files: JobFiles, settings: Settings, admission: WorkAdmission,
                 triton: TritonClient) -> None:
        self.store = store
        self.files = files
        self.settings = settings
        self.admission = admission
        self.triton = triton
        self.owner = f"gw-{secrets.token_hex(6)}"  # this process, as the store's leases name it
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task] = {}
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    # --- life -----------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name=f"job-worker-{i}")
                       for i in range(self.settings.jobs_workers)]
        self._tasks.append(asyncio.create_task(self._upkeep(), name="job-upkeep"))

    async def stop(self) -> None:
        """Stop taking jobs; the running ones are cancelled and queued again for any gateway."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def wake(self) -> None:
        """A job was just queued here: a free worker takes it without waiting for its poll."""
        self._wake.set()

    def interrupt(self, job_id: str) -> None:
        """The job was cancelled: stop it now if it runs here (else its heartbeat sees it)."""
        task = self._running.get(job_id)
        if task is not None:
            task.cancel()

    # --- workers --------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            try:
                job = await self.store.claim(
                    lambda r: records.claimed(r, self.owner, time.time(), LEASE_S))
            except StoreUnavailableError as exc:
                log.warning("job store unavailable: %s", exc)
                await asyncio.sleep(STORE_RETRY_S)
                continue
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_S)
                self._wake.clear()
                continue
            try:
                await self._run(job)
            except Exception:  # noqa: BLE001 - a worker outlives any one job; its lease lapses
                log.exception("job %s: could not record its end; it will be recovered", job.id)
                await asyncio.sleep(STORE_RETRY_S)

    async def _run(self, job: JobRecord) -> None:
        progress = Progress()
        task = asyncio.create_task(self._execute(job, progress))
        self._running[job.id] = task
        JOBS_RUNNING.inc()
        try:
            await self._beat_until_done(job, task, progress)
            outcome = await self._record_outcome(job, task, progress)
        except asyncio.CancelledError:  # the gateway stops: give the job back
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await self._give_back(job)
            raise
        finally:
            self._running.pop(job.id, None)
            JOBS_RUNNING.dec()
        JOBS_FINISHED.labels(status=outcome).inc()

    async def _beat_until_done(self, job: JobRecord, task: asyncio.Task, progress: Progress) -> None:
        while not task.done():
            await asyncio.wait((task,), timeout=BEAT_S)
            if task.done():
                return
            now = _progress(progress)
            try:
                current, _ = await self.store.update(
                    job.id, lambda r, p=now: records.beaten(r, self.owner, p, time.time(), LEASE_S))
            except StoreUnavailableError as exc:  # keep running; the lease may lapse meanwhile
                log.warning("job %s: heartbeat failed: %s", job.id, exc)
                continue
            if current is None or current.state is not JobState.RUNNING or current.owner != self.owner:
                task.cancel()  # cancelled (DELETE), or taken over after our lease lapsed

    async def _record_outcome(self, job: JobRecord, task: asyncio.Task, progress: Progress) -> str:
        """Store how ``task`` ended; the outcome's name for the metric."""
        await asyncio.gather(task, return_exceptions=True)
        now, ttl = time.time(), self.settings.jobs_ttl_s
        if task.cancelled():  # through the store (DELETE), or lost to another gateway
            return await self._discard(job.id)
        exc = task.exception()
        if exc is None:
            headers, size = task.result()
            _, stored = await self.store.update(
                job.id, lambda r: records.done(r, self.owner, headers, size, _progress(progress),
                                               now, ttl))
            if not stored:  # cancelled, or taken over, while its result was being written
                return await self._discard(job.id)
            await asyncio.to_thread(self.files.input(job.id).unlink, missing_ok=True)
            return JobState.DONE.value
        if isinstance(exc, errors.ApiError):
            error = ErrorBody(error=exc.code, detail=exc.detail)
        else:
            log.error("job %s failed", job.id, exc_info=exc)
            error = ErrorBody(error="internal_error", detail="internal server error")
        _, stored = await self.store.update(
            job.id, lambda r: records.failed(r, self.owner, error, now, ttl))
        if not stored:
            return await self._discard(job.id)
        await asyncio.to_thread(self.files.remove, job.id)
        return JobState.FAILED.value

    async def _discard(self, job_id: str) -> str:
        """The job stopped being ours: its files go if it was cancelled; if another gateway took
        it over (our lease lapsed), they are that gateway's."""
        current = await self.store.get(job_id)
        if current is None or current.state is JobState.CANCELLED:
            await asyncio.to_thread(self.files.remove, job_id)
            return JobState.CANCELLED.value
        return "lost"

    async def _give_back(self, job: JobRecord) -> None:
        with contextlib.suppress(StoreUnavailableError):  # else its lease lapses and it is recovered
            await self.store.update(job.id, lambda r: records.requeued(r, self.owner))
            JOBS_FINISHED.labels(status="requeued").inc()

    # --- one job --------------------------------------------------------------------------

    async def _execute(self, job: JobRecord, progress: Progress) -> tuple[dict[str, str], int]:
        """Run ``job`` from its stored input; its result's headers and size once written."""
        await self.triton.require_ready(job.model)
        traits = await self.triton.traits(job.model)
        options = UpscaleOptions.model_validate(job.options)
        if job.media is Media.VIDEO:
            return await self._execute_video(job, options, traits, progress)
        return await self._execute_picture(job, options, traits, progress)

    async def _when_admitted(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()`` (which plans and admits its work) within the request deadline, tried
        again while admission is full (429): the job waits for room rather than failing."""
        settings = self.settings
        while True:
            try:
                async with asyncio.timeout(settings.request_timeout_s):
                    return await attempt()
            except errors.TooManyRequestsError as exc:  # admission is full: wait for room
                wait = int(exc.headers.get("Retry-After", settings.retry_after_s))
                await asyncio.sleep(min(wait, MAX_ADMISSION_WAIT_S))
            except TimeoutError as exc:
                raise errors.RequestTimeoutError(
                    f"the job took longer than {settings.request_timeout_s} s") from exc

    async def _execute_picture(self, job: JobRecord, options: UpscaleOptions, traits: ModelTraits,
                               progress: Progress) -> tuple[dict[str, str], int]:
        """As ``POST /upscale`` would run it."""
        settings, triton = self.settings, self.triton
        data = await asyncio.to_thread(self.files.input(job.id).read_bytes)
        key = cache_key(data, options, job.model, job.accept, traits.weights, settings.cache_control)
        timings = Timings()
        with timings.stage("decode"):
            picture, animation = await asyncio.to_thread(decode_input, data, settings)
        del data
        plan: UpscalePlan | None = None

        async def attempt() -> UpscaleAnswer:
            nonlocal plan
            plan = plan_for(options, settings, traits, self.admission, picture, animation,
                            model=job.model, accept=job.accept)
            return await run_upscale(plan, picture, animation, triton, self.admission, timings,
                                     progress)

        done = await self._when_admitted(attempt)
        assert plan is not None
        headers = {**answer_headers(plan, picture, done, timings, key),
                   "X-Model-Reason": job.model_reason, "Content-Type": plan.format.content_type}
        await asyncio.to_thread(self.files.write, self.files.result(job.id), done.body)
        return headers, len(done.body)

    async def _execute_video(self, job: JobRecord, options: UpscaleOptions, traits: ModelTraits,
                             progress: Progress) -> tuple[dict[str, str], int]:
        """A clip streamed from its stored input into a partial result file, committed once
        whole; the transcode removes the partial file when it fails or is cancelled."""
        settings, source, result = self.settings, self.files.input(job.id), self.files.result(job.id)

        async def attempt() -> tuple[VideoJob, TranscodeReport, Path]:
            planned = await plan_clip(source, options, settings, traits, self.admission,
                                      model=job.model)
            partial = await asyncio.to_thread(self.files.partial, result)
            report = await run_clip(planned, source, partial, settings, self.triton,
                                    self.admission, progress)
            return planned, report, partial

        planned, report, partial = await self._when_admitted(attempt)
        try:
            size = await asyncio.to_thread(self.files.commit, partial, result)
        except BaseException:
            await asyncio.to_thread(partial.unlink, missing_ok=True)
            raise
        return result_headers(planned, report, job.model_reason, settings.cache_control), size

    # --- upkeep ---------------------------------------------------------------------------

    async def _upkeep(self) -> None:
        while True:
            try:
                await self.upkeep_once()
            except StoreUnavailableError as exc:
                log.warning("job store unavailable: %s", exc)
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("job upkeep failed")
            await asyncio.sleep(UPKEEP_S)

    async def upkeep_once(self) -> None:
        """Recover jobs whose gateway died, expire finished ones (their files too), forget old
        tombstones: whichever gateway gets to a job first does it, once."""
        now, ttl = time.time(), self.settings.jobs_ttl_s
        for job_id in await self.store.running():
            job, changed = await self.store.update(job_id, lambda r: records.recovered(r, now, ttl))
            if changed and job is not None:
                log.warning("job %s: its gateway stopped while running it; %s", job_id,
                            "queued again" if job.state is JobState.QUEUED else "failed")
                if job.state is JobState.FAILED:
                    await asyncio.to_thread(self.files.remove, job_id)
                else:
                    self.wake()
        for job_id in await self.store.due(now):
            _, changed = await self.store.update(job_id, lambda r: records.expired(r, now))
            if changed:
                await asyncio.to_thread(self.files.remove, job_id)
        # A tombstone answers 410 for another TTL (an hour at least) after its result expired;
        # then the id is unknown (404). Records are a few hundred bytes: cheap to keep.
        await self.store.purge(now - max(ttl, TOMBSTONE_MIN_S))
        await asyncio.to_thread(self.files.sweep, now)
        JOBS_STORED_BYTES.set(await self.store.stored_bytes())
