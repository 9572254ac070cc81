"""Run the Locust load test headless and print requests/s, output megapixels/s and latency per scenario.

    python loadtest/run.py                                 # starts Triton + gateway on free ports
    python loadtest/run.py --url http://127.0.0.1:8080 --users 8 --duration 2m --shape step

Without --url it starts Triton on the committed model_repository/ and the gateway on free loopback
ports, and stops both afterwards. Reports (Locust CSV + HTML, logs, the summary) go to
<results>/<UTC timestamp>/. Exits non-zero on any failure (non-200 other than 429/503 with
Retry-After) or if no request succeeded. Loopback URLs only: it is a benchmark for your own
gateway, not a tool to point at other people's services.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ipaddress
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import scenarios  # loadtest/scenarios.py: this script's folder is on sys.path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))  # bench/ (the stack it starts), also from a source tree


def _loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _seconds(span: str) -> int:
    """``90``, ``20s``, ``2m``, ``1h30m`` -> seconds (what Locust's -t accepts)."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?", span.strip())
    if not span.strip() or match is None:
        raise argparse.ArgumentTypeError(f"duration {span!r}: e.g. 60, 60s, 2m, 1h30m")
    h, m, s = (int(g or 0) for g in match.groups())
    return h * 3600 + m * 60 + s


@contextlib.contextmanager
def local_service(logs: Path) -> Iterator[str]:
    """Triton on the committed model repository and the gateway (its own process), on free
    loopback ports: the same stack `imdsr bench service` measures."""
    from bench.service import gateway, triton
    from imdsr.contract import DEFAULT_VARIANT

    print(f"starting Triton and the gateway (logs: {logs}/triton.log, gateway.log)", flush=True)
    with triton(ROOT / "model_repository", logs / "triton.log") as server, \
            gateway(server.grpc_url, DEFAULT_VARIANT, logs / "gateway.log") as (_, url):
        yield url


def run_locust(url: str, args: argparse.Namespace, out: Path) -> int:
    env = {**os.environ, "IMDSR_LOAD_SHAPE": args.shape, "IMDSR_LOAD_SCENARIOS": args.scenarios}
    if args.step:
        env["IMDSR_LOAD_STEP_S"] = str(args.step)
    cmd = [str(BIN / "locust"), "-f", str(HERE / "locustfile.py"), "--headless", "--host", url,
           "-u", str(args.users), "-r", str(args.users), "-t", f"{args.duration}s",
           "--csv", str(out / "locust"), "--html", str(out / "report.html")]
    print(f"running Locust: {args.users} users ({args.shape}) for {args.duration} s against {url}",
          flush=True)
    with (out / "locust.log").open("wb") as log:
        return subprocess.run(cmd, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                              stderr=subprocess.STDOUT).returncode


@dataclass
class Row:
    name: str
    ok: int            # 200s
    shed: int          # 429/503 with Retry-After
    failures: int
    rps: float         # 200s per second
    mpix_s: float      # output megapixels per second
    p50: str           # ms, as Locust reports them
    p95: str
    p99: str

    def line(self) -> str:
        return (f"{self.name:<30} {self.ok:>6} {self.shed:>5} {self.failures:>5} {self.rps:>8.2f} "
                f"{self.mpix_s:>9.2f} {self.p50:>7} {self.p95:>7} {self.p99:>7}")


HEADER = (f"{'scenario':<30} {'ok':>6} {'shed':>5} {'fail':>5} {'req/s':>8} {'out MP/s':>9} "
          f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}")


def summarize(stats_csv: Path, selected: tuple[scenarios.Scenario, ...], seconds: int) -> list[Row]:
    """Per-scenario rows and a total, from Locust's ``*_stats.csv``; rates over the whole run
    (Locust's own Requests/s stops at the last answer, and a large photo can take seconds)."""
    stats = {r["Name"]: r for r in csv.DictReader(stats_csv.open())}
    total = stats["Aggregated"]
    rows = []
    for s in selected:
        row, shed = stats.get(s.name, {}), stats.get(s.name + scenarios.SHED_SUFFIX, {})
        failures = int(row.get("Failure Count", 0)) + int(shed.get("Failure Count", 0))
        ok = int(row.get("Request Count", 0)) - int(row.get("Failure Count", 0))
        rows.append(Row(s.name, ok, int(shed.get("Request Count", 0)), failures, ok / seconds,
                        ok * s.output_pixels / seconds / 1e6,
                        *(row.get(p, "-") for p in ("50%", "95%", "99%"))))
    rows.append(Row("total", sum(r.ok for r in rows), sum(r.shed for r in rows),
                    int(total["Failure Count"]), sum(r.rps for r in rows), sum(r.mpix_s for r in rows),
                    total["50%"], total["95%"], total["99%"]))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running gateway (loopback); default: start one")
    parser.add_argument("--users", type=int, default=4, help="concurrent users (step: the most)")
    parser.add_argument("--duration", type=_seconds, default="60s", help="e.g. 20s, 2m")
    parser.add_argument("--shape", choices=("constant", "step"), default="constant")
    parser.add_argument("--step", type=float, help="step shape: seconds per user (default duration/users)")
    parser.add_argument("--scenarios", default="", help="filter, e.g. small or small,c4 (default all)")
    parser.add_argument("--results", type=Path, default=HERE / "results", help="reports go in a "
                        "UTC-timestamped folder here")
    args = parser.parse_args()
    if args.url and not _loopback(args.url):
        parser.error("loopback URLs only (127.0.0.1, ::1, localhost)")
    if not 1 <= args.users <= 256 or args.duration < 1:
        parser.error("--users 1..256, --duration at least 1 s")
    try:
        selected = scenarios.select(args.scenarios)
    except ValueError as exc:
        parser.error(str(exc))

    out = args.results / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        try:
            url = args.url.rstrip("/") if args.url else stack.enter_context(local_service(out))
        except (RuntimeError, OSError) as exc:  # Triton or the gateway did not start (TritonLaunchError too)
            print(f"loadtest: {exc} (logs in {out})", file=sys.stderr)
            return 1
        code = run_locust(url, args, out)

    stats_csv = out / "locust_stats.csv"
    if not stats_csv.exists():
        print(f"loadtest: Locust exited with {code} and wrote no statistics; see {out}/locust.log",
              file=sys.stderr)
        return 1
    rows = summarize(stats_csv, selected, args.duration)
    table = "\n".join([HEADER, *(r.line() for r in rows)])
    (out / "summary.txt").write_text(table + "\n")
    print(f"\n{table}\n\nlatency: Locust's rounded percentiles over 200s and failures (total: all "
          f"answers); shed = 429/503 with Retry-After\nreports: {out}/report.html, {out}/locust_stats.csv")
    total = rows[-1]
    if total.failures or code != 0:
        failures = out / "locust_failures.csv"
        for f in list(csv.DictReader(failures.open()))[:5] if failures.exists() else []:
            print(f"  {f['Occurrences']} x {f['Name']}: {f['Error'][:150]}", file=sys.stderr)
        print(f"loadtest: FAILED: {total.failures} failure(s), Locust exit code {code}; "
              f"see {failures} and {out}/locust.log", file=sys.stderr)
        return 1
    if total.ok == 0:
        print("loadtest: FAILED: no request succeeded", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
