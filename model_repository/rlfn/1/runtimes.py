"""Run an exported ONNX graph on the CPU with ONNX Runtime or OpenVINO, behind one call.

Copied verbatim beside ``model.py`` into every Python-backend model (it needs numpy and the chosen
runtime only), and imported by ``imdsr bench`` to time the same runners without Triton: the model
Triton serves and the model the benchmark times are one piece of code.
"""

from __future__ import annotations

import numpy as np

RUNTIMES = ("onnxruntime", "openvino")
# f32: exact (within an 8-bit level of PyTorch). bf16 (OpenVINO only): ~2.5x faster on CPUs with
# AMX, within a few levels of f32 (docs/PERFORMANCE.md, "bf16 on AMX"); off by default.
PRECISIONS = ("f32", "bf16")


class Runner:
    """``run(x, names) -> [arrays]``: the graph's named outputs for input ``x`` (FP32 NCHW)."""

    runtime = ""

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
        self.compiled = core.compile_model(core.read_model(path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.outputs = {o.get_any_name(): o for o in self.compiled.outputs}

    def run(self, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
        self.request.infer({0: x})
        # Copies: the request's buffers are reused by the next call.
        return [np.array(self.request.get_tensor(self.outputs[n]).data) for n in names]


def make_runner(runtime: str, path: str, threads: int = 0, spinning: bool = False,
                precision: str = "f32") -> Runner:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if runtime == "onnxruntime":
        if precision != "f32":
            raise ValueError(f"ONNX Runtime runs this graph in f32 only, not {precision}")
        return OrtRunner(path, threads, spinning)
    if runtime == "openvino":
        return OpenVinoRunner(path, threads, spinning, precision)
    raise ValueError(f"unknown CPU runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
