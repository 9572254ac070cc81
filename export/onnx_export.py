"""Weights -> ONNX: dynamic batch, height and width, checked, simplified (split convolutions
made one per part, ``export.conv_splits``), with provenance metadata.

Layout and dtype follow ``imdsr.contract``: FP32 NCHW RGB in [0, 1] in, FP32 NCHW x4 out, so the
same graph feeds ONNX Runtime (CPU flavour) and TensorRT (which keeps FP32 I/O even for FP16
engines). Uses the TorchScript exporter: it records ``x.shape`` arithmetic as graph ops, so the
attention's pad-to-32 and the pixel (un)shuffles stay symbolic; the test suite checks ONNX Runtime
against PyTorch at sizes that are not multiples of 4 or 32.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from imdsr.contract import INPUT_NAME, OUTPUT_NAME, OUTPUT_U8_NAME, SCALE
from imdsr.digest import file_sha256
from training.weights.store import load_model

OPSET = 17  # highest opset that TensorRT 8.5 (JetPack 5) parses; 10.x takes it too
META_PREFIX = "imdsr."
ONNX_FORMAT = "imdsr-onnx/1"
# Odd sizes on purpose: neither multiples of 4 (pixel shuffle) nor of 32 (attention regions).
VERIFY_SHAPES: tuple[tuple[int, int, int, int], ...] = ((1, 3, 37, 45), (2, 3, 33, 70))
# split_convolutions: the most the rewritten graph may differ from the traced one (FP32 outputs in
# [0, 1]; measured 6e-7 for c16nla), far below half an 8-bit level (2e-3).
SPLIT_TOLERANCE = 1e-5


@dataclass(frozen=True)
class Provenance:
    """What the graph was made from; stored as ONNX ``metadata_props`` under ``imdsr.*``."""

    variant: str
    scale: int
    weights_sha256: str
    weights_source: str

    def as_metadata(self) -> dict[str, str]:
        return {
            f"{META_PREFIX}format": ONNX_FORMAT,
            f"{META_PREFIX}variant": self.variant,
            f"{META_PREFIX}scale": str(self.scale),
            f"{META_PREFIX}weights_sha256": self.weights_sha256,
            f"{META_PREFIX}weights_source": self.weights_source,
            f"{META_PREFIX}io": f"{INPUT_NAME}: FP32 NCHW RGB [0,1]; {OUTPUT_NAME}: FP32 NCHW "
                                f"x{self.scale}; {OUTPUT_U8_NAME}: the same as UINT8, clamped and rounded",
        }


@dataclass(frozen=True)
class ExportResult:
    path: Path
    provenance: Provenance
    nodes_traced: int
    nodes_final: int
    nodes_simplified: int = 0   # after onnxslim, before split_convolutions (which adds nodes)
    splits_rewritten: int = 0   # channel Splits made one convolution per part


class WithWireOutputs(nn.Module):
    """The model's FP32 output, and the same clamped to [0, 1] and rounded to 8 bits (UINT8).

    Rounding half to even, as the tiler's own quantisation (``np.rint``): a client gets the same
    8-bit image from either output.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.model(x)
        return y, torch.round(y.clamp(0.0, 1.0) * 255.0).to(torch.uint8)


def trace_to_onnx(model: nn.Module, opset: int = OPSET, wire_outputs: bool = True) -> onnx.ModelProto:
    """Trace ``model`` into an in-memory ONNX graph with symbolic N, H and W; with
    ``wire_outputs`` (what serving uses) both outputs, else the model's FP32 output alone."""
    if wire_outputs:
        model = WithWireOutputs(model)
    names = [OUTPUT_NAME, OUTPUT_U8_NAME] if wire_outputs else [OUTPUT_NAME]
    buf = io.BytesIO()
    dummy = torch.rand(1, 3, 48, 40)  # the shape is not baked in: every size is a Shape op
    with warnings.catch_warnings():
        # A TracerWarning means a size became a Python constant: the graph would silently be
        # valid for the dummy's shape only. Fail instead.
        warnings.simplefilter("error", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(
            model, (dummy,), buf,
            input_names=[INPUT_NAME], output_names=names,
            dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                          **{n: {0: "batch", 2: "out_height", 3: "out_width"} for n in names}},
            opset_version=opset, do_constant_folding=True, dynamo=False,
        )
    return onnx.load_from_string(buf.getvalue())


def run_onnx(proto_or_path: onnx.ModelProto | str | Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    if isinstance(proto_or_path, onnx.ModelProto):
        src: bytes | str = proto_or_path.SerializeToString()
    else:
        src = str(proto_or_path)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # A check, not a benchmark: one thread that sleeps when idle never fights other processes.
    opts.intra_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


def simplify(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Fold the shape arithmetic the tracer leaves behind, when that helps and changes nothing.

    onnxslim (optional) removes ~40% of the nodes (constants, duplicated Shape/Gather chains);
    TensorRT's parser and ORT's start-up both see less. The result is kept only if it is smaller
    and computes bit-for-bit what the traced graph does at an odd shape.
    """
    try:
        import onnxslim
    except ImportError:
        return proto
    slim = onnxslim.slim(proto)
    if len(slim.graph.node) >= len(proto.graph.node):
        return proto
    x = np.random.default_rng(0).random(VERIFY_SHAPES[0], dtype=np.float32)
    if not np.array_equal(run_onnx(proto, x), run_onnx(slim, x)):
        return proto
    return slim


def split_convolutions(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Each convolution whose output channels are split apart as one convolution per part
    (``export.conv_splits``), kept only if it computes what ``proto`` does at an odd shape to
    within float rounding (other kernels sum in another order); and how many Splits went."""
    from export.conv_splits import split_conv_outputs

    split, count = split_conv_outputs(proto)
    if not count:
        return proto, 0
    x = np.random.default_rng(0).random(VERIFY_SHAPES[0], dtype=np.float32)
    if not np.allclose(run_onnx(proto, x), run_onnx(split, x), rtol=0, atol=SPLIT_TOLERANCE):
        return proto, 0
    return split, count


def export_onnx(variant: str, weights: str | Path, out: str | Path, *, scale: int = SCALE,
                opset: int = OPSET, simplified: bool = True) -> ExportResult:
    """Export ``variant`` with ``weights`` to ``out``; the file is checked before it is written."""
    model, meta = load_model(variant, weights, scale)
    traced = trace_to_onnx(model, opset)
    slim = simplify(traced) if simplified else traced
    final, splits = split_convolutions(slim) if simplified else (traced, 0)
    prov = Provenance(variant, scale, file_sha256(weights), meta.source)
    onnx.helper.set_model_props(final, prov.as_metadata())
    final.doc_string = f"{type(model).__name__} {variant} x{scale} (imdsr)"
    onnx.checker.check_model(final, full_check=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(final.SerializeToString())
    return ExportResult(out, prov, len(traced.graph.node), len(final.graph.node),
                        len(slim.graph.node), splits)


def read_provenance(path: str | Path) -> dict[str, str]:
    """The ``imdsr.*`` metadata of an exported graph, without the prefix."""
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key[len(META_PREFIX):]: p.value for p in proto.metadata_props
            if p.key.startswith(META_PREFIX)}


def max_abs_diff(model: nn.Module, onnx_path: str | Path,
                 shapes: tuple[tuple[int, int, int, int], ...] = VERIFY_SHAPES, seed: int = 0) -> float:
    """Largest |ONNX Runtime - PyTorch| over random inputs of ``shapes``."""
    rng = np.random.default_rng(seed)
    worst = 0.0
    for shape in shapes:
        x = rng.random(shape, dtype=np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = run_onnx(onnx_path, x)
        if got.shape != ref.shape:
            raise AssertionError(f"ONNX output {got.shape} != PyTorch {ref.shape} for input {shape}")
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst
