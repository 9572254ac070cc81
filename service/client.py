"""HTTP client of the gateway: ``imdsr upscale URL PATH... -o OUTDIR``.

Files and folders become a plan of :class:`Job` (``plan_jobs``: folder walking, output names,
name clashes), then ``upscale_jobs`` sends them to ``POST /upscale`` a few at a time, skipping
outputs already written, retrying 429/503 after their ``Retry-After`` and collecting an
:class:`UpscaleSummary`. A plain HTTP client: nothing of the gateway is imported; output-format
names and suffixes are the codec's (``imdsr.imaging.codec``), so they cannot disagree with it.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import mimetypes
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import httpx
from tqdm import tqdm

from imdsr.imaging.codec import OutputFormat, default_format_for_path, format_for_path

# What counts as an image in a folder (by suffix, lower-cased); a file named on the command line is
# sent whatever its suffix, and the gateway decides.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif",
                            ".avif", ".heic", ".heif"})
OUTPUT_TAG = "_x4"
RETRY_STATUSES = frozenset({429, 503})

# Upload media types Python's mimetypes may not know.
_UPLOAD_TYPES = {".avif": "image/avif", ".heic": "image/heic", ".heif": "image/heif",
                 ".webp": "image/webp", ".bmp": "image/bmp"}


class UpscaleFailed(RuntimeError):  # noqa: N818 - reads as what happened
    def __init__(self, status: int, error: str, detail: object) -> None:
        text = detail if isinstance(detail, str) else json.dumps(detail, default=str)
        super().__init__(f"HTTP {status} {error}: {text}")
        self.status, self.error, self.detail = status, error, detail


@dataclass(frozen=True)
class UpscaleParams:
    """The query parameters of ``POST /upscale``, one per field of the gateway's
    ``UpscaleOptions`` and by the same name (tests/unit/test_upscale_vocabulary.py holds the two
    together); None is not sent: the gateway's default. Enum values go as their strings."""

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
    tile: int | None = None
    api_key: str | None = None  # sent as X-API-Key, never in the URL

    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key} if self.api_key else {}

    def query(self) -> dict[str, str | int | float]:
        named = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_key"}
        return {k: v for k, v in named.items() if v is not None}


@dataclass(frozen=True)
class Job:
    """One input and where its result goes. ``exact``: written at ``output`` whatever the gateway
    returns; otherwise the extension follows the response's Content-Type."""

    source: Path
    output: Path
    exact: bool = False


@dataclass(frozen=True)
class Upscaled:
    source: Path
    path: Path
    content_type: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Failure:
    source: Path
    reason: str


@dataclass
class UpscaleSummary:
    done: list[Upscaled] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def line(self) -> str:
        return f"{len(self.done)} done, {len(self.skipped)} skipped, {len(self.failed)} failed"


# --- planning -----------------------------------------------------------------------------------


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def find_images(root: Path, *, recursive: bool, exclude: Path | None = None) -> list[Path]:
    """The images in ``root`` (and below it with ``recursive``), sorted; hidden files and folders
    are left out, and so are earlier results (``*_x4.*``) inside ``exclude``, the output folder."""
    outputs = exclude.resolve() if exclude is not None else None
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        in_outputs = outputs is not None and (here.resolve() == outputs
                                              or outputs in here.resolve().parents)
        found += [here / f for f in files if not f.startswith(".") and is_image(here / f)
                  and not (in_outputs and Path(f).stem.endswith(OUTPUT_TAG))]
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def output_suffix(source: Path, fmt: str | None) -> str:
    """The extension of ``source``'s result: ``fmt``'s, else what the gateway answers by default
    (the codec's rule, from the suffix: lossy stays lossy, HEIC becomes JPEG, everything else
    PNG). A wrong guess is corrected from the answer's Content-Type (``upscale_job``)."""
    chosen = OutputFormat.named(fmt) if fmt else None
    return (chosen or default_format_for_path(source)).suffix


def output_name(source: Path, fmt: str | None) -> str:
    """``photo.jpg`` -> ``photo_x4.jpg`` (``photo_x4.webp`` with ``fmt="webp"``)."""
    return f"{source.stem}{OUTPUT_TAG}{output_suffix(source, fmt)}"


def _format_of_path(path: Path) -> str | None:
    named = format_for_path(path)
    return named.value if named else None


def suffix_for_content_type(content_type: str) -> str | None:
    media = content_type.split(";")[0].strip().lower()
    fmt = OutputFormat.named(media) if media.startswith("image/") else None
    if fmt is not None:
        return fmt.suffix
    return mimetypes.guess_extension(media) if media else None


def is_output_file(path: Path) -> bool:
    """``-o`` names one file rather than a folder: it has an image suffix and is not a folder."""
    return is_image(path) and not path.is_dir()


def plan_jobs(paths: Sequence[Path], out: Path, *, recursive: bool = False,
              fmt: str | None = None) -> tuple[list[Job], list[Failure]]:
    """Jobs for files and folders; the results of a folder's images keep their folder structure
    under ``out``. A single file with ``out`` naming a file (image suffix) is written exactly there.
    Two inputs that would write the same output: the later ones keep their own suffix in the name
    (``photo_png_x4.webp``), and fail if that clashes too."""
    if len(paths) == 1 and paths[0].is_file() and is_output_file(out):
        return [Job(paths[0], out, exact=True)], []
    jobs: list[Job] = []
    for path in paths:
        if path.is_dir():
            jobs += [Job(f, out / f.relative_to(path).parent / output_name(f, fmt))
                     for f in find_images(path, recursive=recursive, exclude=out)]
        else:
            jobs.append(Job(path, out / output_name(path, fmt)))
    return _resolve_clashes(jobs)


def _resolve_clashes(jobs: Iterable[Job]) -> tuple[list[Job], list[Failure]]:
    taken: dict[Path, Path] = {}
    kept: list[Job] = []
    failed: list[Failure] = []
    for job in jobs:
        output = job.output
        if output in taken:
            tag = job.source.suffix.lstrip(".").lower() or "noext"
            output = output.with_name(f"{job.source.stem}_{tag}{OUTPUT_TAG}{output.suffix}")
        if output in taken:
            failed.append(Failure(job.source, f"same output {output} as {taken[output]}"))
            continue
        taken[output] = job.source
        kept.append(Job(job.source, output, job.exact))
    return kept, failed


def already_done(output: Path) -> bool:
    """An output that exists and is not empty (written whole: outputs are renamed into place)."""
    try:
        return output.is_file() and output.stat().st_size > 0
    except OSError:
        return False


# --- one request --------------------------------------------------------------------------------


def upload_type(source: Path) -> str:
    suffix = source.suffix.lower()
    return _UPLOAD_TYPES.get(suffix) or mimetypes.guess_type(source.name)[0] or "application/octet-stream"


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


def raise_for_error(response: httpx.Response) -> None:
    """A non-200 answer as :class:`UpscaleFailed`, with the gateway's ``{"error", "detail"}``."""
    if response.status_code == 200:
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


async def post_with_retries(client: httpx.AsyncClient, url: str, body: bytes, content_type: str,
                            params: UpscaleParams, *, retries: int, retry_cap_s: float) -> httpx.Response:
    """POST once, and again after each 429/503 (at most ``retries`` more times)."""
    for attempt in range(retries + 1):
        response = await client.post(f"{url.rstrip('/')}/upscale", params=params.query(),
                                     content=body, headers={"Content-Type": content_type})
        if response.status_code not in RETRY_STATUSES or attempt == retries:
            break
        await asyncio.sleep(retry_delay(response, attempt, retry_cap_s))
    raise_for_error(response)
    return response


async def upscale_job(client: httpx.AsyncClient, url: str, job: Job, params: UpscaleParams, *,
                      retries: int = 5, retry_cap_s: float = 30.0) -> Upscaled:
    body = await asyncio.to_thread(job.source.read_bytes)
    response = await post_with_retries(client, url, body, upload_type(job.source), params,
                                       retries=retries, retry_cap_s=retry_cap_s)
    content_type = response.headers.get("content-type", "")
    output = job.output
    suffix = suffix_for_content_type(content_type)
    if not job.exact and params.format is None and suffix and suffix != output.suffix:
        output = output.with_suffix(suffix)  # the gateway chose another family than predicted
    await asyncio.to_thread(write_atomically, output, response.content)
    return Upscaled(job.source, output, content_type, dict(response.headers))


# --- many requests ------------------------------------------------------------------------------


async def upscale_jobs(url: str, jobs: Sequence[Job], params: UpscaleParams, *, in_flight: int = 4,
                       overwrite: bool = False, retries: int = 5, retry_cap_s: float = 30.0,
                       timeout_s: float = 600.0, progress: bool | None = None) -> UpscaleSummary:
    """Upscale every job, ``in_flight`` requests at a time. Outputs already there (not empty)
    are skipped unless ``overwrite``. ``progress``: a tqdm bar on stderr (None: if a terminal)."""
    summary = UpscaleSummary()
    todo: list[Job] = []
    for job in jobs:
        (todo if overwrite or not already_done(job.output) else summary.skipped).append(job)
    queue: Iterator[Job] = iter(todo)
    bar = tqdm(total=len(jobs), initial=len(summary.skipped), unit="img", desc="upscale",
               disable=None if progress is None else not progress, dynamic_ncols=True)

    async def worker(client: httpx.AsyncClient) -> None:
        for job in queue:  # shared iterator: each job goes to one worker
            try:
                summary.done.append(await upscale_job(client, url, job, params, retries=retries,
                                                      retry_cap_s=retry_cap_s))
            except UpscaleFailed as exc:
                summary.failed.append(Failure(job.source, str(exc)))
            except (httpx.HTTPError, OSError) as exc:  # no answer, or a file not read/written
                summary.failed.append(Failure(job.source, f"{type(exc).__name__}: {exc}"))
            bar.update(1)
            bar.set_postfix(done=len(summary.done), skipped=len(summary.skipped),
                            failed=len(summary.failed), refresh=False)

    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    try:
        async with httpx.AsyncClient(timeout=timeout_s, limits=limits, headers=params.headers()) as client:
            await asyncio.gather(*(worker(client) for _ in range(max(1, min(in_flight, len(todo))))))
    finally:
        bar.close()
    summary.done.sort(key=lambda d: d.source)  # finished in any order; reported in input order
    summary.failed.sort(key=lambda f: f.source)
    return summary


def upscale_paths(url: str, paths: Sequence[Path], out: Path, params: UpscaleParams | None = None, *,
                  recursive: bool = False, in_flight: int = 4, overwrite: bool = False,
                  retries: int = 5, retry_cap_s: float = 30.0, timeout_s: float = 600.0,
                  progress: bool | None = None) -> UpscaleSummary:
    """Plan the files and folders in ``paths`` and upscale them all (see :func:`plan_jobs`)."""
    params = params or UpscaleParams()
    jobs, clashes = plan_jobs(paths, out, recursive=recursive, fmt=params.format)
    if jobs and jobs[0].exact and params.format is None:  # -o's suffix picks the format, as before
        params = replace(params, format=_format_of_path(out))
    summary = asyncio.run(upscale_jobs(url, jobs, params, in_flight=in_flight, overwrite=overwrite,
                                       retries=retries, retry_cap_s=retry_cap_s, timeout_s=timeout_s,
                                       progress=progress))
    summary.failed[:0] = clashes
    return summary
