"""Everything about TensorRT engines that does not need TensorRT: profiles, plan names, the GPU.

An engine loads only on the GPU architecture and under the exact TensorRT build that made it, so a
plan's file name carries both (``model.sm86.trt10.5.0.18.plan``) and each model config maps
compute capability -> file through ``cc_model_filenames``; one repository can then hold the
engines of several node types, and a plan from another TensorRT build is never named.
"""

from __future__ import annotations

import ctypes
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from imdsr.contract import INPUT_NAME
from imdsr.imaging.windows import WindowLimits

_PLAN_RE = re.compile(r"^model\.sm(?P<major>\d+?)(?P<minor>\d)\.trt(?P<trt>\d+(?:\.\d+){2,3})\.plan$")
_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(\.\d+)?$")


@dataclass(frozen=True)
class Profile:
    """One optimization profile for the input: (N, 3, H, W) at min, opt and max."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]
    name: str = INPUT_NAME

    def admits(self, batch: int, height: int, width: int) -> bool:
        shape = (batch, 3, height, width)
        return all(lo <= v <= hi for lo, v, hi in zip(self.min, shape, self.max, strict=True))


def engine_profile(limits: WindowLimits, max_batch: int) -> Profile:
    """The profile of every window the gateway can send (``WindowLimits``), batched up to
    ``max_batch``. TensorRT tunes for ``opt``: full windows in full batches, the shape of load."""
    if max_batch < 1:
        raise ValueError(f"max_batch {max_batch} must be >= 1")
    lo, hi = limits.min_side, limits.max_side
    return Profile(min=(1, 3, lo, lo), opt=(max_batch, 3, hi, hi), max=(max_batch, 3, hi, hi))


def check_trt_version(version: str) -> str:
    """``version`` if it is a full TensorRT version (10.5.0 or 10.5.0.18), else ValueError."""
    if not _VERSION_RE.match(version):
        raise ValueError(f"not a full TensorRT version (like 10.5.0.18): {version!r}")
    return version


def plan_filename(compute_capability: str, trt_version: str) -> str:
    """'8.6', '10.5.0.18' -> 'model.sm86.trt10.5.0.18.plan'."""
    major, _, minor = compute_capability.partition(".")
    if not (major.isdigit() and minor.isdigit() and len(minor) == 1):
        raise ValueError(f"not a compute capability: {compute_capability!r}")
    return f"model.sm{major}{minor}.trt{check_trt_version(trt_version)}.plan"


def parse_plan_filename(name: str) -> tuple[str, str] | None:
    """'model.sm86.trt10.5.0.18.plan' -> ('8.6', '10.5.0.18'); None for any other name."""
    m = _PLAN_RE.match(name)
    if not m:
        return None
    return f"{int(m['major'])}.{m['minor']}", m["trt"]


def cc_model_filenames(compute_capabilities: list[str], trt_version: str) -> dict[str, str]:
    return {cc: plan_filename(cc, trt_version) for cc in compute_capabilities}


def slug(text: str) -> str:
    """A file-name-safe form of a GPU name or version: 'NVIDIA A10G' -> 'nvidia-a10g'."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "unknown"


def timing_cache_path(root: Path, gpu_name: str, compute_capability: str, trt_version: str) -> Path:
    """One tactic-timing cache per GPU model and TensorRT build.

    Keyed by the GPU's name, not only its compute capability: A10G and A40 are both 8.6, L4 and
    L40S both 8.9, and timings measured on one are wrong for the other.
    """
    return root / f"timing_{slug(gpu_name)}_sm{slug(compute_capability)}_trt{slug(trt_version)}.cache"


def default_timing_cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "imdsr" / "tensorrt"


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write ``path`` through a temporary sibling and a rename: readers (other pods on a shared
    volume) see the old file or the new one, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: str


def detect_gpu(device: int = 0) -> Gpu:
    """Name and compute capability of CUDA device ``device`` through the driver API.

    No torch and no nvidia-smi needed: libcuda is part of the driver on data-centre GPUs and on
    Jetson alike (where nvidia-smi reports no compute capability).
    """
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        raise RuntimeError("no CUDA driver (libcuda.so.1) on this machine: is the pod on a GPU node, "
                           "with nvidia.com/gpu requested?") from exc
    handle = ctypes.c_int()
    major, minor = ctypes.c_int(), ctypes.c_int()
    name = ctypes.create_string_buffer(256)
    cu_attr_major, cu_attr_minor = 75, 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_{MAJOR,MINOR}
    for call, args in (("cuInit", (0,)), ("cuDeviceGet", (ctypes.byref(handle), device)),
                       ("cuDeviceGetName", (name, len(name), handle)),
                       ("cuDeviceGetAttribute", (ctypes.byref(major), cu_attr_major, handle)),
                       ("cuDeviceGetAttribute", (ctypes.byref(minor), cu_attr_minor, handle))):
        status = getattr(cuda, call)(*args)
        if status != 0:
            raise RuntimeError(f"{call} failed with CUDA error {status}")
    return Gpu(name.value.decode(errors="replace"), f"{major.value}.{minor.value}")
