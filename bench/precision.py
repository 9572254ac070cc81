"""f32 against bf16 on this CPU, for the served graph: speed and fidelity side by side in one run.

``[cpu] precision = "auto"`` picks bf16 only where it is both faster and faithful (issue 26: within
0.03 dB Y-PSNR of PyTorch f32 on BSD100). Which CPUs qualify is a measurement, not a guess from
the flags: this bench is that measurement. It runs the served ONNX graph of a variant (exported
from the shipped weights, as the repository's is) on OpenVINO at each precision and on ONNX
Runtime f32, times a 256x256 photo (best of ``repeats``), then scores each runtime on the
standard sets with ``imdsr eval --benchmark``'s protocol (training/evaluate.py), PyTorch f32 beside
them as the reference, and reports the per-pixel difference of bf16's 8-bit output from f32's.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from imdsr.contract import OUTPUT_NAME
from triton_host.python_backend.runtimes import Runner, cpu_flags, make_runner, resolve_precision

# OpenVINO at each precision, ONNX Runtime f32: what "auto" chooses between, and the baseline.
CASES: tuple[tuple[str, str], ...] = (("openvino", "f32"), ("openvino", "bf16"), ("onnxruntime", "f32"))
FAITHFUL_DB = 0.03  # issue 26's rule: within this of PyTorch f32's Y-PSNR on BSD100
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_tile")


class RunnerModule(nn.Module):
    """A runtime's runner as the evaluation protocol calls a model: NCHW [0, 1] in, FP32 out."""

    def __init__(self, runner: Runner) -> None:
        super().__init__()
        self.runner = runner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (y,) = self.runner.run(np.ascontiguousarray(x.numpy(), dtype=np.float32), [OUTPUT_NAME])
        return torch.from_numpy(y)


@dataclass
class PrecisionReport:
    variant: str
    isa: list[str]
    auto: str                                   # what "auto" resolves to for OpenVINO here
    ms: dict[str, float] = field(default_factory=dict)            # case -> ms per 256x256 image
    psnr: dict[str, dict[str, float]] = field(default_factory=dict)  # case -> set -> Y-PSNR
    levels: dict[str, float] = field(default_factory=dict)        # bf16 vs f32: max, % > 1 level


def case_name(runtime: str, precision: str) -> str:
    return f"{runtime} {precision}"


def _time(runner: Runner, image: np.ndarray, repeats: int) -> float:
    x = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32) / 255
    runner.run(x, [OUTPUT_NAME])  # compile and warm
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        runner.run(x, [OUTPUT_NAME])
        best = min(best, time.perf_counter() - start)
    return best * 1000


def _levels(a: RunnerModule, b: RunnerModule, image: np.ndarray) -> tuple[float, float]:
    from training.evaluate import super_resolve

    da = super_resolve(a, image).astype(np.int16)
    db = super_resolve(b, image).astype(np.int16)
    diff = np.abs(da - db)
    return float(diff.max()), float((diff > 1).mean() * 100)


def run_precision_bench(variant: str, weights: Path, image: np.ndarray, sets: dict[str, list[Path]],
                        threads: int = 2, repeats: int = 8,
                        progress: Callable[[str], None] = print) -> PrecisionReport:
    from export.onnx_export import export_onnx
    from training.evaluate import benchmark_table
    from training.weights.store import load_model

    flags = cpu_flags()
    report = PrecisionReport(variant, [f for f in ISA_FLAGS if f in flags],
                             resolve_precision("openvino", "auto"))
    with tempfile.TemporaryDirectory() as tmp:
        onnx = export_onnx(variant, weights, Path(tmp) / "model.onnx").path
        modules: dict[str, nn.Module] = {}
        for runtime, precision in CASES:
            runner = make_runner(runtime, str(onnx), threads, precision=precision)
            name = case_name(runtime, precision)
            report.ms[name] = _time(runner, image, repeats)
            progress(f"{name}: {report.ms[name]:.0f} ms at {image.shape[1]}x{image.shape[0]}")
            modules[name] = RunnerModule(runner)
        f32, bf16 = modules[case_name("openvino", "f32")], modules[case_name("openvino", "bf16")]
        report.levels["max"], report.levels["pct_over_1"] = _levels(f32, bf16, image)
        if sets:
            torch.set_num_threads(threads)
            model, _ = load_model(variant, weights)
            table = benchmark_table({"pytorch f32": model.eval(), **modules}, sets, 4)
            report.psnr = {m: {s: c.y_psnr for s, c in row.items()} for m, row in table.items()
                           if m != "bicubic"}
    return report


def faithful(report: PrecisionReport, case: str, reference_set: str = "bsd100") -> bool | None:
    ref = report.psnr.get("pytorch f32", {}).get(reference_set)
    got = report.psnr.get(case, {}).get(reference_set)
    return None if ref is None or got is None else abs(got - ref) <= FAITHFUL_DB


def format_report(report: PrecisionReport) -> str:
    sets = sorted({s for row in report.psnr.values() for s in row})
    f32_ms = report.ms[case_name("openvino", "f32")]
    lines = [f"{report.variant}, served graph, CPU flags: {' '.join(report.isa) or 'none of note'}; "
             f"precision auto -> {report.auto} here",
             "",
             "| runtime | ms / 256x256 | vs OpenVINO f32 | " + " | ".join(f"{s} Y-PSNR" for s in sets)
             + " | faithful (BSD100, 0.03 dB) |",
             "| --- | --- | --- | " + " | ".join("---" for _ in sets) + " | --- |"]
    ref = report.psnr.get("pytorch f32", {})
    if ref:
        lines.append("| pytorch f32 (reference) | | | " + " | ".join(f"{ref[s]:.3f}" for s in sets)
                     + " | |")
    for name, ms in report.ms.items():
        row = report.psnr.get(name, {})
        cells = [f"{row[s]:.3f} ({row[s] - ref[s]:+.3f})" if s in row and s in ref else "" for s in sets]
        ok = faithful(report, name)
        lines.append(f"| {name} | {ms:.0f} | {f32_ms / ms:.2f}x | " + " | ".join(cells)
                     + f" | {'' if ok is None else ('yes' if ok else 'no')} |")
    lines += ["", f"bf16 vs f32 on the photo, 8-bit output: max {report.levels['max']:.0f} levels, "
              f"{report.levels['pct_over_1']:.2f}% of values more than 1 level apart"]
    return "\n".join(lines)
