"""Everything about TensorRT engines that does not need TensorRT: profile shapes and plan names.

Engines are specific to a GPU architecture and a TensorRT version, so the plan's file name carries
both (``model.sm86.trt10.5.plan``) and the model config maps compute capability -> file through
``cc_model_filenames``; one repository can then hold the engines of several node types.
"""

from __future__ import annotations

import ctypes
import os
import re
from dataclasses import dataclass
from pathlib import Path

from imdsr.contract import INPUT_NAME

_PLAN_RE = re.compile(r"^model\.sm(?P<major>\d+?)(?P<minor>\d)\.trt(?P<trt>\d+\.\d+)\.plan$")


@dataclass(frozen=True)
class Profile:
    """One optimization profile for the input: (N, 3, H, W) at min, opt and max."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]
    name: str = INPUT_NAME


def tile_profile(tile: int, max_batch: int, min_side: int = 32) -> Profile:
    """The profile the gateway's traffic needs.

    Fixed-size tiles, batched by Triton up to ``max_batch``, is the shape TensorRT tunes for (opt);
    smaller whole images down to ``min_side`` are still accepted, larger ones are tiled upstream.
    """
    if not 1 <= min_side <= tile:
        raise ValueError(f"min_side {min_side} must be within 1..tile ({tile})")
    if max_batch < 1:
        raise ValueError(f"max_batch {max_batch} must be >= 1")
    return Profile(min=(1, 3, min_side, min_side), opt=(max_batch, 3, tile, tile),
                   max=(max_batch, 3, tile, tile))


def short_trt_version(version: str) -> str:
    """'10.5.0.18' -> '10.5': engines are compatible within a minor release only, patch aside."""
    parts = version.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise ValueError(f"not a TensorRT version: {version!r}")
    return ".".join(parts[:2])


def plan_filename(compute_capability: str, trt_version: str) -> str:
    """'8.6', '10.5.0' -> 'model.sm86.trt10.5.plan'."""
    major, _, minor = compute_capability.partition(".")
    if not (major.isdigit() and minor.isdigit() and len(minor) == 1):
        raise ValueError(f"not a compute capability: {compute_capability!r}")
    return f"model.sm{major}{minor}.trt{short_trt_version(trt_version)}.plan"


def parse_plan_filename(name: str) -> tuple[str, str] | None:
    """'model.sm86.trt10.5.plan' -> ('8.6', '10.5'); None for any other name."""
    m = _PLAN_RE.match(name)
    if not m:
        return None
    return f"{int(m['major'])}.{m['minor']}", m["trt"]


def default_timing_cache(compute_capability: str, trt_version: str) -> Path:
    """Where builds on this machine share tactic timings: one cache per GPU architecture and
    TensorRT version, since a cache from another of either is rejected."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    sm = plan_filename(compute_capability, trt_version).removeprefix("model.").removesuffix(".plan")
    return root / "imdsr" / "tensorrt" / f"timing.{sm}.cache"


def cc_model_filenames(compute_capabilities: list[str], trt_version: str) -> dict[str, str]:
    return {cc: plan_filename(cc, trt_version) for cc in compute_capabilities}


def gpu_compute_capability(device: int = 0) -> str:
    """The compute capability of CUDA device ``device`` through the driver API (no torch needed).

    Works on data-centre GPUs and on Jetson alike (libcuda is part of the driver on both).
    """
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        raise RuntimeError("no CUDA driver (libcuda.so.1) on this machine") from exc
    handle = ctypes.c_int()
    major, minor = ctypes.c_int(), ctypes.c_int()
    cu_attr_major, cu_attr_minor = 75, 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_{MAJOR,MINOR}
    for call, args in (("cuInit", (0,)), ("cuDeviceGet", (ctypes.byref(handle), device)),
                       ("cuDeviceGetAttribute", (ctypes.byref(major), cu_attr_major, handle)),
                       ("cuDeviceGetAttribute", (ctypes.byref(minor), cu_attr_minor, handle))):
        status = getattr(cuda, call)(*args)
        if status != 0:
            raise RuntimeError(f"{call} failed with CUDA error {status}")
    return f"{major.value}.{minor.value}"
