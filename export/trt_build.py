"""ONNX -> TensorRT engine through TensorRT's Python API (no trtexec).

Runs only where CUDA and TensorRT exist (an NGC container, a Jetson, a GPU node's init step);
``tensorrt`` is imported inside ``build_engine`` so the rest of ``export`` imports anywhere.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from export.trt_plan import (
    Profile,
    default_timing_cache,
    gpu_compute_capability,
    plan_filename,
    short_trt_version,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildRequest:
    onnx: Path
    profile: Profile
    fp16: bool = False
    workspace_mb: int = 1024
    # Read if present, written back after the build; None: the per-GPU default under ~/.cache.
    timing_cache: Path | None = None


@dataclass(frozen=True)
class BuildResult:
    plan: Path
    compute_capability: str
    trt_version: str
    timing_cache: Path


def resolve_output(out: Path, compute_capability: str, trt_version: str) -> Path:
    """``out`` itself when it names a ``.plan`` file, else the standard name inside directory ``out``."""
    if out.suffix == ".plan":
        return out
    return out / plan_filename(compute_capability, trt_version)


def build_engine(req: BuildRequest, out: Path) -> BuildResult:
    import tensorrt as trt

    cc = gpu_compute_capability()
    version = short_trt_version(trt.__version__)
    cache_path = req.timing_cache or default_timing_cache(cc, version)
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    # Explicit batch is the only mode in TensorRT 10 (the flag is gone); 8.x needs it set.
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(req.onnx)):
        errors = "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {req.onnx}:\n{errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, req.workspace_mb << 20)
    if req.fp16:
        if not builder.platform_has_fast_fp16:
            log.warning("this GPU has no fast FP16; building anyway as asked")
        # I/O tensors stay FP32 (the wire contract); only the layers inside run in FP16.
        config.set_flag(trt.BuilderFlag.FP16)

    profile = builder.create_optimization_profile()
    p = req.profile
    profile.set_shape(p.name, p.min, p.opt, p.max)
    config.add_optimization_profile(profile)

    # The timing cache holds per-layer tactic timings; reusing it makes rebuilds (another variant,
    # the same variant after a weights update) take seconds instead of minutes.
    cache_bytes = cache_path.read_bytes() if cache_path.exists() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {req.onnx}")

    plan = resolve_output(out, cc, version)
    plan.parent.mkdir(parents=True, exist_ok=True)
    plan.write_bytes(memoryview(serialized))
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    cache_path.write_bytes(memoryview(config.get_timing_cache().serialize()))
    return BuildResult(plan, cc, version, cache_path)
