"""What the job tests share: pictures, submitting, and waiting on a job through the HTTP API."""

from __future__ import annotations

import io
import re
import time

import httpx
import numpy as np
from PIL import Image


def photo(width: int, height: int, mode: str = "RGB", seed: int = 0) -> bytes:
    """A smooth picture with grain, as PNG (so that PNG does not shrink it to nothing)."""
    y, x = np.mgrid[0:height, 0:width]
    base = 128 + 90 * np.sin(x / 11.0 + seed) * np.cos(y / 13.0)
    noise = np.random.default_rng(seed).normal(0, 6, (height, width, 3))
    image = Image.fromarray(np.clip(base[..., None] + noise, 0, 255).astype(np.uint8)).convert(mode)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def submit(url: str, body: bytes, query: str = "", **kwargs: object) -> httpx.Response:
    return httpx.post(f"{url}/jobs{query}", content=body, headers={"Content-Type": "image/png"},
                      timeout=60, **kwargs)


FINAL = {"done", "failed", "cancelled"}


def wait_for(url: str, job_id: str, statuses: set[str], timeout_s: float = 120,
             until: object = None) -> dict:
    """Poll ``GET /jobs/{id}`` until its status is one of ``statuses`` (and ``until(job)``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        r = httpx.get(f"{url}/jobs/{job_id}", timeout=10)
        assert r.status_code == 200, r.text
        job = r.json()
        if job["status"] in statuses and (until is None or until(job)):
            return job
        # A job that ended otherwise will never get there: say so now, not at the deadline.
        assert job["status"] not in FINAL - statuses, f"job {job_id} ended {job} while waiting"
        assert time.monotonic() < deadline, f"job {job_id} still {job} after {timeout_s} s"
        time.sleep(0.2)


def metric(url: str, name: str, labels: str = "") -> float:
    """One sample of the gateway's /metrics (0 where it has none yet)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0
