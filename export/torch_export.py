"""Weights -> TorchScript, what the gpu target's ``torch-cuda`` runtime loads inside Triton.

Traced like the ONNX graph (``export/onnx_export.py``: the same tracer, a TracerWarning is an
error, so no size is baked in) and checked against the eager model at the same odd shapes before
the file is written. FP32 weights: the runtime casts to fp16 on the GPU when the config says so.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from export.onnx_export import VERIFY_SHAPES
from imdsr.contract import SCALE
from imdsr.digest import file_sha256
from training.weights.store import load_model

# Eager vs traced FP32 on the CPU: the same kernels, so equal up to summation order.
MAX_TRACE_DIFF = 1e-5
PROVENANCE_FILE = "imdsr.json"


def export_torchscript(variant: str, weights: str | Path, out: str | Path, *,
                       scale: int = SCALE) -> Path:
    model, meta = load_model(variant, weights, scale)
    model = model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, torch.rand(1, 3, 48, 40), check_trace=False)
    rng = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for shape in VERIFY_SHAPES:
            x = torch.rand(shape, generator=rng)
            ref, got = model(x), traced(x)
            if got.shape != ref.shape:
                raise AssertionError(f"TorchScript output {tuple(got.shape)} != eager {tuple(ref.shape)}"
                                     f" for input {shape}")
            diff = float((got - ref).abs().max())
            if diff > MAX_TRACE_DIFF:
                raise AssertionError(f"TorchScript differs from eager by {diff:.2e} at {shape}")
    provenance = {"variant": variant, "scale": scale, "weights_sha256": file_sha256(weights),
                  "weights_source": meta.source, "torch": torch.__version__}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(traced, str(out), _extra_files={PROVENANCE_FILE: json.dumps(provenance)})
    return out
