"""HTTP client of the gateway: ``imdsr upscale URL PATH... -o OUTDIR``.

Files and folders become a plan of :class:`FileTask` (``plan_tasks``: folder walking, output
names, name clashes), then ``upscale_tasks`` sends them a few at a time, skipping outputs already
written, retrying 429/503 after their ``Retry-After`` and collecting an :class:`UpscaleSummary`.
Each file goes either straight to ``POST /upscale`` (one request, the answer is the image) or, when
large, through a job of the gateway (:class:`RemoteJob`: ``submit``, ``wait``/``status``,
``result``, ``cancel`` over ``/jobs``), which reports its progress and can be cancelled. Either way
the result is written under the same name, atomically. A plain HTTP client: nothing of the gateway
is imported; output-format names and suffixes are the codec's (``imdsr.imaging.codec``) and, for
clips, ``imdsr.video.formats``', so they cannot disagree with the gateway's.

A clip (MP4, MOV, MKV, WebM, told by its first bytes) always goes through a job, its bar counting
frames; the parameters of the other kind (a picture's ``format``/``quality``/``png`` on a clip, a
clip's ``format``/``crf`` on a picture) are left out of its request, so one run takes both kinds.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import mimetypes
import os
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from pydantic import BaseModel, ConfigDict
from tqdm import tqdm

from imdsr.imaging.codec import OutputFormat, default_format_for_path, format_for_path
from imdsr.video.formats import VIDEO_SUFFIXES, VideoFormat, is_video_path

# What counts as an image in a folder (by suffix, lower-cased); a file named on the command line is
# sent whatever its suffix, and the gateway decides.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif",
                            ".avif", ".heic", ".heif"})
OUTPUT_TAG = "_x4"
RETRY_STATUSES = frozenset({429, 503})
SCALE = 4  # the network's; the work of a file is its input pixels x SCALE^2, whatever the final size

# Files whose network output reaches this many megapixels go through a job by default (the page
# uses the same figure, service/static/app.js). Below it a direct request is quicker: a job costs
# three requests more and half a poll interval of latency on average, and at the gateway's starting
# rate (IMDSR_DEFAULT_SECONDS_PER_MPX, 0.3 s per output Mpx) a 4-Mpx output takes about a second
# or more on CPU, where a progress bar and Ctrl-C start to matter.
DEFAULT_JOBS_ABOVE_MPX = 4.0
POLL_S = 0.5  # between two GET /jobs/{id}: a tile of c4 on CPU takes ~0.1-0.5 s

# Upload media types Python's mimetypes may not know.
_UPLOAD_TYPES = {".avif": "image/avif", ".heic": "image/heic", ".heif": "image/heif",
                 ".webp": "image/webp", ".bmp": "image/bmp"}


class UpscaleFailed(RuntimeError):  # noqa: N818 - reads as what happened
    """The gateway's ``{"error", "detail"}`` for one file: from an HTTP answer (``status``), or
    from a job that failed or was cancelled after it was accepted (``status`` 0, ``where``)."""

    def __init__(self, status: int, error: str, detail: object, *, where: str | None = None) -> None:
        text = detail if isinstance(detail, str) else json.dumps(detail, default=str)
        super().__init__(f"{where or f'HTTP {status}'} {error}: {text}")
        self.status, self.error, self.detail = status, error, detail


@dataclass(frozen=True)
class UpscaleParams:
    """The query parameters of ``POST /upscale``, one per field of the gateway's
    ``UpscaleOptions`` and by the same name (tests/unit/test_upscale_vocabulary.py holds the two
    together); None is not sent: the gateway's default. Enum values go as their strings.
    ``POST /jobs`` takes the same."""

    model: str | None = None
    format: str | None = None
    quality: int | None = None
    png: str | None = None
    outscale: float | None = None
    width: int | None = None
    height: int | None = None
    fit: str | None = None
    metadata: str | None = None
    alpha: str | None = None
    crf: int | None = None
    tile: int | None = None
    api_key: str | None = None  # sent as X-API-Key, never in the URL

    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key} if self.api_key else {}

    def query(self) -> dict[str, str | int | float]:
        named = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_key"}
        return {k: v for k, v in named.items() if v is not None}

    def for_kind(self, video: bool) -> UpscaleParams:
        """These parameters for a clip (``video``) or a picture: the other kind's left out."""
        fmt = self.format if video == (VideoFormat.named(self.format or "") is not None) else None
        if video:
            return replace(self, format=fmt, quality=None, png=None)
        return replace(self, format=fmt, crf=None)


@dataclass(frozen=True)
class FileTask:
    """One input file and where its result goes. ``exact``: written at ``output`` whatever the
    gateway returns; otherwise the extension follows the response's Content-Type."""

    source: Path
    output: Path
    exact: bool = False


@dataclass(frozen=True)
class Upscaled:
    source: Path
    path: Path
    content_type: str
    headers: dict[str, str]
    job: str | None = None  # the id of the gateway's job that made it, if one did


@dataclass(frozen=True)
class Failure:
    source: Path
    reason: str


@dataclass
class UpscaleSummary:
    done: list[Upscaled] = field(default_factory=list)
    skipped: list[FileTask] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def line(self) -> str:
        return f"{len(self.done)} done, {len(self.skipped)} skipped, {len(self.failed)} failed"


# --- planning -----------------------------------------------------------------------------------


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def is_media(path: Path) -> bool:
    """An image or a clip, by its suffix: what a folder's walk takes."""
    return is_image(path) or path.suffix.lower() in VIDEO_SUFFIXES


def find_images(root: Path, *, recursive: bool, exclude: Path | None = None) -> list[Path]:
    """The images and clips in ``root`` (and below it with ``recursive``), sorted; hidden files and folders
    are left out, and so are earlier results (``*_x4.*``) inside ``exclude``, the output folder."""
    outputs = exclude.resolve() if exclude is not None else None
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        in_outputs = outputs is not None and (here.resolve() == outputs
                                              or outputs in here.resolve().parents)
        found += [here / f for f in files if not f.startswith(".") and is_media(here / f)
                  and not (in_outputs and Path(f).stem.endswith(OUTPUT_TAG))]
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def output_suffix(source: Path, fmt: str | None) -> str:
    """The extension of ``source``'s result: ``fmt``'s, else what the gateway answers by default
    (the codec's rule, from the suffix: lossy stays lossy, HEIC becomes JPEG, everything else
    PNG; a clip's: MP4 unless ``fmt`` is a clip's format). A wrong guess is corrected from the
    answer's Content-Type (``save_result``)."""
    if is_video_path(source):
        return (VideoFormat.named(fmt or "") or VideoFormat.MP4).suffix
    chosen = OutputFormat.named(fmt) if fmt else None
    return (chosen or default_format_for_path(source)).suffix


def output_name(source: Path, fmt: str | None) -> str:
    """``photo.jpg`` -> ``photo_x4.jpg`` (``photo_x4.webp`` with ``fmt="webp"``)."""
    return f"{source.stem}{OUTPUT_TAG}{output_suffix(source, fmt)}"


def _format_of_path(path: Path) -> str | None:
    named = format_for_path(path) or VideoFormat.named(path.suffix)
    return named.value if named else None


def suffix_for_content_type(content_type: str) -> str | None:
    media = content_type.split(";")[0].strip().lower()
    fmt = OutputFormat.named(media) if media.startswith("image/") else VideoFormat.named(media)
    if fmt is not None:
        return fmt.suffix
    return mimetypes.guess_extension(media) if media else None


def is_output_file(path: Path) -> bool:
    """``-o`` names one file rather than a folder: it has an image or clip suffix and is not a
    folder."""
    return is_media(path) and not path.is_dir()


def plan_tasks(paths: Sequence[Path], out: Path, *, recursive: bool = False,
               fmt: str | None = None) -> tuple[list[FileTask], list[Failure]]:
    """Tasks for files and folders; the results of a folder's images keep their folder structure
    under ``out``. A single file with ``out`` naming a file (image suffix) is written exactly there.
    Two inputs that would write the same output: the later ones keep their own suffix in the name
    (``photo_png_x4.webp``), and fail if that clashes too."""
    if len(paths) == 1 and paths[0].is_file() and is_output_file(out):
        return [FileTask(paths[0], out, exact=True)], []
    tasks: list[FileTask] = []
    for path in paths:
        if path.is_dir():
            tasks += [FileTask(f, out / f.relative_to(path).parent / output_name(f, fmt))
                      for f in find_images(path, recursive=recursive, exclude=out)]
        else:
            tasks.append(FileTask(path, out / output_name(path, fmt)))
    return _resolve_clashes(tasks)


def _resolve_clashes(tasks: Iterable[FileTask]) -> tuple[list[FileTask], list[Failure]]:
    taken: dict[Path, Path] = {}
    kept: list[FileTask] = []
    failed: list[Failure] = []
    for task in tasks:
        output = task.output
        if output in taken:
            tag = task.source.suffix.lstrip(".").lower() or "noext"
            output = output.with_name(f"{task.source.stem}_{tag}{OUTPUT_TAG}{output.suffix}")
        if output in taken:
            failed.append(Failure(task.source, f"same output {output} as {taken[output]}"))
            continue
        taken[output] = task.source
        kept.append(FileTask(task.source, output, task.exact))
    return kept, failed


def already_done(output: Path) -> bool:
    """An output that exists and is not empty (written whole: outputs are renamed into place)."""
    try:
        return output.is_file() and output.stat().st_size > 0
    except OSError:
        return False


def network_output_mpx(source: Path) -> float:
    """Megapixels the network computes for ``source``: width x height x 16, times its frames;
    read from the header (Pillow opens lazily). 0 for a file Pillow cannot read: the gateway will
    say what is wrong with it."""
    try:
        with Image.open(source) as image:
            width, height = image.size
            frames = getattr(image, "n_frames", 1)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return 0.0
    return width * height * SCALE * SCALE * max(1, frames) / 1e6


def uses_job(source: Path, jobs_above_mpx: float | None) -> bool:
    """Whether ``source`` goes through a job: never with None, else at ``jobs_above_mpx`` output
    megapixels or more (0: every file)."""
    return jobs_above_mpx is not None and network_output_mpx(source) >= jobs_above_mpx


# --- answers ------------------------------------------------------------------------------------


def upload_type(source: Path) -> str:
    suffix = source.suffix.lower()
    return (_UPLOAD_TYPES.get(suffix) or VIDEO_SUFFIXES.get(suffix)
            or mimetypes.guess_type(source.name)[0] or "application/octet-stream")


def retry_delay(response: httpx.Response, attempt: int, cap_s: float) -> float:
    """Seconds to wait before retrying: the Retry-After header (seconds or an HTTP date), else
    1, 2, 4 ... s; at most ``cap_s``."""
    value = response.headers.get("retry-after", "").strip()
    delay: float | None = None
    if value:
        try:
            delay = float(value)
        except ValueError:
            try:
                delay = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                delay = None
    if delay is None:
        delay = 2.0 ** attempt
    return min(max(delay, 0.0), cap_s)


def raise_for_error(response: httpx.Response, ok: int = 200) -> None:
    """An answer other than ``ok`` as :class:`UpscaleFailed`, with the gateway's
    ``{"error", "detail"}``."""
    if response.status_code == ok:
        return
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "error" in payload:
        raise UpscaleFailed(response.status_code, str(payload["error"]), payload.get("detail"))
    raise UpscaleFailed(response.status_code, "http_error", response.text[:200])


def write_atomically(path: Path, data: bytes) -> None:
    """Write through a temporary file renamed into place: an interrupted run leaves no partial
    output that a later run would take as done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part")
    part.write_bytes(data)
    os.replace(part, path)


async def request_with_retries(client: httpx.AsyncClient, method: str, url: str, *, retries: int,
                               retry_cap_s: float, **kwargs: Any) -> httpx.Response:
    """Send once, and again after each 429/503 (at most ``retries`` more times), waiting its
    Retry-After; the last answer is returned whatever it is."""
    for attempt in range(retries + 1):
        response = await client.request(method, url, **kwargs)
        if response.status_code not in RETRY_STATUSES or attempt == retries:
            break
        await asyncio.sleep(retry_delay(response, attempt, retry_cap_s))
    return response


async def post_with_retries(client: httpx.AsyncClient, url: str, body: bytes, content_type: str,
                            params: UpscaleParams, *, retries: int, retry_cap_s: float) -> httpx.Response:
    """``POST /upscale`` once, and again after each 429/503 (at most ``retries`` more times)."""
    response = await request_with_retries(
        client, "POST", f"{url.rstrip('/')}/upscale", retries=retries, retry_cap_s=retry_cap_s,
        params=params.query(), content=body, headers={"Content-Type": content_type})
    raise_for_error(response)
    return response


def save_result(task: FileTask, params: UpscaleParams, response: httpx.Response,
                job: str | None = None) -> Upscaled:
    """Write an answer's image where ``task`` says (its extension corrected from the answer's
    Content-Type unless fixed), atomically: the same for a direct answer and a job's result."""
    content_type = response.headers.get("content-type", "")
    output = task.output
    suffix = suffix_for_content_type(content_type)
    if not task.exact and params.format is None and suffix and suffix != output.suffix:
        output = output.with_suffix(suffix)  # the gateway chose another family than predicted
    write_atomically(output, response.content)
    return Upscaled(task.source, output, content_type, dict(response.headers), job)


async def upscale_task(client: httpx.AsyncClient, url: str, task: FileTask, params: UpscaleParams, *,
                       retries: int = 5, retry_cap_s: float = 30.0) -> Upscaled:
    """One file through ``POST /upscale``."""
    body = await asyncio.to_thread(task.source.read_bytes)
    response = await post_with_retries(client, url, body, upload_type(task.source), params,
                                       retries=retries, retry_cap_s=retry_cap_s)
    return await asyncio.to_thread(save_result, task, params, response)


# --- the gateway's jobs -------------------------------------------------------------------------


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class JobProgress(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    tiles_done: int = 0
    tiles_total: int = 0
    frames_done: int = 0
    frames_total: int = 0

    @property
    def fraction(self) -> float | None:
        """Done share of the work, by tiles (frames where no tile count is known yet); None
        before either total is known."""
        for done, total in ((self.tiles_done, self.tiles_total), (self.frames_done, self.frames_total)):
            if total > 0:
                return min(1.0, max(0.0, done / total))
        return None


class RemoteJob(BaseModel):
    """A job's ``JobStatus`` as ``POST /jobs``, ``GET /jobs/{id}`` and ``DELETE /jobs/{id}``
    answer it; fields the gateway adds later are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    status: JobState
    model: str
    progress: JobProgress = JobProgress()
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None
    expires: datetime | None = None
    error: dict[str, Any] | None = None
    result: str | None = None  # "/jobs/{id}/result" once done

    @property
    def done(self) -> bool:
        return self.status is JobState.DONE

    def failure(self) -> UpscaleFailed:
        """A failed or cancelled job as the error of its file (the gateway's own code and detail
        when it gave them)."""
        error = self.error or {}
        return UpscaleFailed(0, str(error.get("error", self.status.value)),
                             error.get("detail", f"the job ended {self.status.value}"),
                             where=f"job {self.id} {self.status.value}:")


def _jobs_url(url: str, *parts: str) -> str:
    return "/".join([url.rstrip("/"), "jobs", *parts])


def parse_job(response: httpx.Response, ok: int = 200) -> RemoteJob:
    """The JobStatus of an answer, or its error as :class:`UpscaleFailed`."""
    raise_for_error(response, ok)
    try:
        return RemoteJob.model_validate(response.json())
    except ValueError as exc:  # pydantic's ValidationError is one; so is bad JSON
        raise UpscaleFailed(response.status_code, "bad_job_status", str(exc)[:300]) from exc


async def submit(client: httpx.AsyncClient, url: str, body: bytes, content_type: str,
                 params: UpscaleParams, *, retries: int = 5, retry_cap_s: float = 30.0) -> RemoteJob:
    """``POST /jobs`` (what ``POST /upscale`` takes): the queued job, once accepted (202); a full
    queue (429) or a gateway without Triton (503) is retried after its Retry-After."""
    response = await request_with_retries(
        client, "POST", _jobs_url(url), retries=retries, retry_cap_s=retry_cap_s,
        params=params.query(), content=body, headers={"Content-Type": content_type})
    return parse_job(response, ok=202)


async def status(client: httpx.AsyncClient, url: str, job_id: str, *, retries: int = 5,
                 retry_cap_s: float = 30.0) -> RemoteJob:
    """``GET /jobs/{id}``; 404 (unknown, or forgotten) raises."""
    response = await request_with_retries(client, "GET", _jobs_url(url, job_id), retries=retries,
                                          retry_cap_s=retry_cap_s)
    return parse_job(response)


async def result(client: httpx.AsyncClient, url: str, job: RemoteJob | str, *, retries: int = 5,
                 retry_cap_s: float = 30.0) -> httpx.Response:
    """``GET /jobs/{id}/result``: the image and the headers ``POST /upscale`` would have given;
    409 (not done, failed, cancelled) and 410 (expired) raise."""
    path = job.result if isinstance(job, RemoteJob) and job.result else None
    job_id = job.id if isinstance(job, RemoteJob) else job
    target = f"{url.rstrip('/')}{path}" if path else _jobs_url(url, job_id, "result")
    response = await request_with_retries(client, "GET", target, retries=retries,
                                          retry_cap_s=retry_cap_s)
    raise_for_error(response)
    return response


async def cancel(client: httpx.AsyncClient, url: str, job_id: str, *, retries: int = 2,
                 retry_cap_s: float = 5.0) -> RemoteJob:
    """``DELETE /jobs/{id}``: the job, cancelled."""
    response = await request_with_retries(client, "DELETE", _jobs_url(url, job_id),
                                          retries=retries, retry_cap_s=retry_cap_s)
    return parse_job(response)


async def wait(client: httpx.AsyncClient, url: str, job: RemoteJob, *, poll_s: float = POLL_S,
               retries: int = 5, retry_cap_s: float = 30.0) -> AsyncIterator[RemoteJob]:
    """Each status of ``job`` from ``GET /jobs/{id}`` every ``poll_s``, the given one first, until
    one that is finished (done, failed or cancelled), which is the last yielded. A 429/503 poll
    waits its Retry-After (``retries`` in a row at most, then raises)."""
    yield job
    while not job.status.finished:
        await asyncio.sleep(poll_s)
        job = await status(client, url, job.id, retries=retries, retry_cap_s=retry_cap_s)
        yield job


# --- many files ---------------------------------------------------------------------------------


@dataclass
class OpenJobs:
    """The jobs a run started and has not seen finish, so that an interrupted run cancels them;
    ``submitting``: the ``POST /jobs`` still under way (their ids come with the answer). After
    :meth:`cancel_all`, ``cancelled`` and ``not_cancelled`` ("id: reason") say what it did."""

    running: dict[str, Path] = field(default_factory=dict)
    submitting: set[asyncio.Future[RemoteJob]] = field(default_factory=set)
    cancelled: list[str] = field(default_factory=list)
    not_cancelled: list[str] = field(default_factory=list)

    def submitted(self, source: Path, pending: asyncio.Future[RemoteJob]) -> None:
        """Follow a ``POST /jobs`` under way: once answered, its job is open until finished."""
        self.submitting.add(pending)

        def settle(done: asyncio.Future[RemoteJob]) -> None:
            self.submitting.discard(done)
            if not done.cancelled() and done.exception() is None and not done.result().status.finished:
                self.running[done.result().id] = source

        pending.add_done_callback(settle)

    def finished(self, job_id: str) -> None:
        self.running.pop(job_id, None)

    async def cancel_all(self, client: httpx.AsyncClient, url: str) -> None:
        """``DELETE`` every open job, after the submissions under way have their answers."""
        if self.submitting:
            await asyncio.gather(*list(self.submitting), return_exceptions=True)  # settle() ran
        ids = sorted(self.running)
        self.running.clear()
        outcomes = await asyncio.gather(*(cancel(client, url, i) for i in ids), return_exceptions=True)
        for job_id, outcome in zip(ids, outcomes, strict=True):
            if isinstance(outcome, RemoteJob):
                self.cancelled.append(job_id)
            else:
                self.not_cancelled.append(f"{job_id}: {outcome}")


class Interrupted(KeyboardInterrupt):  # noqa: N818 - a KeyboardInterrupt that says what it undid
    """Ctrl-C during :func:`upscale_paths`, raised once the jobs it had started were cancelled."""

    def __init__(self, cancelled: list[str], not_cancelled: list[str]) -> None:
        super().__init__(f"interrupted; cancelled {len(cancelled)} job(s)")
        self.cancelled, self.not_cancelled = cancelled, not_cancelled


class JobBar:
    """One file's bar, driven by its job's tiles (frames in the postfix for an animation), or
    by its frames for a clip (``video``)."""

    def __init__(self, source: Path, *, disable: bool | None, video: bool = False) -> None:
        self.video = video
        self.bar = tqdm(total=None, desc=source.name, unit="frame" if video else "tile",
                        leave=False, disable=disable, dynamic_ncols=True)

    def show(self, job: RemoteJob) -> None:
        p = job.progress
        done, total = (p.frames_done, p.frames_total) if self.video else (p.tiles_done, p.tiles_total)
        if total and self.bar.total != total:
            self.bar.reset(total=total)
        self.bar.n = done
        postfix = {"job": job.status.value}
        if p.frames_total > 1 and not self.video:
            postfix["frames"] = f"{p.frames_done}/{p.frames_total}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


async def upscale_task_by_job(client: httpx.AsyncClient, url: str, task: FileTask,
                              params: UpscaleParams, open_jobs: OpenJobs, *, retries: int = 5,
                              retry_cap_s: float = 30.0, poll_s: float = POLL_S,
                              progress: bool | None = None, video: bool = False) -> Upscaled:
    """One file through a job: submit, follow its progress on a bar of its own, fetch and write
    the result as :func:`upscale_task` writes its answer. Without a terminal the job's id is
    printed instead (stderr), so a log says which job made which file."""
    body = await asyncio.to_thread(task.source.read_bytes)
    # shielded: a Ctrl-C during the POST still gets its answer, so that its job can be cancelled
    pending = asyncio.ensure_future(submit(client, url, body, upload_type(task.source), params,
                                           retries=retries, retry_cap_s=retry_cap_s))
    open_jobs.submitted(task.source, pending)
    accepted = await asyncio.shield(pending)
    bar = JobBar(task.source, disable=None if progress is None else not progress, video=video)
    if bar.bar.disable and progress is not False:
        tqdm.write(f"imdsr upscale: {task.source}: job {accepted.id} {accepted.status.value}",
                   file=sys.stderr)
    job = accepted
    try:
        async for job in wait(client, url, accepted, poll_s=poll_s, retries=retries,
                              retry_cap_s=retry_cap_s):
            bar.show(job)
        open_jobs.finished(job.id)
    finally:
        bar.close()
    if not job.done:
        raise job.failure()
    response = await result(client, url, job, retries=retries, retry_cap_s=retry_cap_s)
    return await asyncio.to_thread(save_result, task, params, response, job.id)


async def upscale_tasks(url: str, tasks: Sequence[FileTask], params: UpscaleParams, *,
                        in_flight: int = 4, overwrite: bool = False, retries: int = 5,
                        retry_cap_s: float = 30.0, timeout_s: float = 600.0,
                        progress: bool | None = None, jobs_above_mpx: float | None = None,
                        poll_s: float = POLL_S, open_jobs: OpenJobs | None = None) -> UpscaleSummary:
    """Upscale every task, ``in_flight`` files at a time. Outputs already there (not empty) are
    skipped unless ``overwrite``. ``jobs_above_mpx``: files of that many output megapixels or
    more go through a job (None: none do). ``progress``: tqdm bars on stderr (None: if a
    terminal). Cancelled (Ctrl-C under ``asyncio.run``), it cancels the jobs it started, records
    that in ``open_jobs``, and lets the cancellation go on."""
    summary = UpscaleSummary()
    todo: list[FileTask] = []
    for task in tasks:
        (todo if overwrite or not already_done(task.output) else summary.skipped).append(task)
    queue: Iterator[FileTask] = iter(todo)
    open_jobs = open_jobs if open_jobs is not None else OpenJobs()
    bar = tqdm(total=len(tasks), initial=len(summary.skipped), unit="file", desc="upscale",
               disable=None if progress is None else not progress, dynamic_ncols=True)

    async def one(client: httpx.AsyncClient, task: FileTask) -> Upscaled:
        video = await asyncio.to_thread(is_video_path, task.source)
        mine = params.for_kind(video)
        # A clip is only ever a job (the gateway refuses it on POST /upscale).
        if video or await asyncio.to_thread(uses_job, task.source, jobs_above_mpx):
            return await upscale_task_by_job(client, url, task, mine, open_jobs, retries=retries,
                                             retry_cap_s=retry_cap_s, poll_s=poll_s,
                                             progress=progress, video=video)
        return await upscale_task(client, url, task, mine, retries=retries,
                                  retry_cap_s=retry_cap_s)

    async def worker(client: httpx.AsyncClient) -> None:
        for task in queue:  # shared iterator: each task goes to one worker
            try:
                summary.done.append(await one(client, task))
            except UpscaleFailed as exc:
                summary.failed.append(Failure(task.source, str(exc)))
            except (httpx.HTTPError, OSError) as exc:  # no answer, or a file not read/written
                summary.failed.append(Failure(task.source, f"{type(exc).__name__}: {exc}"))
            bar.update(1)
            bar.set_postfix(done=len(summary.done), skipped=len(summary.skipped),
                            failed=len(summary.failed), refresh=False)

    limits = httpx.Limits(max_connections=in_flight + 1, max_keepalive_connections=in_flight + 1)
    try:
        async with httpx.AsyncClient(timeout=timeout_s, limits=limits, headers=params.headers()) as client:
            try:
                await asyncio.gather(*(worker(client) for _ in range(max(1, min(in_flight, len(todo))))))
            except asyncio.CancelledError:  # asyncio.run cancels the run at Ctrl-C
                await open_jobs.cancel_all(client, url)
                raise
    finally:
        bar.close()
    summary.done.sort(key=lambda d: d.source)  # finished in any order; reported in input order
    summary.failed.sort(key=lambda f: f.source)
    return summary


def upscale_paths(url: str, paths: Sequence[Path], out: Path, params: UpscaleParams | None = None, *,
                  recursive: bool = False, in_flight: int = 4, overwrite: bool = False,
                  retries: int = 5, retry_cap_s: float = 30.0, timeout_s: float = 600.0,
                  progress: bool | None = None, jobs_above_mpx: float | None = None,
                  poll_s: float = POLL_S) -> UpscaleSummary:
    """Plan the files and folders in ``paths`` and upscale them all (see :func:`plan_tasks` and
    :func:`upscale_tasks`). Ctrl-C cancels the jobs it started, then raises :class:`Interrupted`."""
    params = params or UpscaleParams()
    tasks, clashes = plan_tasks(paths, out, recursive=recursive, fmt=params.format)
    if tasks and tasks[0].exact and params.format is None:  # -o's suffix picks the format, as before
        params = replace(params, format=_format_of_path(out))
    open_jobs = OpenJobs()
    try:
        # asyncio.run turns the first Ctrl-C into a cancellation of the run (a second one stops at
        # once); without its SIGINT handler (one installed by the caller), KeyboardInterrupt comes
        # out of the loop and asyncio.run's clean-up cancels the run: the jobs are cancelled either way.
        summary = asyncio.run(upscale_tasks(url, tasks, params, in_flight=in_flight,
                                            overwrite=overwrite, retries=retries,
                                            retry_cap_s=retry_cap_s, timeout_s=timeout_s,
                                            progress=progress, jobs_above_mpx=jobs_above_mpx,
                                            poll_s=poll_s, open_jobs=open_jobs))
    except KeyboardInterrupt as exc:
        raise Interrupted(open_jobs.cancelled, open_jobs.not_cancelled) from exc
    summary.failed[:0] = clashes
    return summary
