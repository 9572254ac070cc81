"""ONNX -> TensorRT engine, with TensorRT's Python API or with the image's own ``trtexec``.

Runs only where CUDA and TensorRT exist (the NGC TensorRT container, a Jetson); ``tensorrt`` is
imported inside the builders so the rest of ``export`` imports anywhere. Both builders share the
timing-cache rules: a cache from another GPU or TensorRT build (or a damaged one) is replaced by an
empty cache rather than failing the build, and the shared file is only ever replaced atomically.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from export.trt_plan import Profile, atomic_write_bytes

log = logging.getLogger(__name__)

Builder = Literal["api", "trtexec"]
BUILDERS: tuple[Builder, ...] = ("api", "trtexec")
TRTEXEC_PLACES = ("/usr/src/tensorrt/bin/trtexec", "/opt/tensorrt/bin/trtexec")


class BuildError(RuntimeError):
    """The engine could not be built; the message says why."""


@dataclass(frozen=True)
class BuildRequest:
    onnx: Path
    profile: Profile
    fp16: bool = False
    workspace_mb: int = 1024
    # Shared tactic timings (read if present, replaced atomically after the build); None: none.
    timing_cache: Path | None = None


# --------------------------------------------------------------------------- TensorRT version
def find_trtexec() -> str | None:
    return shutil.which("trtexec") or next((p for p in TRTEXEC_PLACES if os.access(p, os.X_OK)), None)


def parse_trtexec_banner(text: str) -> str | None:
    """'[TensorRT v100500] [b18]' -> '10.5.0.18' (TensorRT 10 prints the build; 8.x may not)."""
    match = re.search(r"TensorRT v(\d+)\](?:\s*\[b(\d+)\])?", text)
    if not match:
        return None
    n = int(match.group(1))
    major_unit = 10000 if n >= 100000 else 1000  # 10.x: 100500; 8.x: 8601
    version = f"{n // major_unit}.{n % major_unit // 100}.{n % 100}"
    return f"{version}.{match.group(2)}" if match.group(2) else version


def clean_version(version: str) -> str:
    """NGC images declare e.g. '8.6.1.2+cuda12.0.1.011' or '10.11.0.33+jp6': the build is before '+'."""
    return version.strip().split("+", 1)[0]


def _trtexec_version(trtexec: str) -> str | None:
    out = subprocess.run([trtexec, "--help"], capture_output=True, text=True, timeout=120)
    return parse_trtexec_banner(out.stdout + out.stderr)


def detect_trt_version(builder: Builder) -> str | None:
    """The full TensorRT version of this environment, or None when there is no TensorRT.

    In order: the Python bindings, the NGC image's ``TRT_VERSION`` (which carries the build
    number that ``trtexec`` does not print), then ``trtexec``'s banner.
    """
    if builder == "api":
        try:
            import tensorrt
        except ImportError:
            return None
        return clean_version(tensorrt.__version__)
    if os.environ.get("TRT_VERSION", "").strip():
        return clean_version(os.environ["TRT_VERSION"])
    trtexec = find_trtexec()
    return _trtexec_version(trtexec) if trtexec else None


def versions_match(detected: str, expected: str) -> bool:
    """Equal as far as both go: '10.5.0' (trtexec's banner) matches '10.5.0.18'; '10.5.0.17' does not."""
    a, b = detected.split("."), expected.split(".")
    n = min(len(a), len(b))
    return n >= 3 and a[:n] == b[:n]


# --------------------------------------------------------------------------- timing cache
def _private_cache(req: BuildRequest, work: Path) -> Path | None:
    """A private copy of the shared timing cache to build with, so that no reader ever sees a
    cache half-written by this build; None when there is no cache to start from."""
    if req.timing_cache is None or not req.timing_cache.is_file():
        return None
    copy = work / "timing.cache"
    shutil.copyfile(req.timing_cache, copy)
    return copy


def _publish_cache(req: BuildRequest, private: Path) -> None:
    if req.timing_cache is not None and private.is_file() and private.stat().st_size > 0:
        atomic_write_bytes(req.timing_cache, private.read_bytes())


# --------------------------------------------------------------------------- builders
def trtexec_command(trtexec: str, req: BuildRequest, plan: Path, timing_cache: Path | None) -> list[str]:
    def dims(shape: tuple[int, ...]) -> str:
        return f"{req.profile.name}:" + "x".join(map(str, shape))

    cmd = [trtexec, f"--onnx={req.onnx}", f"--saveEngine={plan}", "--skipInference",
           f"--minShapes={dims(req.profile.min)}", f"--optShapes={dims(req.profile.opt)}",
           f"--maxShapes={dims(req.profile.max)}", f"--memPoolSize=workspace:{req.workspace_mb}M"]
    if req.fp16:
        cmd.append("--fp16")  # layers in FP16; I/O stays FP32 (the wire contract)
    if timing_cache is not None:
        cmd.append(f"--timingCacheFile={timing_cache}")
    return cmd


def build_with_trtexec(req: BuildRequest, plan: Path, work: Path) -> None:
    trtexec = find_trtexec()
    if trtexec is None:
        raise BuildError("no trtexec in this image (looked on PATH and in "
                         f"{', '.join(TRTEXEC_PLACES)}); use the TensorRT container")
    plan.parent.mkdir(parents=True, exist_ok=True)
    private = _private_cache(req, work) or (work / "timing.cache" if req.timing_cache else None)
    proc = subprocess.run(trtexec_command(trtexec, req, plan, private), capture_output=True, text=True)
    if proc.returncode != 0 and private is not None and private.exists():
        # A cache from another GPU/TensorRT (or a damaged one) fails the build: retry without it.
        log.warning("trtexec failed with the timing cache %s; retrying with an empty cache",
                    req.timing_cache)
        private.unlink()
        proc = subprocess.run(trtexec_command(trtexec, req, plan, private), capture_output=True,
                              text=True)
    if proc.returncode != 0:
        raise BuildError(f"trtexec failed ({proc.returncode}) on {req.onnx}:\n{proc.stdout[-4000:]}"
                         f"{proc.stderr[-4000:]}")
    if private is not None:
        _publish_cache(req, private)


def build_with_api(req: BuildRequest, plan: Path) -> None:
    import tensorrt as trt

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
        raise BuildError(f"TensorRT could not parse {req.onnx}:\n{errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, req.workspace_mb << 20)
    if req.fp16:
        if not builder.platform_has_fast_fp16:
            log.warning("this GPU has no fast FP16; building anyway as asked")
        config.set_flag(trt.BuilderFlag.FP16)  # I/O tensors stay FP32 (the wire contract)

    profile = builder.create_optimization_profile()
    p = req.profile
    profile.set_shape(p.name, p.min, p.opt, p.max)
    config.add_optimization_profile(profile)

    # Tactic timings make rebuilds (another variant, new weights) take seconds, not minutes.
    cached = req.timing_cache.read_bytes() if req.timing_cache and req.timing_cache.is_file() else b""
    try:
        cache = config.create_timing_cache(cached)
        accepted = config.set_timing_cache(cache, ignore_mismatch=False)
    except Exception:  # a damaged file: TensorRT raises on deserialisation
        accepted = False
    if not accepted:
        log.warning("timing cache %s does not fit this GPU/TensorRT; starting from an empty one",
                    req.timing_cache)
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError(f"TensorRT failed to build an engine from {req.onnx}")
    atomic_write_bytes(plan, memoryview(serialized))
    if req.timing_cache is not None:
        atomic_write_bytes(req.timing_cache, memoryview(config.get_timing_cache().serialize()))


def build_engine(req: BuildRequest, plan: Path, builder: Builder, work: Path) -> None:
    """Build ``plan`` from ``req`` with ``builder``; ``work`` is a private scratch folder."""
    if builder == "trtexec":
        build_with_trtexec(req, plan, work)
    else:
        build_with_api(req, plan)
