"""Triton Python-backend model: IMDeception on ONNX Runtime (the repository's ``cpu`` flavour).

Copied verbatim into ``<repo>/<model>/1/model.py`` by ``imdsr export repo``; it needs numpy and
onnxruntime only (never torch). Settings come from the model config's ``parameters``, the wire
dtypes from its ``input``/``output`` (FP32 per the contract; FP16/UINT8 only for the benchmark).
"""

import json
import os
import sys
from pathlib import Path


def _use_launcher_site_packages() -> None:
    """Put the launching environment's site-packages first on ``sys.path``.

    The backend's stub runs its own embedded interpreter, which ignores PYTHONPATH and sees the base
    interpreter's site-packages (which may hold numpy 2, breaking Triton's tensor utilities).
    ``imdsr triton`` exports its own site-packages here; nothing machine-specific is committed.
    The names match triton_host/launcher.py.
    """
    paths = os.environ.get("IMDSR_TRITON_SITE_PACKAGES", "")
    version = os.environ.get("IMDSR_TRITON_PYTHON", "")
    if not paths or version != f"{sys.version_info[0]}.{sys.version_info[1]}":
        return  # another interpreter (e.g. an NGC image's): its own packages must serve
    for path in reversed(paths.split(os.pathsep)):
        if path and path not in sys.path:
            sys.path.insert(0, path)


_use_launcher_site_packages()

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

INPUT_NAME = "input"
OUTPUT_NAME = "output"


def _decode(x: np.ndarray) -> np.ndarray:
    """Wire -> the graph's FP32 [0, 1]."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255)  # as clients scale 8-bit images
    return x.astype(np.float32, copy=False)


def _encode(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The graph's FP32 -> wire (UINT8 rounds and clips; FP32/FP16 stay unclamped)."""
    if dtype == np.uint8:
        return (np.clip(y, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return y.astype(dtype, copy=False)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        version_dir = Path(args["model_repository"]) / args["model_version"]
        onnx_path = version_dir / params.get("onnx_file", "model.onnx")
        self.out_dtype = pb_utils.triton_string_to_numpy(config["output"][0]["data_type"])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(params.get("intra_op_threads", "0"))
        opts.inter_op_num_threads = 1  # a sequential conv net: nothing to run side by side
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Instances of several models share the cores; spinning threads would steal them.
        opts.add_session_config_entry("session.intra_op.allow_spinning", params.get("allow_spinning", "0"))
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self.name = args["model_name"]

    def execute(self, requests: list) -> list:
        # The dynamic batcher hands over several requests; those of one shape run as one batch.
        inputs = [pb_utils.get_input_tensor_by_name(r, INPUT_NAME).as_numpy() for r in requests]
        groups: dict[tuple, list[int]] = {}
        for i, x in enumerate(inputs):
            groups.setdefault(x.shape[1:], []).append(i)
        responses: list = [None] * len(requests)
        for indices in groups.values():
            batch = np.concatenate([inputs[i] for i in indices]) if len(indices) > 1 else inputs[indices[0]]
            try:
                y = self.session.run([OUTPUT_NAME], {INPUT_NAME: _decode(batch)})[0]
            except Exception as exc:  # one bad group must not fail the others, nor the server
                error = pb_utils.TritonError(f"{self.name}: inference failed for input {batch.shape}: {exc}")
                for i in indices:
                    responses[i] = pb_utils.InferenceResponse(output_tensors=[], error=error)
                continue
            start = 0
            for i in indices:
                n = inputs[i].shape[0]
                out = np.ascontiguousarray(_encode(y[start:start + n], self.out_dtype))
                responses[i] = pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(OUTPUT_NAME, out)])
                start += n
        return responses

    def finalize(self) -> None:
        self.session = None
