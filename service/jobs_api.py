"""The job routes: ``POST /jobs``, ``GET /jobs/{id}``, ``GET /jobs/{id}/result``, ``DELETE /jobs/{id}``.

A job is ``POST /upscale`` as a resource: the same body, parameters, validation and errors at
submission, then polled, fetched (the same bytes and headers as ``/upscale``'s answer) and
cancelled by id, through any replica that shares the store. The work is in service/jobs/.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from imdsr.imaging import codec
from imdsr.video.formats import VideoFormat
from service.api import (
    ERROR_RESPONSES,
    UPLOAD_BODY,
    SettingsDep,
    TritonDep,
    read_options,
    reject_unknown_query,
    require_api_key,
)
from service.conventions import matches
from service.jobs.records import JobRecord
from service.jobs.service import JobService
from service.model_choice import choose_model
from service.schemas import ErrorBody, JobState, JobStatus, UpscaleOptions
from service.slots import upscale_slot
from service.timings import Timings

router = APIRouter(dependencies=[Depends(require_api_key)], tags=["jobs"])


def get_jobs(request: Request) -> JobService:
    return request.app.state.jobs


JobsDep = Annotated[JobService, Depends(get_jobs)]

STATUS_DOC = "; ".join(f"`{s.value}`" for s in JobState)
NOT_FOUND = {404: {"model": ErrorBody, "description": "no such job (or its tombstone is gone too)"}}
UNAVAILABLE = {503: {"model": ErrorBody, "description": "the job store is unreachable (Retry-After)"}}


def _time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def job_status(job: JobRecord) -> JobStatus:
    return JobStatus(id=job.id, status=job.state, model=job.model, progress=job.progress,
                     created=_time(job.created), started=_time(job.started),
                     finished=_time(job.finished), expires=_time(job.expires), error=job.error,
                     result=f"/jobs/{job.id}/result" if job.result_ready else None)


def _status_response(job: JobRecord, status_code: int = 200,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(job_status(job).model_dump(mode="json"), status_code=status_code,
                        headers=headers)


@router.post(
    "/jobs",
    summary="Submit an upscale as a job (poll it, fetch its result later)",
    description="Takes exactly what `POST /upscale` takes (raw body or multipart, the same "
                "parameters) and refuses what it refuses, with the same errors; then answers "
                "at once with the job (`Location: /jobs/{id}`). Use it where a client cannot "
                "hold a connection for the whole work. 429: the job queue or the jobs' disk "
                f"budget is full (Retry-After). Statuses: {STATUS_DOC}. A video (MP4, MOV, MKV, "
                "WebM: told by its bytes) is only taken here: `format=mp4|webm`, `crf`, "
                "`outscale`/`width`/`height`/`fit`, `model`, `tile`; refused from its header "
                "before it is queued (400 `corrupt_video`, 413 `video_too_large` naming the "
                "limit, 415); its progress counts frames, its result is the clip with its sound.",
    status_code=202,
    response_model=JobStatus,
    responses={202: {"description": "queued", "headers": {
        "Location": {"description": "/jobs/{id}", "schema": {"type": "string"}}}},
        **ERROR_RESPONSES, **UNAVAILABLE},
    openapi_extra=UPLOAD_BODY,
    dependencies=[Depends(upscale_slot)],
)
async def submit_job(
    request: Request,
    options: Annotated[UpscaleOptions, Query()],
    settings: SettingsDep,
    triton: TritonDep,
    jobs: JobsDep,
) -> JSONResponse:
    reject_unknown_query(request)
    upload, options = await read_options(request, options, settings, Timings())
    choice = await choose_model(options.model, upload.data, settings, triton)
    request.state.model = choice.model
    job = await jobs.submit(upload.data, options, request.headers.get("accept"), choice)
    return _status_response(job, 202, {"Location": f"/jobs/{job.id}"})


@router.get("/jobs/{job_id}", summary="A job's status and progress", response_model=JobStatus,
            description=f"Statuses: {STATUS_DOC}. `result` is set once done, until `expires`.",
            responses={**NOT_FOUND, **UNAVAILABLE})
async def get_job(job_id: str, jobs: JobsDep) -> JSONResponse:
    return _status_response(await jobs.get(job_id))


@router.get(
    "/jobs/{job_id}/result",
    summary="A done job's image, with the headers `POST /upscale` answers",
    response_class=Response,
    responses={200: {"content": {t.content_type: {} for t in (*codec.OutputFormat, *VideoFormat)},
                     "description": "the upscaled image (X-Model, X-Output-Size, ETag...), or "
                     "clip (X-Frames, X-Video-Codec; no ETag)"},
               304: {"description": "If-None-Match matched the result's ETag"},
               409: {"model": ErrorBody, "description": "`job_not_done`: queued, running, failed "
                     "or cancelled (`detail.status`; a failed job's error in `detail.job_error`)"},
               410: {"model": ErrorBody, "description": "`job_expired`: the result was kept "
                     "IMDSR_JOBS_TTL_S after the job finished, and is gone"},
               **NOT_FOUND, **UNAVAILABLE},
)
async def get_job_result(job_id: str, request: Request, jobs: JobsDep) -> Response:
    path, headers = await jobs.result(job_id)
    headers = dict(headers)
    media_type = headers.pop("Content-Type", "application/octet-stream")
    tag = headers.get("ETag")
    if tag and matches(request.headers.get("if-none-match"), tag):
        kept = ("ETag", "Cache-Control", "Vary")
        return Response(status_code=304, headers={k: v for k, v in headers.items() if k in kept})
    return FileResponse(path, media_type=media_type, headers=headers)


@router.delete(
    "/jobs/{job_id}",
    summary="Cancel a job (or delete a done job's result)",
    description="Queued or running: cancelled; its tiles stop within half a second and its "
                "admitted work is released. Done: cancelled, its result deleted. Failed or "
                "already cancelled: unchanged. Answers the job as it is then.",
    response_model=JobStatus,
    responses={**NOT_FOUND, **UNAVAILABLE},
)
async def cancel_job(job_id: str, jobs: JobsDep) -> JSONResponse:
    return _status_response(await jobs.cancel(job_id))
