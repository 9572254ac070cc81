"""A bounded load run against a gateway on this machine (loopback only, fixed request count).

    python loadtest/run.py --url http://127.0.0.1:8080 --requests 40 --concurrency 8 --size 128

Prints status counts, throughput and latency percentiles. It refuses non-loopback URLs: it is a
benchmark for your own gateway, not a tool to point at other people's services.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import ipaddress
import statistics
import time
from collections import Counter
from urllib.parse import urlparse

import httpx
import numpy as np
from PIL import Image

from imdsr.contract import DEFAULT_VARIANT


def _loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _png(size: int) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


async def run(url: str, requests: int, concurrency: int, image: bytes, model: str
              ) -> tuple[Counter, list[float], float]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    statuses: Counter = Counter()

    async def one(client: httpx.AsyncClient) -> None:
        async with gate:
            start = time.perf_counter()
            r = await client.post(f"{url}/upscale", content=image, params={"model": model},
                                  headers={"Content-Type": "image/png"})
            statuses[r.status_code] += 1
            if r.status_code == 200:
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=600) as client:
        await asyncio.gather(*(one(client) for _ in range(requests)))
    return statuses, latencies, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--size", type=int, default=128, help="side of the synthetic PNG")
    parser.add_argument("--model", default=DEFAULT_VARIANT)
    args = parser.parse_args()
    if not _loopback(args.url):
        raise SystemExit("loopback URLs only (127.0.0.1, ::1, localhost)")
    if not 1 <= args.requests <= 10_000 or not 1 <= args.concurrency <= 256:
        raise SystemExit("--requests 1..10000, --concurrency 1..256")
    statuses, latencies, wall = asyncio.run(
        run(args.url.rstrip("/"), args.requests, args.concurrency, _png(args.size), args.model))
    print(f"{args.requests} requests, concurrency {args.concurrency}, {args.size}x{args.size} "
          f"PNG, model {args.model}: statuses {dict(statuses)}")
    if latencies:
        q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
        print(f"throughput {len(latencies) / wall:.2f} img/s; latency p50 "
              f"{statistics.median(latencies):.2f} s, p95 {q[18]:.2f} s, max {max(latencies):.2f} s")


if __name__ == "__main__":
    main()
