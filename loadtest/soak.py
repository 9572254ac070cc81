"""A soak: mixed load for a long while, failures, memory at start and end, p99 per minute.

    python loadtest/soak.py                      # 10 minutes, 4 clients, the committed repository
    python loadtest/soak.py --minutes 2 --users 2 --results /tmp/soak

Starts Triton on the committed model_repository/ and the gateway (its own process) on free loopback
ports, runs closed-loop clients over the load-test scenarios (loadtest/scenarios.py, weighted,
the large c16nla ones left out: one of them takes longer than a minute's report on two cores),
and prints one line a minute: requests, shed (429/503), failures, p50/p99, gateway RSS and
Triton RSS (server and its Python-backend stubs). Exits non-zero on any failure. Writes
soak.md and soak.json under <results>/<UTC timestamp>/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
import scenarios  # loadtest/scenarios.py: this script's folder is on sys.path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Minute:
    minute: int
    requests: int = 0
    shed: int = 0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)
    gateway_rss: int = 0
    triton_rss: int = 0

    def line(self) -> str:
        lat = sorted(self.latencies) or [0.0]
        p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
        return (f"| {self.minute} | {self.requests} | {self.shed} | {self.failures} | "
                f"{statistics.median(lat) * 1e3:.0f} | {p99 * 1e3:.0f} | {self.gateway_rss >> 20} | "
                f"{self.triton_rss >> 20} |")


def rss(pid: int, children: bool = False) -> int:
    proc = psutil.Process(pid)
    procs = [proc, *proc.children(recursive=True)] if children else [proc]
    return sum(p.memory_info().rss for p in procs)


async def soak(url: str, gateway_pid: int, triton_pid: int, minutes: int, users: int,
               seed: int = 0) -> list[Minute]:
    chosen = [s for s in scenarios.SCENARIOS if not (s.size.name == "large" and s.model == "c16nla")]
    bodies = {s.name: scenarios.encode(s) for s in chosen}
    rng = random.Random(seed)
    start = time.monotonic()
    end = start + 60 * minutes
    report = [Minute(m + 1) for m in range(minutes)]

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() < end:
            s = rng.choices(chosen, weights=[c.weight for c in chosen])[0]
            t0 = time.monotonic()
            try:
                r = await http.post(f"{url}/upscale", content=bodies[s.name], params={"model": s.model},
                                    headers={"Content-Type": s.content_type})
                status, retry = r.status_code, r.headers.get("retry-after")
                ok = status == 200 and r.headers.get("x-output-size") == s.output_size
            except httpx.HTTPError:
                status, retry, ok = 0, None, False
            minute = report[min(minutes - 1, int((time.monotonic() - start) // 60))]
            minute.requests += 1
            if status in scenarios.SHED_STATUSES and retry:
                minute.shed += 1
                await asyncio.sleep(min(float(retry), 5.0))
            elif not ok:
                minute.failures += 1
            else:
                minute.latencies.append(time.monotonic() - t0)

    async def sampler() -> None:
        for minute in report:
            await asyncio.sleep(max(0.0, start + 60 * minute.minute - time.monotonic()))
            minute.gateway_rss, minute.triton_rss = rss(gateway_pid), rss(triton_pid, children=True)
            print(minute.line(), flush=True)

    async with httpx.AsyncClient(timeout=600) as http:
        await asyncio.gather(sampler(), *(client(http) for _ in range(users)))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--results", type=Path, default=ROOT / "loadtest" / "results")
    args = parser.parse_args()
    if not 1 <= args.minutes <= 240 or not 1 <= args.users <= 64:
        parser.error("--minutes 1..240, --users 1..64")
    out = args.results / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    from bench.service import gateway, triton

    header = ["| minute | requests | shed | failures | p50 ms | p99 ms | gateway RSS MiB | "
              "Triton RSS MiB |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    with triton(ROOT / "model_repository", out / "triton.log") as server, \
            gateway(server.grpc_url, "c16nla", out / "gateway.log") as (gateway_pid, url):
        start_rss = rss(gateway_pid), rss(server.process.pid, children=True)
        print(f"soak: {args.minutes} min, {args.users} clients, {url}; RSS at start: gateway "
              f"{start_rss[0] >> 20} MiB, Triton {start_rss[1] >> 20} MiB", flush=True)
        print("\n".join(header), flush=True)
        report = asyncio.run(soak(url, gateway_pid, server.process.pid, args.minutes, args.users))
    failures = sum(m.failures for m in report)
    lines = [f"soak: {args.minutes} min, {args.users} clients; RSS at start: gateway "
             f"{start_rss[0] >> 20} MiB, Triton {start_rss[1] >> 20} MiB", "", *header,
             *(m.line() for m in report), "",
             f"requests {sum(m.requests for m in report)}, shed {sum(m.shed for m in report)}, "
             f"failures {failures}"]
    (out / "soak.md").write_text("\n".join(lines) + "\n")
    (out / "soak.json").write_text(json.dumps(
        {"start_rss": start_rss, "minutes": [asdict(m) | {"latencies": len(m.latencies)} for m in report]},
        indent=1) + "\n")
    print(lines[-1], f"\nwrote {out / 'soak.md'}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
