"""``imdsr bench service``: the whole service against the bare model, side by side in one run.

Four measurements on the same picture, one after the other on the same machine:

1. **bare model**: the published NTIRE 2022 architecture (``bench/published.py``) exported to ONNX
   and run in-process on ONNX Runtime (f32): the baseline a hand-written server would have; and
   the same graph on **OpenVINO at its own defaults** (no setting at all: it picks bf16 on AMX
   or AVX512_BF16 CPUs, LATENCY, its own thread count), the strongest bare runtime, the anchor the service is
   held to;
2. **model only**: the served graph on each CPU runtime (``triton_host/python_backend/runtimes.py``,
   the code Triton runs) at the precision the serving config asks for ("auto" resolved here);
3. **Triton only**: that graph behind a real Triton, gRPC clients at each concurrency, per runtime,
   dynamic batching on and off;
4. **full service**: Triton as the serving config says plus the gateway (``imdsr gateway``, its
   own process), ``POST /upscale`` of the PNG at each concurrency.

Load is closed-loop: ``concurrency`` clients each send their next request when the last returns.
Throughput is output megapixels per second over the wall time of a level.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from imdsr.contract import INPUT_NAME, OUTPUT_U8_NAME, SCALE, WIRE_DTYPE
from training.models.registry import triton_name


@dataclass(frozen=True)
class Level:
    """One load level of one system."""

    system: str
    concurrency: int
    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    mpx_per_s: float
    failures: int = 0


@dataclass
class Report:
    image: str
    variant: str
    threads: int
    model_ms: dict[str, float] = field(default_factory=dict)  # per image, sequential, best runs
    # The bare anchors are timed before Triton starts and again after the full service (this VM's
    # speed drifts); model_ms keeps the faster, here are both.
    anchor_runs: dict[str, list[float]] = field(default_factory=dict)
    levels: list[Level] = field(default_factory=list)
    # What each model-only timing computed in (same keys as model_ms), and what the full service
    # served (its GET /models: "auto" as the loaded model resolved it).
    precisions: dict[str, str] = field(default_factory=dict)
    served_precision: str | None = None

    def level(self, system: str, concurrency: int) -> Level | None:
        return next((lv for lv in self.levels if lv.system == system and lv.concurrency == concurrency),
                    None)

    def as_dict(self) -> dict:
        return asdict(self)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def closed_loop(system: str, call: Callable[[], Awaitable[bool]], concurrency: int,
                      requests: int, out_pixels: int, settle_s: float = 0.0) -> Level:
    """``requests`` calls by ``concurrency`` clients; ``call`` returns False for a failed request.

    Steady state is what is timed: two untimed rounds first (connections, sessions and
    shape-specific kernels warm; the served model compiles a shape of its own on its second
    sighting, in the background), then ``settle_s`` idle so that such a compilation is done."""
    for _ in range(2):
        await asyncio.gather(*(call() for _ in range(concurrency)))
    await asyncio.sleep(settle_s)
    latencies: list[float] = []
    failures = 0
    remaining = requests

    async def client() -> None:
        nonlocal remaining, failures
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            ok = await call()
            latencies.append(time.perf_counter() - start)
            failures += 0 if ok else 1

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    done = len(latencies) - failures
    return Level(system, concurrency, len(latencies), wall, 1e3 * statistics.median(latencies),
                 1e3 * _percentile(latencies, 0.95), done * out_pixels / wall / 1e6, failures)


def time_model(run: Callable[[], object], repeats: int) -> float:
    """Best-of-``repeats`` seconds of one sequential call (after one warm-up call)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


# --------------------------------------------------------------------------- the parts
def published_onnx(model, work: Path) -> Path:  # noqa: ANN001 - a torch module
    """The published architecture exported as a user would: the tracer's graph, no simplifier of
    ours, no wire outputs."""
    from bench.published import published_architecture
    from export.onnx_export import trace_to_onnx

    path = work / "published.onnx"
    path.write_bytes(trace_to_onnx(published_architecture(model), wire_outputs=False)
                     .SerializeToString())
    return path


def bare_model_seconds(path: Path, x: np.ndarray, threads: int, repeats: int) -> float:
    """The published graph on ONNX Runtime in-process, f32 (its only precision here)."""
    from triton_host.python_backend.runtimes import make_runner

    runner = make_runner("onnxruntime", str(path), threads)
    return time_model(lambda: runner.run(x, ["output"]), repeats)


def openvino_defaults_seconds(path: Path, x: np.ndarray, repeats: int,
                              static: bool = False) -> tuple[float, str]:
    """The published graph on OpenVINO with no setting at all, as someone trying it would run
    it (bf16 on AMX or AVX512_BF16 CPUs, LATENCY, threads of its choosing); and the precision it
    picked. ``static``: reshaped to ``x``'s shape first, as a user who knows OpenVINO would."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    if static:
        model.reshape({model.inputs[0].get_any_name(): list(x.shape)})
    compiled = core.compile_model(model, "CPU")
    request = compiled.create_infer_request()
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    # An ov.Type whose str() is "<Type: 'bfloat16'>"; its name is "bf16"/"f32" as the project says
    precision = getattr(hint, "get_type_name", lambda: str(hint))()
    precision = {"bfloat16": "bf16", "float32": "f32"}.get(precision, precision)
    return time_model(lambda: request.infer({0: x}), repeats), precision


def served_model_seconds(onnx_file: Path, runtime: str, x: np.ndarray, threads: int,
                         repeats: int, precision: str = "f32") -> tuple[float, str]:
    """The served graph on ``runtime`` as the Python backend runs it; and its precision."""
    from triton_host.python_backend.runtimes import make_runner

    runner = make_runner(runtime, str(onnx_file), threads, precision=precision)
    return time_model(lambda: runner.run(x, [OUTPUT_U8_NAME]), repeats), runner.precision


@contextmanager
def triton(repo: Path, log: Path):  # noqa: ANN201 - Iterator[TritonServer]
    from triton_host.launcher import TritonOptions, TritonServer, free_ports

    opts = TritonOptions(repo, *free_ports(3), host="127.0.0.1", exit_timeout_s=5)
    with log.open("ab") as handle, TritonServer(opts, log=handle) as server:
        server.wait_ready(timeout_s=300)
        yield server


async def triton_levels(grpc_url: str, variant: str, x: np.ndarray, system: str,
                        concurrencies: list[int], rounds: int, settle_s: float = 0.0) -> list[Level]:
    from tritonclient.grpc import InferInput, InferRequestedOutput
    from tritonclient.grpc.aio import InferenceServerClient

    client = InferenceServerClient(grpc_url)
    out_pixels = x.shape[2] * x.shape[3] * SCALE * SCALE

    async def call() -> bool:
        tensor = InferInput(INPUT_NAME, list(x.shape), WIRE_DTYPE)
        tensor.set_data_from_numpy(x)
        result = await client.infer(triton_name(variant), [tensor],
                                    outputs=[InferRequestedOutput(OUTPUT_U8_NAME)])
        return result.as_numpy(OUTPUT_U8_NAME) is not None

    try:
        return [await closed_loop(system, call, c, max(rounds * c, 3), out_pixels, settle_s)
                for c in concurrencies]
    finally:
        await client.close()


async def service_levels(url: str, png: bytes, variant: str, out_pixels: int,
                         concurrencies: list[int], rounds: int, settle_s: float = 0.0) -> list[Level]:
    import httpx

    async with httpx.AsyncClient(timeout=600) as client:

        async def call() -> bool:
            r = await client.post(f"{url}/upscale", content=png, params={"model": variant},
                                  headers={"Content-Type": "image/png"})
            return r.status_code == 200

        return [await closed_loop("service", call, c, max(rounds * c, 3), out_pixels, settle_s)
                for c in concurrencies]


def served_precision(url: str, variant: str) -> str | None:
    """What the gateway's GET /models says ``variant`` computes in."""
    import httpx

    models = httpx.get(f"{url}/models", timeout=60).raise_for_status().json()["models"]
    return next((m.get("precision") for m in models if m["variant"] == variant), None)


@contextmanager
def gateway(triton_grpc: str, variant: str, log: Path,  # noqa: ANN201 - Iterator[tuple[int, str]]
            extra_env: dict[str, str] | None = None):
    """``imdsr gateway`` in its own process, as deployed; yields (its pid, its URL) once ready."""
    import httpx

    from triton_host.launcher import free_ports

    (port,) = free_ports(1)
    env = {**os.environ, "IMDSR_TRITON_URL": triton_grpc, "IMDSR_DEFAULT_MODEL": variant,
           **(extra_env or {})}
    exe = Path(sys.executable).parent / "imdsr"
    # A bare checkout (no entry point installed, as on a lent GPU machine): `python -m imdsr`.
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "imdsr"]
    with log.open("ab") as handle:
        proc = subprocess.Popen([*command, "gateway", "--host", "127.0.0.1", "--port", str(port)],
                                stdout=handle, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gateway did not become ready; log: {log}")
            time.sleep(0.2)
        yield proc.pid, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


# --------------------------------------------------------------------------- the whole run
@dataclass(frozen=True)
class ServiceBench:
    variant: str
    weights: Path
    image: np.ndarray            # HxWx3 uint8
    image_name: str
    threads: int = 2
    concurrencies: tuple[int, ...] = (1, 2, 4, 8)
    rounds: int = 8              # requests per client per level
    settle_s: float = 2.0        # idle after each level's warm-up (background compilations)
    repeats: int = 3             # model-only timings
    runtimes: tuple[str, ...] = ("onnxruntime", "openvino")
    serving_config: Path | None = None


def time_anchors(report: Report, published: Path, x: np.ndarray, b: ServiceBench) -> None:
    """Time the bare anchors (ORT f32, OpenVINO defaults, and OpenVINO defaults at a static
    shape, for reference) once more into ``report``: each keeps its fastest run."""
    timings = {BARE: (bare_model_seconds(published, x, b.threads, b.repeats), "f32"),
               ANCHOR: openvino_defaults_seconds(published, x, b.repeats),
               ANCHOR_STATIC: openvino_defaults_seconds(published, x, b.repeats, static=True)}
    for name, (seconds, precision) in timings.items():
        report.anchor_runs.setdefault(name, []).append(1e3 * seconds)
        report.model_ms[name] = min(report.anchor_runs[name])
        report.precisions[name] = precision


def run_service_bench(b: ServiceBench, progress: Callable[[str], None] = print) -> Report:
    import torch

    from export.repo import ModelSource, write_repository
    from export.serving import load_serving
    from imdsr.imaging import codec
    from training.weights.store import load_model

    torch.set_num_threads(b.threads)
    h, w = b.image.shape[:2]
    x = np.ascontiguousarray(b.image.astype(np.float32).transpose(2, 0, 1)[None] / 255.0)
    png = codec.encode(codec.Picture(b.image, None, False, "PNG"), codec.OutputFormat.PNG)
    out_pixels = h * w * SCALE * SCALE
    report = Report(f"{b.image_name} {w}x{h}", b.variant, b.threads)
    cfg = load_serving(b.serving_config)
    work = Path(tempfile.mkdtemp(prefix="imdsr-bench-service-"))
    try:
        model, _ = load_model(b.variant, b.weights)
        published = published_onnx(model, work)
        time_anchors(report, published, x, b)
        progress(f"bare model timed (ORT f32; OpenVINO defaults: {report.precisions[ANCHOR]})")

        def repository(name: str, runtime: str, batching: bool) -> Path:
            cpu = cfg.cpu.model_copy(update={"runtime": runtime, "intra_op_threads": b.threads,
                                             "preferred_batch_sizes": None if batching else [1]})
            repo = work / name
            write_repository(repo, "cpu", [ModelSource(b.variant, b.weights)],
                             cfg.model_copy(update={"cpu": cpu}))
            return repo

        onnx_file = None
        for runtime in b.runtimes:
            on = repository(f"{runtime}-batching", runtime, True)
            onnx_file = onnx_file or on / triton_name(b.variant) / "1" / "model.onnx"
            label = f"served graph, {runtime}"
            seconds, report.precisions[label] = served_model_seconds(
                onnx_file, runtime, x, b.threads, b.repeats, cfg.cpu.precision)
            report.model_ms[label] = 1e3 * seconds
            progress(f"model only on {runtime} timed ({report.precisions[label]})")
            for batching, repo in ((True, on), (False, repository(f"{runtime}-single", runtime, False))):
                label = f"triton {runtime} batching {'on' if batching else 'off'}"
                with triton(repo, work / "triton.log") as server:
                    report.levels += asyncio.run(triton_levels(
                        server.grpc_url, b.variant, x, label, list(b.concurrencies), b.rounds,
                        b.settle_s))
                progress(f"{label} measured")

        served = work / "served"
        write_repository(served, "cpu", [ModelSource(b.variant, b.weights)], cfg)
        with triton(served, work / "triton.log") as server, \
                gateway(server.grpc_url, b.variant, work / "gateway.log") as (_, url):
            report.served_precision = served_precision(url, b.variant)
            report.levels += asyncio.run(service_levels(url, png, b.variant, out_pixels,
                                                        list(b.concurrencies), b.rounds, b.settle_s))
        progress(f"full service measured (runtime {cfg.cpu.runtime}, precision "
                 f"{cfg.cpu.precision} -> {report.served_precision}, "
                 f"preferred batch sizes {cfg.preferred_batch_sizes_for('cpu')})")
        time_anchors(report, published, x, b)
        progress("bare model timed again")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


# --------------------------------------------------------------------------- output
BARE = "bare (published architecture, onnxruntime)"
ANCHOR = "bare (published architecture, openvino defaults)"
ANCHOR_STATIC = "bare (published architecture, openvino defaults, reshaped to the image)"
# Issue 26's targets at 4 clients: at least the strongest bare runtime's throughput, twice ONNX
# Runtime f32's, and a lone request in 0.8 of ORT's model time (docs/PERFORMANCE.md).
TARGETS = {"service lone p50 / bare model time": ("<=", 0.8),
           "service Mpx/s at 4 clients / bare model Mpx/s": (">=", 2.0),
           "service Mpx/s at 4 clients / openvino defaults Mpx/s": (">=", 1.0)}


def ratios(report: Report, concurrency: int = 4) -> dict[str, float]:
    """The ratios the targets are stated in (docs/PERFORMANCE.md)."""
    h_w = report.image.split()[-1].split("x")
    out_pixels = int(h_w[0]) * int(h_w[1]) * SCALE * SCALE

    def mpx(ms: float) -> float:
        return out_pixels / (ms / 1e3) / 1e6

    out: dict[str, float] = {}
    lone = report.level("service", 1)
    busy = report.level("service", concurrency)
    if lone:
        out["service lone p50 / bare model time"] = lone.p50_ms / report.model_ms[BARE]
    if busy:
        out[f"service Mpx/s at {concurrency} clients / bare model Mpx/s"] = (
            busy.mpx_per_s / mpx(report.model_ms[BARE]))
        if ANCHOR in report.model_ms:
            out[f"service Mpx/s at {concurrency} clients / openvino defaults Mpx/s"] = (
                busy.mpx_per_s / mpx(report.model_ms[ANCHOR]))
    for name, ms in report.model_ms.items():
        if name != BARE:
            out[f"bare model time / {name} time"] = report.model_ms[BARE] / ms
    systems = sorted({lv.system for lv in report.levels if lv.system.startswith("triton")})
    for system in systems:
        lv = report.level(system, concurrency)
        runtime = system.split()[1]
        model_ms = report.model_ms.get(f"served graph, {runtime}")
        if lv and model_ms:
            out[f"{system} Mpx/s at {concurrency} / model only"] = lv.mpx_per_s / mpx(model_ms)
        if system.endswith("on"):
            off = report.level(system[:-2] + "off", concurrency)
            if lv and off:
                out[f"{system[:-12]} batching on/off Mpx/s at {concurrency}"] = lv.mpx_per_s / off.mpx_per_s
    return out


def format_report(report: Report) -> str:
    lines = [f"{report.variant}, {report.image}, {report.threads} threads per runtime (OpenVINO "
             f"defaults: its own); the full service served {report.served_precision or 'unknown'}",
             "", "| model only (sequential) | precision | ms / image | runs: before Triton, after the "
                 "service |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {report.precisions.get(name, '')} | {ms:.0f} | "
              f"{', '.join(f'{r:.0f}' for r in report.anchor_runs.get(name, []))} |"
              for name, ms in report.model_ms.items()]
    lines += ["", "| system | clients | requests | Mpx/s | p50 ms | p95 ms | failures |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {lv.system} | {lv.concurrency} | {lv.requests} | {lv.mpx_per_s:.2f} | "
              f"{lv.p50_ms:.0f} | {lv.p95_ms:.0f} | {lv.failures} |" for lv in report.levels]
    lines += ["", "| ratio | value | target |", "| --- | --- | --- |"]
    for name, value in ratios(report).items():
        op, bound = TARGETS.get(name, ("", None))
        target = "" if bound is None else (
            f"{op} {bound:g} ({'met' if (value <= bound if op == '<=' else value >= bound) else 'missed'})")
        lines.append(f"| {name} | {value:.2f} | {target} |")
    return "\n".join(lines)


def plot(report: Report, out: Path) -> Path:
    """Throughput and p95 latency against concurrency, one line per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for system in dict.fromkeys(lv.system for lv in report.levels):
        levels = [lv for lv in report.levels if lv.system == system]
        xs = [lv.concurrency for lv in levels]
        left.plot(xs, [lv.mpx_per_s for lv in levels], marker="o", label=system)
        right.plot(xs, [lv.p95_ms for lv in levels], marker="o", label=system)
    h_w = report.image.split()[-1].split("x")
    for key, color, label in ((BARE, "grey", "ORT f32"), (ANCHOR, "black", "OpenVINO defaults")):
        if key in report.model_ms:
            bare_mpx = int(h_w[0]) * int(h_w[1]) * SCALE * SCALE / report.model_ms[key] * 1e3 / 1e6
            left.axhline(bare_mpx, color=color, linestyle="--", label=f"bare model ({label})")
            right.axhline(report.model_ms[key], color=color, linestyle="--",
                          label=f"bare model time ({label})")
    for ax, title in ((left, "output Mpx/s"), (right, "p95 latency, ms")):
        ax.set_xlabel("concurrent clients")
        ax.set_xscale("log", base=2)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    left.legend(fontsize=7)
    fig.suptitle(f"imdsr bench service: {report.variant}, {report.image}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
