"""``imdsr bench memory``: the gateway's peak memory per request size, and under a burst of the
largest requests, measured on the real gateway process (its kernel high-water mark, VmHWM).

The gateway runs as deployed (``imdsr gateway``, its own process) in front of a real Triton; before
each measurement its high-water mark is reset (``/proc/PID/clear_refs``), so each figure is the
peak of that request (or burst) above the idle process.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imdsr.contract import SCALE


@dataclass(frozen=True)
class MemoryRow:
    what: str
    input_size: str
    output_bytes: int        # raw output planes (H x W x channels x bytes per sample), all requests
    peak_bytes: int          # gateway high-water mark above its idle RSS
    statuses: tuple[int, ...]

    @property
    def ratio(self) -> float:
        return self.peak_bytes / self.output_bytes if self.output_bytes else 0.0


def _status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def reset_peak(pid: int) -> int:
    """Reset the process's high-water mark to its current RSS; return that RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _status(pid)["VmRSS"]


def peak(pid: int) -> int:
    return _status(pid)["VmHWM"]


def photo_jpeg(width: int, height: int) -> bytes:
    """A photo (scikit-image's, else a smooth synthetic image) resized to ``width`` x ``height``."""
    from PIL import Image

    try:
        from skimage import data

        source = Image.fromarray(data.astronaut())
    except ImportError:
        y, x = np.mgrid[0:512, 0:512]
        source = Image.fromarray(np.clip(128 + 100 * np.sin(x / 17.0)[..., None]
                                         * np.cos(y / 23.0)[..., None] * np.ones(3), 0, 255)
                                 .astype(np.uint8))
    buf = io.BytesIO()
    source.resize((width, height), Image.Resampling.LANCZOS).save(buf, "JPEG", quality=92)
    return buf.getvalue()


async def _post_all(url: str, body: bytes, n: int, params: dict[str, str]) -> tuple[int, ...]:
    import httpx

    async with httpx.AsyncClient(timeout=900) as client:
        responses = await asyncio.gather(*(client.post(
            f"{url}/upscale", content=body, params=params, headers={"Content-Type": "image/jpeg"})
            for _ in range(n)))
    return tuple(r.status_code for r in responses)


def measure(pid: int, url: str, body: bytes, size: tuple[int, int], n: int, what: str,
            params: dict[str, str]) -> MemoryRow:
    """Peak gateway memory while ``n`` copies of ``body`` are upscaled at once."""
    idle = reset_peak(pid)
    statuses = asyncio.run(_post_all(url, body, n, params))
    time.sleep(0.2)
    w, h = size
    done = sum(s == 200 for s in statuses)
    out_bytes = done * w * h * SCALE * SCALE * 3
    return MemoryRow(what, f"{w}x{h}", out_bytes, peak(pid) - idle, statuses)


@contextmanager
def stack(repo: Path, variant: str, work: Path, env: dict[str, str]) -> Iterator[tuple[int, str]]:
    """Triton on ``repo`` and ``imdsr gateway`` in its own process: yields (gateway pid, url)."""
    from bench.service import gateway, triton

    with triton(repo, work / "triton.log") as server, \
            gateway(server.grpc_url, variant, work / "gateway.log", env) as (pid, url):
        yield pid, url


def format_rows(rows: list[MemoryRow]) -> str:
    lines = ["| what | input | requests 200/429 | output bytes (200s) | gateway peak above idle | "
             "peak / output |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ok, shed = sum(s == 200 for s in r.statuses), sum(s == 429 for s in r.statuses)
        lines.append(f"| {r.what} | {r.input_size} | {ok}/{shed} | {r.output_bytes / 2**20:,.0f} MiB | "
                     f"{r.peak_bytes / 2**20:,.0f} MiB | {r.ratio:.2f} |")
    return "\n".join(lines)
