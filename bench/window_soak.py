"""Triton's memory under images of random sizes, with the window buckets and without them.

    python -m bench.window_soak --minutes 10                      # buckets on (the default)
    python -m bench.window_soak --minutes 10 --no-buckets         # as before issue 26
    python -m bench.window_soak --variant c16nla --config other.toml  # other [cpu] knobs

Each new window shape costs the serving runtime compiled kernels and buffers it keeps, so a
server fed every image size there is grows for as long as new sizes come. The soak runs the
stack as deployed (Triton on a generated cpu repository, ``imdsr gateway`` as its own process),
``clients`` closed-loop clients each posting a JPEG of a random size (uniform over 16..``max_side``
px a side, so nearly every request brings a new image size), and prints a line a minute:
requests, failures, Triton's server RSS and its Python-backend stubs' RSS.

``--no-buckets`` serves a repository whose models publish ``imdsr_bucket = 0``: the gateway then
sends windows of the image's own sizes, as it did before buckets (the comparison this exists for).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from imdsr.contract import BUCKET_PARAM


@dataclass
class Minute:
    minute: int
    requests: int = 0
    failures: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)
    server_rss: int = 0
    stubs_rss: int = 0


def triton_rss(pid: int) -> tuple[int, int]:
    """(tritonserver's RSS, its children's: one Python-backend stub per model instance)."""
    import psutil

    server = psutil.Process(pid)
    return server.memory_info().rss, sum(c.memory_info().rss for c in server.children(recursive=True))


def without_buckets(repo: Path) -> None:
    """Make every model of ``repo`` publish no bucket (the gateway pads to nothing)."""
    for config in repo.glob("*/config.pbtxt"):
        text = config.read_text()
        pattern = rf'(key: "{BUCKET_PARAM}"\n  value {{\n    string_value: )"\d+"'
        changed = re.sub(pattern, r'\1"0"', text)
        if changed == text:
            raise ValueError(f"{config}: no {BUCKET_PARAM} parameter to turn off")
        config.write_text(changed)


async def soak(url: str, triton_pid: int, variant: str, minutes: float, clients: int,
               max_side: int, seed: int = 0, report=print) -> list[Minute]:  # noqa: ANN001
    """Closed-loop clients for ``minutes``; one ``Minute`` per minute (and ``report`` of it)."""
    import httpx

    from bench.memory import photo_jpeg

    rng = random.Random(seed)
    rows: list[Minute] = [Minute(1)]
    start = time.monotonic()
    end = start + minutes * 60

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() < end:
            w, h = rng.randint(16, max_side), rng.randint(16, max_side)
            body = await asyncio.to_thread(photo_jpeg, w, h)
            r = await http.post(f"{url}/upscale", content=body, params={"model": variant},
                                headers={"Content-Type": "image/jpeg"})
            row = rows[-1]
            row.requests += 1
            row.failures += r.status_code != 200
            row.sizes.add((w, h))

    async def clock() -> None:
        while time.monotonic() < end:
            await asyncio.sleep(min(60.0, max(0.0, end - time.monotonic())))
            row = rows[-1]
            row.server_rss, row.stubs_rss = triton_rss(triton_pid)
            report(line(row))
            if time.monotonic() < end:
                rows.append(Minute(row.minute + 1))

    async with httpx.AsyncClient(timeout=900) as http:
        await asyncio.gather(clock(), *(client(http) for _ in range(clients)))
    return rows


HEADER = ("| minute | requests | failures | tritonserver RSS MiB | stubs RSS MiB | total MiB |\n"
          "| --- | --- | --- | --- | --- | --- |")


def line(row: Minute) -> str:
    return (f"| {row.minute} | {row.requests} | {row.failures} | {row.server_rss >> 20} | "
            f"{row.stubs_rss >> 20} | {(row.server_rss + row.stubs_rss) >> 20} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="c4", help="model (default c4: quick, many sizes a minute)")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--max-side", type=int, default=700, help="largest image side, LR px")
    parser.add_argument("--no-buckets", action="store_true", help="serve without window buckets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", type=Path, default=None,
                        help="serving TOML (default: export/serving.toml), e.g. other static_shapes")
    args = parser.parse_args(argv)

    from bench.service import gateway, triton
    from export.repo import ModelSource, write_repository
    from export.serving import load_serving
    from training.weights.store import shipped_weights

    work = Path(tempfile.mkdtemp(prefix="imdsr-window-soak-"))
    try:
        repo = work / "repo"
        write_repository(repo, "cpu", [ModelSource(args.variant, shipped_weights(args.variant))],
                         load_serving(args.config))
        if args.no_buckets:
            without_buckets(repo)
        with triton(repo, work / "triton.log") as server, \
                gateway(server.grpc_url, args.variant, work / "gateway.log") as (_, url):
            server_rss, stubs_rss = triton_rss(server.pid)
            print(f"{args.variant}, buckets {'off' if args.no_buckets else 'on'}, {args.clients} "
                  f"clients, sides 16..{args.max_side}; idle: tritonserver {server_rss >> 20} MiB, "
                  f"stubs {stubs_rss >> 20} MiB\n{HEADER}", flush=True)
            rows = asyncio.run(soak(url, server.pid, args.variant, args.minutes, args.clients,
                                    args.max_side, args.seed, lambda s: print(s, flush=True)))
        sizes = set().union(*(r.sizes for r in rows))
        print(f"requests {sum(r.requests for r in rows)}, failures {sum(r.failures for r in rows)}, "
              f"{len(sizes)} image sizes")
        return 1 if any(r.failures for r in rows) else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
