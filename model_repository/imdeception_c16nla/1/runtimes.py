"""Run an exported model behind one call: the ONNX graph on the CPU with ONNX Runtime or
OpenVINO, or (the gpu target's ``torch-cuda`` runtime) its TorchScript on a CUDA GPU with PyTorch.

Copied verbatim beside ``model.py`` into every Python-backend model (it needs numpy and the chosen
runtime only: each runtime is imported when its runner is made, so a CPU model never imports
torch), and imported by ``imdsr bench`` to time the same runners without Triton: the model
Triton serves and the model the benchmark times are one piece of code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

RUNTIMES = ("onnxruntime", "openvino")  # the CPU runtimes
# The GPU runtime where no TensorRT plan can be built: PyTorch on CUDA, running the TorchScript
# `imdsr export repo --target gpu` writes with [gpu] runtime = "torch-cuda" (export/serving.toml).
GPU_RUNTIMES = ("torch-cuda",)
# f32: exact (within an 8-bit level of PyTorch). bf16 (OpenVINO only): ~2.5x faster on CPUs with
# AMX or AVX512_BF16, within a few levels of f32 and 0.002 dB Y-PSNR of it (docs/PERFORMANCE.md,
# "Precision").
# fp16 (torch-cuda only): half-precision weights and activations, FP32 on the wire.
# auto: resolved where the model loads (``resolve_precision``), never at export time.
PRECISIONS = ("f32", "bf16", "fp16")
AUTO = "auto"
OUTPUT_U8_NAME = "output_u8"
# The CPU features bf16 is fast with, each measured with `imdsr bench precision` (docs/PERFORMANCE.md,
# "Precision"): AMX's bf16 tiles (Intel Xeon, 2.1-2.5x f32), and AVX512_BF16's dot products
# (AMD EPYC Zen 4: 2.54x f32 for c16nla, BSD100 Y-PSNR +0.001 dB). Either set is enough.
AMX_FLAGS = frozenset({"amx_bf16", "amx_tile"})
AVX512_BF16_FLAGS = frozenset({"avx512f", "avx512_bf16"})
BF16_FLAG_SETS = (AMX_FLAGS, AVX512_BF16_FLAGS)
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (empty where there is no /proc/cpuinfo)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def openvino_capabilities() -> frozenset[str]:
    """What OpenVINO's CPU plugin says it can run here (``BF16``, ``FP32``, ``INT8``...)."""
    import openvino as ov

    return frozenset(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def auto_precision(runtime: str, flags: frozenset[str], capabilities: frozenset[str]) -> str:
    """``auto`` for ``runtime`` on a CPU with these flags and OpenVINO capabilities: bf16 with
    OpenVINO where the CPU has AMX or AVX512_BF16 and OpenVINO runs BF16 (2.1-2.5x f32, within
    0.002 dB Y-PSNR of it on BSD100 and Urban100), f32 everywhere else (AVX2-only CPUs have no
    fast bf16 path)."""
    fast_bf16 = any(flags >= needed for needed in BF16_FLAG_SETS)
    if runtime == "openvino" and fast_bf16 and "BF16" in capabilities:
        return "bf16"
    return "f32"


def resolve_precision(runtime: str, precision: str) -> str:
    """The precision ``runtime`` runs for the configured ``precision``, on this machine."""
    if precision != AUTO:
        return precision
    if runtime != "openvino":
        return "f32"  # ONNX Runtime runs this graph in f32 only; torch-cuda says fp16 or f32
    return auto_precision(runtime, cpu_flags(), openvino_capabilities())


class Runner:
    """``run(x, names) -> [arrays]``: the graph's named outputs for input ``x`` (FP32 NCHW);
    ``precision``: what it computes in (resolved, never "auto")."""

    runtime = ""
    precision = "f32"

    def run(self, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
        raise NotImplementedError


class OrtRunner(Runner):
    runtime = "onnxruntime"

    def __init__(self, path: str, threads: int, spinning: bool) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1  # a sequential conv net: nothing to run side by side
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Instances of several models share the cores; spinning threads would steal them.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def run(self, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
        return self.session.run(names, {self.input: x})


class OpenVinoRunner(Runner):
    runtime = "openvino"

    def __init__(self, path: str, threads: int, spinning: bool, precision: str = "f32") -> None:
        import openvino as ov

        core = ov.Core()
        config = {
            "PERFORMANCE_HINT": "LATENCY",       # one request at a time per instance, all its threads
            # Always explicit: OpenVINO picks bf16 by itself on CPUs with AMX unless told f32.
            "INFERENCE_PRECISION_HINT": precision,
            "NUM_STREAMS": "1",
        }
        if threads > 0:
            config["INFERENCE_NUM_THREADS"] = str(threads)
        self.precision = precision
        self.compiled = core.compile_model(core.read_model(path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.outputs = {o.get_any_name(): o for o in self.compiled.outputs}

    def run(self, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
        self.request.infer({0: x})
        # Copies: the request's buffers are reused by the next call.
        return [np.array(self.request.get_tensor(self.outputs[n]).data) for n in names]


class TorchRunner(Runner):
    """TorchScript on PyTorch, on a CUDA device (the ``torch-cuda`` runtime; ``cpu`` only for
    rehearsing the served path on a machine without a GPU).

    Tensors cross between numpy and torch through DLPack, never torch's numpy bindings: Triton's
    stub needs numpy < 2 while a CUDA build of torch may have been built against numpy 2.
    ``output_u8`` is computed as the ONNX graph computes it (export/onnx_export.py
    ``WithWireOutputs``): FP32 output clamped to [0, 1], times 255, rounded half to even.
    """

    runtime = "torch-cuda"

    def __init__(self, path: str, device: str = "cuda", precision: str = "f32") -> None:
        import torch

        self.torch = torch
        self.device = torch.device("cuda:0" if device == "cuda" else device)
        if self.device.type == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError(f"torch-cuda: torch {torch.__version__} sees no CUDA device")
            torch.cuda.set_device(self.device)
            # "f32" means FP32: TF32 convolutions are ~1e-3 off, several 16-bit levels.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            # The gateway's windows are one fixed shape: cuDNN picks its fastest kernels once.
            torch.backends.cudnn.benchmark = True
        elif precision != "f32":
            raise ValueError(f"torch on {self.device} runs f32 only, not {precision}")
        self.precision = precision
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        module = torch.jit.load(path, map_location=self.device)
        self.module = module.to(self.dtype).eval()

    def run(self, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
        torch = self.torch
        # DLPack needs a writeable array (numpy refuses to export a read-only one).
        t = torch.from_dlpack(np.require(x, np.float32, ("C", "W")))
        with torch.inference_mode():
            y = self.module(t.to(self.device, self.dtype)).float()
            outs = []
            for name in names:
                z = torch.round(y.clamp(0.0, 1.0) * 255.0).to(torch.uint8) if name == OUTPUT_U8_NAME else y
                outs.append(_to_numpy(z.cpu()))
        return outs


def _to_numpy(t) -> np.ndarray:  # noqa: ANN001 - a CPU torch.Tensor
    try:
        return np.from_dlpack(t)
    except (AttributeError, BufferError, RuntimeError, TypeError):
        return t.numpy()


def make_runner(runtime: str, path: str, threads: int = 0, spinning: bool = False,
                precision: str = "f32", device: str = "cuda") -> Runner:
    """``device`` applies to torch-cuda only (``cuda``, ``cuda:N``; ``cpu`` to rehearse);
    ``precision`` may be "auto" (``resolve_precision``); the runner's ``precision`` says what."""
    if precision not in (*PRECISIONS, AUTO):
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join((AUTO, *PRECISIONS))}")
    if runtime in (*RUNTIMES, *GPU_RUNTIMES):
        precision = resolve_precision(runtime, precision)
    if runtime == "onnxruntime":
        if precision != "f32":
            raise ValueError(f"ONNX Runtime runs this graph in f32 only, not {precision}")
        return OrtRunner(path, threads, spinning)
    if runtime == "openvino":
        if precision == "fp16":
            raise ValueError("OpenVINO runs this graph in f32 or bf16, not fp16")
        return OpenVinoRunner(path, threads, spinning, precision)
    if runtime == "torch-cuda":
        if precision == "bf16":
            raise ValueError("torch-cuda runs f32 or fp16, not bf16")
        return TorchRunner(path, device, precision)
    raise ValueError(f"unknown CPU runtime {runtime!r}; known: {', '.join(RUNTIMES)} "
                     f"(and {', '.join(GPU_RUNTIMES)} on a GPU)")
