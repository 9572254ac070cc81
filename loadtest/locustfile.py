"""Locust load for ``POST /upscale``: ``locust -f loadtest/locustfile.py --host http://127.0.0.1:8080``.

The image and model come from env vars (IMDSR_LOAD_IMAGE, IMDSR_LOAD_MODEL); by default a
synthetic 128x128 PNG. 429s are counted as their own outcome, not as failures: they are the
gateway's admission control working.
"""

from __future__ import annotations

import io
import os

import numpy as np
from locust import HttpUser, between, task
from PIL import Image

from imdsr.contract import DEFAULT_VARIANT


def _image() -> bytes:
    path = os.environ.get("IMDSR_LOAD_IMAGE")
    if path:
        with open(path, "rb") as f:
            return f.read()
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


IMAGE = _image()
MODEL = os.environ.get("IMDSR_LOAD_MODEL", DEFAULT_VARIANT)


class UpscaleUser(HttpUser):
    wait_time = between(0.0, 0.5)

    @task
    def upscale(self) -> None:
        with self.client.post("/upscale", data=IMAGE, params={"model": MODEL},
                              headers={"Content-Type": "image/png"}, name="/upscale",
                              catch_response=True) as response:
            if response.status_code == 429:
                response.success()  # shed load, by design
            elif response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
