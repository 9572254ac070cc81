"""PyTorch inference speed of the model family per precision, measured side by side in one run.

What a GPU node gets from each numeric format before any TensorRT build: fp32 (exact), TF32
convolutions/matmuls, bf16 autocast and fp16 weights, on one tile shape (the dynamic batcher's).
Error is the max difference from the fp32 output on the same random input, in 8-bit levels.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from training.weights.store import load_model


@dataclass(frozen=True)
class BenchRow:
    variant: str
    precision: str
    batch: int
    ms_per_batch: float
    lr_mpx_per_s: float
    speedup: float           # vs fp32 at the same variant and batch
    max_err_levels: float    # vs fp32, output on the 0..255 scale


def precisions(device: torch.device) -> list[str]:
    return ["fp32", "tf32", "bf16", "fp16"] if device.type == "cuda" else ["fp32"]


@contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _timed(fn, device: torch.device, min_s: float) -> float:  # noqa: ANN001
    """Seconds per call: a few warm-up calls, then as many as fit in ``min_s`` (at least 3)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(3):
        fn()
    sync()
    n, start = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - start < min_s:
        fn()
        n += 1
        if n % 10 == 0:  # keep the GPU's queue short without syncing every call
            sync()
    sync()
    return (time.perf_counter() - start) / n


def bench_model(variants: list[str], device: torch.device, batches: list[int], size: int,
                min_s: float = 1.0) -> list[BenchRow]:
    rows: list[BenchRow] = []
    torch.backends.cudnn.benchmark = device.type == "cuda"
    for variant in variants:
        base, _ = load_model(variant, None)
        base = base.eval().to(device)
        half = copy.deepcopy(base).half() if "fp16" in precisions(device) else None
        for batch in batches:
            x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
            ref_s, ref = 0.0, None
            for prec in precisions(device):
                model, inp = (half, x.half()) if prec == "fp16" else (base, x)

                def run(model=model, inp=inp, prec=prec) -> torch.Tensor:  # noqa: ANN001
                    with torch.inference_mode(), torch.autocast(
                            "cuda", dtype=torch.bfloat16, enabled=prec == "bf16"):
                        return model(inp)

                with _tf32(prec == "tf32"):
                    out = run().float().clamp(0, 1)
                    sec = _timed(run, device, min_s)
                if ref is None:
                    ref_s, ref = sec, out
                err = float((out - ref).abs().max()) * 255
                rows.append(BenchRow(variant, prec, batch, sec * 1e3,
                                     batch * size * size / sec / 1e6, ref_s / sec, err))
    return rows


def format_rows(rows: list[BenchRow], size: int, device: str) -> str:
    head = (f"PyTorch inference, {size}x{size} LR tiles (x4 out), {device}\n"
            "| variant | precision | batch | ms/batch | LR Mpx/s | speed-up vs fp32 "
            "| max err (8-bit levels) |\n"
            "|---|---|---|---|---|---|---|")
    lines = [f"| {r.variant} | {r.precision} | {r.batch} | {r.ms_per_batch:.2f} | {r.lr_mpx_per_s:.2f} "
             f"| {r.speedup:.2f} | {r.max_err_levels:.2f} |" for r in rows]
    return "\n".join([head, *lines])
