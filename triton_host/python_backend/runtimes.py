"""Run an exported model behind one call: the ONNX graph on the CPU with ONNX Runtime or
OpenVINO, or (the gpu target's ``torch-cuda`` runtime) its TorchScript on a CUDA GPU with PyTorch.

Copied verbatim beside ``model.py`` into every Python-backend model (it needs numpy and the chosen
runtime only: each runtime is imported when its runner is made, so a CPU model never imports
torch), and imported by ``imdsr bench`` to time the same runners without Triton: the model
Triton serves and the model the benchmark times are one piece of code.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
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

    def run_many(self, xs: list[np.ndarray], names: list[list[str]]
                 ) -> list[list[np.ndarray] | Exception]:
        """``run`` of each input (the requests Triton handed over at once), one after the other
        unless the runner can run them side by side: each input's outputs, or the exception it
        raised (one bad input fails alone, and nothing runs twice)."""
        return [self.run_or_error(x, n) for x, n in zip(xs, names, strict=True)]

    def run_or_error(self, x: np.ndarray, names: list[str]) -> list[np.ndarray] | Exception:
        try:
            return self.run(x, names)
        except Exception as exc:  # noqa: BLE001 - the caller answers that input with it
            return exc


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


class StaticShapes:
    """Which input shapes get a compilation of their own (OpenVINO, ``OpenVinoRunner``).

    A graph compiled for one static shape runs faster than the dynamic-shape graph (c16nla at
    256 px, bf16, 2 threads: 115 vs 136 ms on the Intel AMX VM of docs/PERFORMANCE.md), but each
    compilation holds its own buffers (60-170 MiB at 256-320 px). So at most ``capacity`` shapes
    are kept, the ones seen most: a shape is compiled on its ``admit_after``-th sighting while
    there is room, and then replaces the least-seen kept shape only once seen twice as often as
    it, so that images of random sizes (buckets make them a few dozen shapes) do not recompile
    all the time; everything else runs on the dynamic graph. Counts halve every ``decay_every``
    sightings, so the kept set follows what the traffic is now.
    """

    def __init__(self, capacity: int, admit_after: int = 2, decay_every: int = 256,
                 remembered: int = 256) -> None:
        self.capacity = capacity
        self.admit_after = admit_after
        self.decay_every = decay_every
        self.remembered = remembered  # shapes counted at most (clients may send any window)
        self.hits: dict[tuple[int, ...], float] = {}
        # Kept shapes, oldest first: of two kept shapes seen as often, the older goes first.
        self.kept: dict[tuple[int, ...], None] = {}
        self._seen = 0

    def decide(self, shape: tuple[int, ...]) -> tuple[bool, tuple[int, ...] | None]:
        """Count a sighting of ``shape``; (whether it is to be compiled now, the kept shape to
        drop for it or None). A kept shape answers (False, None): it is already compiled."""
        self._seen += 1
        if self._seen % self.decay_every == 0:
            self.hits = {k: v / 2 for k, v in self.hits.items() if v >= 1 or k in self.kept}
        self.hits[shape] = self.hits.get(shape, 0.0) + 1
        if len(self.hits) > self.remembered:  # forget the rarest shape that is not kept
            rarest = min((k for k in self.hits if k not in self.kept and k != shape),
                         key=self.hits.__getitem__)
            del self.hits[rarest]
        if shape in self.kept or self.capacity <= 0 or self.hits[shape] < self.admit_after:
            return False, None
        if len(self.kept) < self.capacity:
            self.kept[shape] = None
            return True, None
        weakest = min(self.kept, key=self.hits.__getitem__)
        if self.hits[shape] < 2 * self.hits[weakest]:
            return False, None
        del self.kept[weakest]
        self.kept[shape] = None
        return True, weakest


class OpenVinoRunner(Runner):
    """One request at a time on all ``threads`` (LATENCY, one stream); with ``side_by_side`` > 1,
    a second compilation of the graph with that many streams of ``threads / side_by_side``
    threads each runs the requests Triton hands over together, one per stream; with
    ``static_shapes`` > 0, the shapes seen most get compilations of their own (``StaticShapes``),
    compiled in the background (``background``; False: at once, for tests) while the dynamic
    graph serves.

    Why two compilations: a lone request is fastest on every thread, but when the cores are shared
    (the gateway's decode and encode, other instances), one thread of a request that is preempted
    holds up the other at every layer's barrier, which spins: on the 2-core AMD VM of
    docs/PERFORMANCE.md the 2-thread graph cost 389 core-ms per 256-px window in the service at 4
    clients against 320 alone. Streams of one thread share nothing and never wait for each other.
    With static shapes on the Intel AMX VM the gain was within noise (export/serving.toml), and a
    second compilation costs its own buffers, so the shipped config keeps side_by_side = 1.
    """

    runtime = "openvino"

    def __init__(self, path: str, threads: int, spinning: bool, precision: str = "f32",
                 side_by_side: int = 1, static_shapes: int = 0, background: bool = True) -> None:
        import openvino as ov

        self._ov = ov
        self._core = ov.Core()
        self._model = self._core.read_model(path)
        self._latency = {
            "PERFORMANCE_HINT": "LATENCY",       # one request at a time per instance, all its threads
            # Always explicit: OpenVINO picks bf16 by itself on CPUs with AMX unless told f32.
            "INFERENCE_PRECISION_HINT": precision,
            "NUM_STREAMS": "1",
        }
        if threads > 0:
            self._latency["INFERENCE_NUM_THREADS"] = str(threads)
        self._streams = None
        if side_by_side > 1 and threads >= side_by_side:
            self._streams = {
                "INFERENCE_PRECISION_HINT": precision,
                "NUM_STREAMS": str(side_by_side),
                "INFERENCE_NUM_THREADS": str(threads),
                # Several compilations in one process: pinned, each would claim the same cores.
                "ENABLE_CPU_PINNING": "NO",
            }
        self._streams_count = side_by_side
        self.precision = precision
        self.static = StaticShapes(static_shapes)
        self._dynamic = self._compile(self._model)
        self.compiled = self._dynamic[0].get_compiled_model()  # the dynamic-shape graph
        self._graphs: dict[tuple[int, ...], tuple] = {}  # static shape -> (request, queue)
        self._lock = threading.Lock()
        # One compilation at a time, in the background: a request never waits for one.
        self._compiler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="openvino-compile")
        self._background = background
        self._failed: list[tuple[int, ...]] = []  # filled by the compiler, emptied by _graph

    def _compile(self, model) -> tuple:  # noqa: ANN001 - ov.Model; -> (InferRequest, queue or None)
        request = self._core.compile_model(model, "CPU", self._latency).create_infer_request()
        queue = None
        if self._streams is not None:
            queue = self._ov.AsyncInferQueue(self._core.compile_model(model, "CPU", self._streams),
                                             self._streams_count)
        return request, queue

    def _graph(self, shape: tuple[int, ...]) -> tuple:
        """The compilation that runs ``shape``: its own static one once ready, else the dynamic
        graph (while a new shape's compilation is under way, requests do not wait for it)."""
        while self._failed:  # a shape whose compilation failed stops holding a place
            self.static.kept.pop(self._failed.pop(), None)
        compile_now, drop = self.static.decide(shape)
        if drop is not None:
            with self._lock:
                self._graphs.pop(drop, None)
        if compile_now:
            job = self._compiler.submit(self._compile_static, shape)
            if not self._background:
                job.result()
        with self._lock:
            return self._graphs.get(shape, self._dynamic)

    def _compile_static(self, shape: tuple[int, ...]) -> None:
        """Compile and warm (OpenVINO sets up its kernels on the first inference) ``shape``'s
        own graph, off the request path; kept only if the shape is still wanted by then."""
        try:
            model = self._model.clone()
            model.reshape({model.inputs[0].get_any_name(): list(shape)})
            graph = self._compile(model)
            graph[0].infer({0: np.zeros(shape, np.float32)})
        except Exception:  # noqa: BLE001 - the dynamic graph goes on serving the shape
            self._failed.append(shape)
            return
        with self._lock:
            if shape in self.static.kept:
                self._graphs[shape] = graph

    def wait_compiled(self) -> None:
        """Until every compilation asked for so far is done (tests, benchmarks)."""
        self._compiler.submit(lambda: None).result()

    def static_shapes_kept(self) -> list[tuple[int, ...]]:
        with self._lock:
            return sorted(self._graphs)

    def run(self, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
        request, _ = self._graph(x.shape)
        request.infer({0: x})
        return self._copies(request, names)

    def _copies(self, request, names: list[str]) -> list[np.ndarray]:  # noqa: ANN001 - ov.InferRequest
        # Copies: the request's buffers are reused by the next call.
        return [np.array(request.get_tensor(n).data) for n in names]

    def run_many(self, xs: list[np.ndarray], names: list[list[str]]
                 ) -> list[list[np.ndarray] | Exception]:
        if self._streams is None or len(xs) < 2:
            return super().run_many(xs, names)
        # Side by side per shape (one queue per compilation), in rounds of one request per
        # stream, so that no stream idles while another finishes; a last one alone goes on every
        # thread.
        results: list[list[np.ndarray] | Exception | None] = [None] * len(xs)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, x in enumerate(xs):
            by_shape.setdefault(x.shape, []).append(i)
        width = self._streams_count
        for shape, indices in by_shape.items():
            for start in range(0, len(indices), width):
                part = indices[start:start + width]
                if len(part) == 1:
                    results[part[0]] = self.run_or_error(xs[part[0]], names[part[0]])
                    continue
                try:
                    _, queue = self._graph(shape)
                    outcomes = self._side_by_side(queue, [xs[i] for i in part], [names[i] for i in part])
                except Exception:  # noqa: BLE001 - that round again one by one: a bad one fails alone
                    outcomes = [self.run_or_error(xs[i], names[i]) for i in part]
                for i, outcome in zip(part, outcomes, strict=True):
                    results[i] = outcome
        return results  # type: ignore[return-value] - every index was filled above

    def _side_by_side(self, queue, xs: list[np.ndarray],  # noqa: ANN001 - ov.AsyncInferQueue
                      names: list[list[str]]) -> list[list[np.ndarray]]:
        results: list[list[np.ndarray] | None] = [None] * len(xs)

        def done(request, i: int) -> None:  # noqa: ANN001 - ov.InferRequest, in OpenVINO's thread
            results[i] = self._copies(request, names[i])

        queue.set_callback(done)
        for i, x in enumerate(xs):
            queue.start_async({0: x}, i)
        queue.wait_all()
        if any(r is None for r in results):
            raise RuntimeError("OpenVINO returned no output for a request run side by side")
        return results


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
                precision: str = "f32", device: str = "cuda", side_by_side: int = 1,
                static_shapes: int = 0) -> Runner:
    """``device`` applies to torch-cuda only (``cuda``, ``cuda:N``; ``cpu`` to rehearse);
    ``precision`` may be "auto" (``resolve_precision``); the runner's ``precision`` says what;
    ``side_by_side``, ``static_shapes``: OpenVINO only (``OpenVinoRunner``)."""
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
        return OpenVinoRunner(path, threads, spinning, precision, side_by_side, static_shapes)
    if runtime == "torch-cuda":
        if precision == "bf16":
            raise ValueError("torch-cuda runs f32 or fp16, not bf16")
        return TorchRunner(path, device, precision)
    raise ValueError(f"unknown CPU runtime {runtime!r}; known: {', '.join(RUNTIMES)} "
                     f"(and {', '.join(GPU_RUNTIMES)} on a GPU)")
