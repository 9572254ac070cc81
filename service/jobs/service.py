"""What the job routes (service/jobs_api.py) do: submit, status, result, cancel.

A submission is checked as ``POST /upscale`` checks its request, up to admission: the model,
the decode, the plan, and whether the work could ever be admitted (413 if not); then against
the jobs' own limits (queue length and bytes on disk: 429 with Retry-After; a job larger than
the whole disk budget: 413). Its input is written to a file before the job is queued, so no
worker can take a job whose input is not there yet.

A clip (the upload's first bytes are MP4, MOV, MKV or WebM: ``imdsr.video.formats.is_video``)
is written first, since PyAV probes files, and refused from its header (service/video/jobs.py):
its file goes with the refusal.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

from imdsr.imaging import codec
from imdsr.video.formats import SNIFF_BYTES, is_video
from service import errors
from service.admission import WorkAdmission
from service.jobs import records
from service.jobs.files import ID_PATTERN, JobFiles
from service.jobs.records import JobRecord, Media
from service.jobs.runner import JobRunner
from service.jobs.store import JobStore, QueueFullError, StorageFullError, StoreUnavailableError
from service.metrics import JOBS_SUBMITTED
from service.model_choice import ModelChoice
from service.model_traits import ModelTraits
from service.plan import UpscalePlan
from service.schemas import JobState, UpscaleOptions
from service.settings import Settings
from service.triton_client import TritonClient
from service.upscaling import decode_input, plan_for
from service.video.jobs import plan_clip

# PNG's worst case over the raw samples (incompressible rows: zlib's stored blocks and the
# filter byte per row come to well under 1 %), plus room for the container and metadata.
RESULT_OVERHEAD = 1.01
RESULT_SLACK_BYTES = 64 * 1024


def result_bound(plan: UpscalePlan, picture: codec.Picture, input_bytes: int) -> int:
    """The most bytes the job's result can take: its raw samples (what a lossless format may
    need at worst; the lossy ones need far less), every frame, the input's metadata kept."""
    channels = 3 + (picture.alpha is not None)
    raw = plan.final.pixels * plan.frames * channels * (picture.bit_depth // 8)
    return math.ceil(raw * RESULT_OVERHEAD) + RESULT_SLACK_BYTES + input_bytes


class JobService:
    def __init__(self, store: JobStore, files: JobFiles, runner: JobRunner, settings: Settings,
                 admission: WorkAdmission, triton: TritonClient) -> None:
        self.store = store
        self.files = files
        self.runner = runner
        self.settings = settings
        self.admission = admission
        self.triton = triton

    async def submit(self, data: bytes, options: UpscaleOptions, accept: str | None,
                     choice: ModelChoice) -> JobRecord:
        await self.triton.require_ready(choice.model)
        traits = await self.triton.traits(choice.model)
        job_id = records.new_id()
        path = self.files.input(job_id)
        video = is_video(data[:SNIFF_BYTES])
        seconds = 0.0  # the job's model time, once planned (for a 429's Retry-After)
        try:
            if video:  # probed from its file (PyAV reads files), refused before it is queued
                await asyncio.to_thread(self.files.write, path, data)
                seconds, reserved = await self._check_video(path, len(data), options, traits,
                                                            choice)
            else:
                seconds, reserved = await self._check_picture(data, options, traits, choice, accept)
                await asyncio.to_thread(self.files.write, path, data)
            job = JobRecord(id=job_id, state=JobState.QUEUED, model=choice.model,
                            model_reason=choice.reason,
                            options=options.model_dump(mode="json", exclude_none=True),
                            media=Media.VIDEO if video else Media.IMAGE, accept=accept,
                            created=time.time(), input_bytes=len(data), reserved_bytes=reserved,
                            seconds=seconds)
            await self.store.add(job, max_queued=self.settings.jobs_max_queued,
                                 max_bytes=self.settings.jobs_max_result_bytes)
        except BaseException as exc:
            await asyncio.to_thread(path.unlink, missing_ok=True)
            refusal = self._refusal(exc, seconds)
            if refusal is exc:
                raise
            raise refusal from exc
        JOBS_SUBMITTED.inc()
        self.runner.wake()
        return job

    def _check_reserved(self, reserved: int) -> None:
        if reserved > self.settings.jobs_max_result_bytes:
            raise errors.ImageTooLargeError(
                f"this job's input and result may take {reserved >> 20} MiB; jobs may keep "
                f"{self.settings.jobs_max_result_bytes >> 20} MiB in all (IMDSR_JOBS_MAX_RESULT_BYTES)")

    async def _check_picture(self, data: bytes, options: UpscaleOptions, traits: ModelTraits,
                             choice: ModelChoice, accept: str | None) -> tuple[float, int]:
        """A picture checked as ``POST /upscale`` checks it: its model seconds and the bytes it
        reserves on disk (its input file and its result), or the refusal."""
        settings = self.settings
        picture, animation = await asyncio.to_thread(decode_input, data, settings)
        plan = plan_for(options, settings, traits, self.admission, picture, animation,
                        model=choice.model, accept=accept)
        self.admission.check_fits(plan.cost)  # the 413 /upscale would answer, whatever the load
        reserved = len(data) + result_bound(plan, picture, len(data))
        self._check_reserved(reserved)
        return plan.cost.seconds, reserved

    async def _check_video(self, path: Path, input_bytes: int, options: UpscaleOptions,
                           traits: ModelTraits, choice: ModelChoice) -> tuple[float, int]:
        """A clip (stored at ``path``) planned and refused by its header as it will run."""
        planned = await plan_clip(path, options, self.settings, traits, self.admission,
                                  model=choice.model)
        self.admission.check_fits(planned.plan.cost)
        reserved = input_bytes + planned.reserved_bytes(input_bytes)
        self._check_reserved(reserved)
        return planned.plan.cost.seconds, reserved

    def _refusal(self, exc: BaseException, seconds: float) -> BaseException:
        """The answer to a submission the store refused: 429 (full) or 503 (unreachable);
        ``seconds``: the job's model time."""
        # About one job's time: what frees a queue slot or, with nothing finished to expire, room.
        drain = max(self.settings.retry_after_s,
                    math.ceil(seconds / self.admission.parallelism))
        if isinstance(exc, QueueFullError):
            return errors.TooManyRequestsError(
                f"{self.settings.jobs_max_queued} jobs are queued already (IMDSR_JOBS_MAX_QUEUED)",
                headers={"Retry-After": str(drain)})
        if isinstance(exc, StorageFullError):  # room comes when the next finished job expires
            wait = drain if exc.next_expiry is None else math.ceil(exc.next_expiry - time.time())
            return errors.TooManyRequestsError(
                "job storage is full (IMDSR_JOBS_MAX_RESULT_BYTES) until results expire",
                headers={"Retry-After": str(max(self.settings.retry_after_s, wait))})
        if isinstance(exc, (StoreUnavailableError, OSError)):
            return self._unavailable(exc)
        return exc

    def _unavailable(self, exc: BaseException) -> errors.ApiError:
        return errors.JobStoreUnavailableError(
            f"the job store is unavailable: {exc}",
            headers={"Retry-After": str(self.settings.unavailable_retry_after_s)})

    async def get(self, job_id: str) -> JobRecord:
        if not ID_PATTERN.match(job_id):
            raise errors.JobNotFoundError(f"no job {job_id!r}")
        try:
            job = await self.store.get(job_id)
        except StoreUnavailableError as exc:
            raise self._unavailable(exc) from exc
        if job is None:
            raise errors.JobNotFoundError(f"no job {job_id!r} (or it expired long ago)")
        return job

    async def result(self, job_id: str) -> tuple[Path, dict[str, str]]:
        """The result's file and headers, or 409 (not done: the detail says its status) or 410."""
        job = await self.get(job_id)
        if job.state is not JobState.DONE:
            detail: dict[str, object] = {"status": job.state.value,
                                         "progress": job.progress.model_dump()}
            if job.error is not None:
                detail["job_error"] = job.error.model_dump()
            raise errors.JobNotDoneError(detail)
        path = self.files.result(job_id)
        if job.expired or (job.expires is not None and job.expires <= time.time()) \
                or not path.is_file():
            raise errors.JobExpiredError(
                f"the result of job {job_id} expired (IMDSR_JOBS_TTL_S after it finished)")
        return path, job.headers

    async def cancel(self, job_id: str) -> JobRecord:
        """Queued or running: cancelled (its tiles stop, its admitted work is released); done:
        cancelled, its result deleted at once; failed, cancelled or expired: as it was."""
        await self.get(job_id)  # 404 for an unknown id
        try:
            job, changed = await self.store.update(
                job_id, lambda r: records.cancelled(r, time.time(), self.settings.jobs_ttl_s))
        except StoreUnavailableError as exc:
            raise self._unavailable(exc) from exc
        if job is None:
            raise errors.JobNotFoundError(f"no job {job_id!r}")
        if changed:
            self.runner.interrupt(job_id)
            await asyncio.to_thread(self.files.remove, job_id)
        return job
