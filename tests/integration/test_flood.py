"""A flood of large requests: admitted ones all finish (200), the rest are refused at once (429)."""

from __future__ import annotations

import asyncio
import io
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from service.settings import Settings
from tests.support.gateway import Gateway


def _png(h: int, w: int) -> bytes:
    y, x = np.mgrid[0:h, 0:w]
    base = 128 + 90 * np.sin(x / 7.0) * np.cos(y / 9.0)
    image = np.clip(base[..., None] + np.random.default_rng(0).normal(0, 8, (h, w, 3)), 0, 255)
    buf = io.BytesIO()
    Image.fromarray(image.astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.timeout(240)
def test_flood_gets_only_200s_and_fast_429s(triton_server) -> None:  # noqa: ANN001
    # A short per-tile deadline makes the flood far more work than the deadline allows.
    settings = Settings(triton_url=triton_server.grpc_url, triton_timeout_s=8.0,
                        max_concurrent_requests=64, default_model="c4")
    data = _png(512, 512)
    with Gateway(settings) as gw:
        lone = httpx.post(f"{gw.url}/upscale", content=data, headers={"Content-Type": "image/png"},
                          timeout=60)  # alone: the gateway learns this model's speed here
        assert lone.status_code == 200, lone.text

        async def one(client: httpx.AsyncClient) -> tuple[int, float, httpx.Headers]:
            start = time.perf_counter()
            r = await client.post(f"{gw.url}/upscale", content=data,
                                  headers={"Content-Type": "image/png"})
            return r.status_code, time.perf_counter() - start, r.headers

        async def flood() -> list[tuple[int, float, httpx.Headers]]:
            async with httpx.AsyncClient(timeout=120) as client:
                return await asyncio.gather(*(one(client) for _ in range(24)))

        results = asyncio.run(flood())
    statuses = [s for s, _, _ in results]
    assert set(statuses) <= {200, 429}, statuses  # never a 5xx: nothing admitted is lost
    assert statuses.count(200) >= 2 and statuses.count(429) >= 2, statuses
    for status, seconds, headers in results:
        if status == 429:
            assert int(headers["Retry-After"]) >= 1
            assert seconds < 3.0  # refused at admission, not after queueing
