"""Triton Python-backend model: any exported network (IMDeception, IMDN, RLFN, EFDN) on a CPU
runtime (the repository's ``cpu`` flavour), or on a GPU with PyTorch (the ``gpu`` flavour with
``[gpu] runtime = "torch-cuda"``): it runs the exported graph and knows nothing of the architecture.

Copied verbatim into ``<repo>/<model>/1/model.py`` by ``imdsr export repo``, beside
``runtimes.py`` (ONNX Runtime, OpenVINO or torch-cuda, the ``runtime`` parameter); it needs numpy
and that runtime only (a CPU model never imports torch). Settings come from the model config's
``parameters``; each request gets the outputs it asks for (``output`` FP32, ``output_u8`` UINT8),
computed once per batch.
The wire-benchmark models change the dtypes of ``input``/``output`` instead (FP16/UINT8).

What the model runs is resolved here, when it loads, on the machine that serves it (``precision``
"auto": runtimes.resolve_precision), and said two ways, since a Python-backend model can add no
parameter to its config: Triton's /metrics carries ``imdsr_model_info{model, version, runtime,
precision} 1``, and a request that asks for the ``imdsr_description`` output alone is answered at
once, without running the network, with JSON ``{"runtime", "precision"}`` as UINT8 bytes (what
the gateway's GET /models asks; it goes at Triton priority 1, ahead of queued tiles).
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
sys.path.insert(0, str(Path(__file__).resolve().parent))  # runtimes.py, copied beside this file

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402
from runtimes import make_runner  # noqa: E402

INPUT_NAME = "input"
OUTPUT_NAME = "output"
OUTPUT_U8_NAME = "output_u8"
DESCRIPTION_NAME = "imdsr_description"  # imdsr/contract.py; this file is copied alone


def _decode(x: np.ndarray) -> np.ndarray:
    """Wire -> the graph's FP32 [0, 1]."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255)  # as clients scale 8-bit images
    return x.astype(np.float32, copy=False)


def _encode(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The graph's FP32 -> wire (UINT8 rounds and clips; FP32/FP16 stay unclamped)."""
    if y.dtype == dtype:  # output_u8 comes out of the graph as it goes on the wire
        return y
    if dtype == np.uint8:
        return (np.clip(y, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return y.astype(dtype, copy=False)


def _device(args: dict, params: dict) -> str:
    """torch-cuda only: a KIND_GPU instance runs on the GPU Triton gave it; otherwise the
    ``device`` parameter (``cuda``: the first GPU; ``cpu``: a rehearsal without one)."""
    if args.get("model_instance_kind") == "GPU":
        return f"cuda:{args.get('model_instance_device_id', '0')}"
    return params.get("device", "cuda")


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        version_dir = Path(args["model_repository"]) / args["model_version"]
        # model_file: what the runtime loads (torch-cuda: TorchScript); else the ONNX graph.
        model_path = version_dir / params.get("model_file", params.get("onnx_file", "model.onnx"))
        # The graph's outputs; the description is answered here, never computed by the graph.
        self.out_dtypes = {o["name"]: pb_utils.triton_string_to_numpy(o["data_type"])
                           for o in config["output"] if o["name"] != DESCRIPTION_NAME}
        runtime = params.get("runtime", "onnxruntime")
        self.runner = make_runner(runtime, str(model_path),
                                  int(params.get("intra_op_threads", "0")),
                                  params.get("allow_spinning", "0") == "1",
                                  params.get("precision", "f32"), _device(args, params),
                                  int(params.get("side_by_side", "1")),
                                  int(params.get("static_shapes", "0")))
        # "0" (the cpu config): each request runs on its own even when Triton hands over several
        # (its dynamic batcher does, whatever the preferred batch sizes): on CPU runtimes a batch
        # costs more per window than single windows, and each batch size is a new shape to keep.
        self.merge = params.get("merge_requests", "1") == "1"
        self.name = args["model_name"]
        described = {"runtime": runtime, "precision": self.runner.precision}
        self.description = np.frombuffer(json.dumps(described, sort_keys=True).encode(), np.uint8)
        self.info = _publish_info({"model": self.name, "version": str(args.get("model_version", "")),
                                   "instance": args.get("model_instance_name", ""), **described})

    def _wanted(self, request) -> list[str]:  # noqa: ANN001 - pb_utils.InferenceRequest
        names = [n for n in request.requested_output_names() if n in self.out_dtypes]
        return names or list(self.out_dtypes)

    def _describe(self, request):  # noqa: ANN001, ANN202 - pb_utils request and response
        """The answer to a request for the description alone: one row per input row."""
        rows = pb_utils.get_input_tensor_by_name(request, INPUT_NAME).as_numpy().shape[0]
        table = np.ascontiguousarray(np.broadcast_to(self.description, (rows, self.description.size)))
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(DESCRIPTION_NAME, table)])

    def execute(self, requests: list) -> list:
        responses: list = [None] * len(requests)
        # A describe request runs nothing; the rest as below.
        for i, r in enumerate(requests):
            if list(r.requested_output_names()) == [DESCRIPTION_NAME]:
                responses[i] = self._describe(r)
        pending = [i for i, answered in enumerate(responses) if answered is None]
        # The dynamic batcher hands over several requests; those of one shape run as one batch
        # (unless merging is off), computing every output any of them asked for.
        inputs = {i: pb_utils.get_input_tensor_by_name(requests[i], INPUT_NAME).as_numpy()
                  for i in pending}
        wanted = {i: self._wanted(requests[i]) for i in pending}
        groups: dict[object, list[int]] = {}
        for i, x in inputs.items():
            groups.setdefault(x.shape[1:] if self.merge else i, []).append(i)
        batches = [np.concatenate([inputs[i] for i in indices]) if len(indices) > 1
                   else inputs[indices[0]] for indices in groups.values()]
        names = [sorted({n for i in indices for n in wanted[i]}) for indices in groups.values()]
        # The wire-benchmark models carry one output whose dtype is converted here instead.
        graph_names = [[n if n in (OUTPUT_NAME, OUTPUT_U8_NAME) else OUTPUT_NAME for n in group]
                       for group in names]
        # Side by side where the runner can (OpenVINO streams: side_by_side); a group that fails
        # comes back as its exception, and must not fail the others, nor the server.
        outcomes = self.runner.run_many([_decode(b) for b in batches], graph_names)
        for indices, batch, group, outcome in zip(groups.values(), batches, names, outcomes, strict=True):
            if isinstance(outcome, Exception):
                error = pb_utils.TritonError(
                    f"{self.name}: inference failed for input {batch.shape}: {outcome}")
                for i in indices:
                    responses[i] = pb_utils.InferenceResponse(output_tensors=[], error=error)
                continue
            results = dict(zip(group, outcome, strict=True))
            start = 0
            for i in indices:
                n = inputs[i].shape[0]
                tensors = [pb_utils.Tensor(name, np.ascontiguousarray(
                    _encode(results[name][start:start + n], self.out_dtypes[name])))
                    for name in wanted[i]]
                responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
                start += n
        return responses

    def finalize(self) -> None:
        self.runner = None
        self.info = None


def _publish_info(labels: dict[str, str]):  # noqa: ANN202 - (MetricFamily, Metric) or None
    """``imdsr_model_info{model, version, instance, runtime, precision} 1`` on Triton's /metrics,
    or None where this Triton's Python backend has no custom metrics (before 23.05): the
    description output still says it. One series per instance (each resolves on its own and
    removes its own when unloaded); the caller keeps the pair: a metric goes with its family."""
    family_type = getattr(pb_utils, "MetricFamily", None)
    if family_type is None:
        return None
    family = family_type(name="imdsr_model_info", kind=family_type.GAUGE,
                         description="What a served model instance runs (always 1)")
    metric = family.Metric(labels=labels)
    metric.set(1)
    return family, metric
