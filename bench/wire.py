"""FP32 vs FP16 vs UINT8 on the wire, side by side through one real Triton.

One ONNX graph is served three times, identical except for the dtypes of ``input``/``output``
(the Python backend converts at the edge of the graph). Requests are interleaved round-robin so
the formats share whatever else the machine is doing; bytes, latency and error are reported
with ratios to FP32, the contract's choice.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.model_config import ONNX_FILENAME, render_model_config
from export.serving import ServingConfig
from imdsr.contract import INPUT_NAME, OUTPUT_NAME
from training.models.registry import triton_name
from triton_host.python_backend import BACKEND_FILES

FORMATS = ("FP32", "FP16", "UINT8")
_NUMPY = {"FP32": np.float32, "FP16": np.float16, "UINT8": np.uint8}


@dataclass(frozen=True)
class WireResult:
    wire: str
    request_bytes: int
    response_bytes: int
    p50_ms: float
    p90_ms: float
    client_convert_ms: float
    max_err_8bit: float  # |output - FP32 output| on the 0..255 scale


def wire_model_name(variant: str, wire: str) -> str:
    return triton_name(variant) if wire == "FP32" else f"{triton_name(variant)}_wire_{wire.lower()}"


def write_wire_repo(root: Path, variant: str, onnx_file: Path, cfg: ServingConfig) -> None:
    for wire in FORMATS:
        name = wire_model_name(variant, wire)
        (root / name / "1").mkdir(parents=True)
        shutil.copyfile(onnx_file, root / name / "1" / ONNX_FILENAME)
        for source in BACKEND_FILES:
            shutil.copyfile(source, root / name / "1" / source.name)
        text = render_model_config(variant, "cpu", cfg, wire_dtype=wire, name=name)
        (root / name / "config.pbtxt").write_text(text)


def sample_window(batch: int, window: int, seed: int = 0) -> np.ndarray:
    """An 8-bit source (the common case): smooth gradients plus texture, as uint8 NCHW."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:window, 0:window] / window
    base = np.stack([xx, yy, (xx + yy) / 2])[None] * 200 + 20
    img = base + rng.normal(0, 12, (batch, 3, window, window))
    return np.clip(img, 0, 255).round().astype(np.uint8)


def encode(img8: np.ndarray, wire: str) -> np.ndarray:
    """What a client sends for an 8-bit image: [0, 1] floats, or the bytes as they are."""
    if wire == "UINT8":
        return img8
    return (img8.astype(np.float32) / 255.0).astype(_NUMPY[wire])


def decode(out: np.ndarray) -> np.ndarray:
    """What a client makes of the answer: an 8-bit image."""
    if out.dtype == np.uint8:
        return out
    return (np.clip(out.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)


def run_wire_bench(grpc_url: str, variant: str, window: int, batch: int, iters: int) -> list[WireResult]:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(grpc_url)
    img8 = sample_window(batch, window)
    times: dict[str, list[float]] = {w: [] for w in FORMATS}
    convert: dict[str, list[float]] = {w: [] for w in FORMATS}
    outputs: dict[str, np.ndarray] = {}

    def once(wire: str) -> np.ndarray:
        t0 = time.perf_counter()
        x = encode(img8, wire)
        inp = grpcclient.InferInput(INPUT_NAME, list(x.shape), wire)
        inp.set_data_from_numpy(x)
        t1 = time.perf_counter()
        res = client.infer(wire_model_name(variant, wire), [inp],
                           outputs=[grpcclient.InferRequestedOutput(OUTPUT_NAME)])
        out = res.as_numpy(OUTPUT_NAME)
        t2 = time.perf_counter()
        decode(out)
        t3 = time.perf_counter()
        times[wire].append((t2 - t1) * 1e3)
        convert[wire].append(((t1 - t0) + (t3 - t2)) * 1e3)
        return out

    for wire in FORMATS:  # warm-up round, not timed
        outputs[wire] = once(wire)
        times[wire].clear()
        convert[wire].clear()
    for _ in range(iters):
        for wire in FORMATS:
            once(wire)

    ref = outputs["FP32"].astype(np.float64) * 255
    results = []
    for wire in FORMATS:
        out = outputs[wire]
        got = out.astype(np.float64) if out.dtype == np.uint8 else out.astype(np.float64) * 255
        # UINT8 clips to [0, 255]; compare against the clipped FP32 answer, as a client would see it.
        want = np.clip(ref, 0, 255) if wire == "UINT8" else ref
        err = float(np.abs(got - want).max())
        t = sorted(times[wire])
        results.append(WireResult(
            wire, encode(img8, wire).nbytes, out.nbytes,
            statistics.median(t), t[min(len(t) - 1, int(0.9 * len(t)))],
            statistics.median(convert[wire]), err))
    client.close()
    return results


def format_results(results: list[WireResult]) -> str:
    base = results[0]
    lines = [f"{'wire':6} {'request':>10} {'response':>11} {'bytes':>6} {'p50 ms':>8} {'p90 ms':>8} "
             f"{'p50 ratio':>9} {'client ms':>9} {'max err (0..255)':>16}"]
    for r in results:
        total = (r.request_bytes + r.response_bytes) / (base.request_bytes + base.response_bytes)
        lines.append(f"{r.wire:6} {r.request_bytes:>10,} {r.response_bytes:>11,} {total:>6.2f} "
                     f"{r.p50_ms:>8.1f} {r.p90_ms:>8.1f} {r.p50_ms / base.p50_ms:>9.2f} "
                     f"{r.client_convert_ms:>9.2f} {r.max_err_8bit:>16.4f}")
    return "\n".join(lines)


def temp_wire_repo(variant: str, onnx_file: Path, cfg: ServingConfig) -> Path:
    root = Path(tempfile.mkdtemp(prefix="imdsr-wire-"))
    write_wire_repo(root, variant, onnx_file, cfg)
    return root
