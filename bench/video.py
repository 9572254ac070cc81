"""Clips through the whole service (issue 28): ``imdsr bench video`` (frames per second per model,
through ``POST /jobs``, Triton and the encoder) and the video case of ``imdsr bench memory`` (the
gateway's high-water mark for a short clip and one several times longer, side by side: streamed,
it should not grow with the length).

The clips are made here (``imdsr.video.synthetic``: moving detail and a sine tone), so every
figure can be reproduced without third-party footage. Each model is warmed up with a short clip
first: the first inference of a model on CPU compiles and allocates.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.memory import MemoryRow, peak, reset_peak
from imdsr.contract import SCALE
from imdsr.video.output import ENCODERS, VideoCodec
from imdsr.video.synthetic import ClipSpec, write_clip
from service import client
from service.client import UpscaleParams

POLL_S = 0.2
JOB_TIMEOUT_S = 3600.0
# Gateway settings for the benchmarks: a clip's whole work is admitted at once, and the default
# request deadline (300 s) would refuse the longer clips of the slower models on a 2-core CPU.
BENCH_ENV = {"IMDSR_REQUEST_TIMEOUT_S": "36000", "IMDSR_MAX_VIDEO_SECONDS": "600",
             "IMDSR_MAX_VIDEO_FRAMES": "36000"}


def clip_bytes(spec: ClipSpec) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return write_clip(Path(folder) / "clip.mp4", spec).read_bytes()


@dataclass(frozen=True)
class ClipRun:
    status: int                # of POST /jobs (202), else its error status
    state: str                 # the job's last status
    frames: int
    seconds: float             # submission to done, as a client sees it
    result_bytes: int

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def run_clip(url: str, body: bytes, params: UpscaleParams) -> ClipRun:
    """Submit ``body`` as a job, poll it until it ends, fetch its result (the project's own client,
    service/client.py, as `imdsr upscale` does); how long it took."""
    return asyncio.run(_run_clip(url, body, params))


async def _run_clip(url: str, body: bytes, params: UpscaleParams) -> ClipRun:
    async with httpx.AsyncClient(timeout=600) as http:
        start = time.perf_counter()
        try:
            job = await client.submit(http, url, body, "video/mp4", params)
        except client.UpscaleFailed as exc:
            return ClipRun(exc.status, f"{exc.error}: {exc.detail}"[:200], 0, 0.0, 0)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(JOB_TIMEOUT_S):
                async for seen in client.wait(http, url, job, poll_s=POLL_S):
                    job = seen  # the last one seen: finished, or where the deadline left it
        seconds = time.perf_counter() - start
        size = 0
        if job.status is client.JobState.DONE:
            size = len((await client.result(http, url, job)).content)
        return ClipRun(202, job.status.value, job.progress.frames_done, seconds, size)


@dataclass(frozen=True)
class FpsRow:
    model: str
    size: str                  # "320x180 -> 1280x720"
    run: ClipRun


def measure_fps(url: str, models: list[str], spec: ClipSpec, warmup: ClipSpec,
                progress: Callable[[str], None] = print) -> list[FpsRow]:
    """Each model's frames per second on the clip ``spec``, after a warm-up on ``warmup``."""
    body, warm = clip_bytes(spec), clip_bytes(warmup)
    size = f"{spec.width}x{spec.height} -> {spec.width * SCALE}x{spec.height * SCALE}"
    rows = []
    for model in models:
        run_clip(url, warm, UpscaleParams(model=model))
        rows.append(FpsRow(model, size, run_clip(url, body, UpscaleParams(model=model))))
        progress(f"{model}: {rows[-1].run.fps:.2f} frames/s")
    return rows


def format_fps(rows: list[FpsRow], spec: ClipSpec, crf: int | None = None) -> str:
    """The table; ``crf``: what the gateway was told (None: its H.264 default)."""
    crf = ENCODERS[VideoCodec.H264].default_crf if crf is None else crf
    lines = [f"{spec.seconds:g} s at {spec.fps} fps ({round(spec.seconds * spec.fps)} frames), "
             f"H.264 CRF {crf} out, through POST /jobs (submission to done)", "",
             "| model | frames | size | seconds | frames/s | result |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        state = "" if r.run.state == "done" else f" ({r.run.state})"
        lines.append(f"| {r.model} | {r.run.frames}{state} | {r.size} | {r.run.seconds:.1f} | "
                     f"{r.run.fps:.2f} | {r.run.result_bytes / 2**20:.1f} MiB |")
    return "\n".join(lines)


def measure_clip_memory(pid: int, url: str, spec: ClipSpec, model: str, what: str) -> MemoryRow:
    """The gateway's peak above idle while one clip of ``spec`` runs as a job; its output bytes
    are every output frame's raw RGB, which a clip never holds at once."""
    body = clip_bytes(spec)
    idle = reset_peak(pid)
    run = run_clip(url, body, UpscaleParams(model=model))
    time.sleep(0.2)
    out = run.frames * spec.width * spec.height * SCALE * SCALE * 3
    size = f"{spec.width}x{spec.height}, {spec.seconds:g} s, {run.frames} frames"
    status = 200 if run.state == "done" else run.status
    return MemoryRow(what, size, out, peak(pid) - idle, (status,))
