"""``imdsr export plans``: TensorRT plans for this node, behind a persistent cache, then the model
repository Triton loads. What the GPU and Jetson pods' ``build-plans`` initContainer runs.

An engine loads only on the GPU model it was tuned for and under the exact TensorRT build that
made it. So, in order:

1. the TensorRT here must be the serving image's (``tensorrt_version`` of the target in the
   serving config): anything else is refused before any work;
2. plans are kept under a key of GPU name + compute capability + full TensorRT version +
   precision + window + max batch + ONNX digest: a restart, or another replica on the same kind
   of GPU, finds its key and builds nothing; a mixed node pool gets one entry per GPU model;
3. the repository is written by the same code as every other target (``export/repo.py``), with
   each model's ``cc_model_filenames`` naming this node's plan.

``dry_run`` does all of it except the TensorRT build itself (the plan files are placeholders and
the cache key says so), which is how CI runs the initContainer's exact command on a CPU machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from export.repo import ModelSource, write_repository
from export.serving import ServingConfig, Target
from export.trt_build import Builder, BuildRequest, build_engine, detect_trt_version, versions_match
from export.trt_plan import Gpu, detect_gpu, engine_profile, plan_filename, slug, timing_cache_path
from training.models.registry import triton_name
from training.weights.store import shipped_weights

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CACHE_KEY_FILE = "PLAN_CACHE_KEY"
TIMING_DIR = ".timing"
STALE_BUILD_S = 6 * 3600  # a .build-* folder this old belongs to a pod that died mid-build
DRY_RUN_PLAN = b"imdsr export plans --dry-run: placeholder, not a TensorRT engine\n"


class PlanError(RuntimeError):
    """A setting, an image or a node that cannot produce plans; the message says which."""


@dataclass(frozen=True)
class PlanJob:
    target: Target
    variants: list[str]
    onnx_dir: Path
    cache_root: Path
    repo_dir: Path
    serving: ServingConfig
    serving_path: Path | None = None
    fp16: bool | None = None  # None: the target's `fp16` in the serving config
    builder: Builder = "trtexec"
    dry_run: bool = False

    def onnx(self, variant: str) -> Path:
        return self.onnx_dir / f"{triton_name(variant)}.onnx"

    @property
    def precision(self) -> str:
        fp16 = self.serving.trt_target(self.target).fp16 if self.fp16 is None else self.fp16
        return "fp16" if fp16 else "fp32"


@dataclass(frozen=True)
class PlansResult:
    key: str
    cache_hit: bool
    cache_dir: str
    repository: str
    plan: str
    gpu: str
    compute_capability: str
    tensorrt: str
    precision: str
    dry_run: bool

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


# --------------------------------------------------------------------------- checks
def resolve_trt_version(job: PlanJob) -> str:
    """The serving image's TensorRT version, after checking that this image has the same build."""
    expected = job.serving.trt_target(job.target).tensorrt_version
    detected = detect_trt_version(job.builder)
    if detected is None:
        if job.dry_run:
            log.warning("dry run: no TensorRT here; assuming the serving image's %s", expected)
            return expected
        raise PlanError(f"no TensorRT here (builder {job.builder}: no tensorrt module, no TRT_VERSION, "
                        "no trtexec): run in the export image, built FROM the TensorRT container "
                        "of the Triton image's release")
    if not versions_match(detected, expected):
        raise PlanError(
            f"this image's TensorRT is {detected}, but Triton serves with {expected} "
            f"([{job.target}] tensorrt_version in {job.serving_path or 'the serving config'}): a plan "
            "built here would not load. Build the export image FROM the TensorRT container of the "
            "same NGC release as the Triton image, or update tensorrt_version with the Triton image")
    return expected


def resolve_gpu(job: PlanJob, name: str | None, compute_capability: str | None) -> Gpu:
    """This node's GPU (given values override detection; a dry run needs no GPU)."""
    if name and compute_capability:
        return Gpu(name, compute_capability)
    if job.dry_run:
        capabilities = job.serving.trt_target(job.target).compute_capabilities
        return Gpu(name or "dry-run", compute_capability or (capabilities or ["8.6"])[0])
    try:
        found = detect_gpu()
    except RuntimeError as exc:
        raise PlanError(str(exc)) from exc
    return Gpu(name or found.name, compute_capability or found.compute_capability)


def onnx_digest(job: PlanJob) -> str:
    digest = hashlib.sha256()
    for variant in sorted(job.variants):
        path = job.onnx(variant)
        if not path.is_file():
            raise PlanError(f"missing ONNX for {variant}: {path}")
        digest.update(variant.encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def cache_key(job: PlanJob, gpu: Gpu, trt_version: str, digest: str) -> str:
    parts = [slug(gpu.name), f"sm{slug(gpu.compute_capability)}", f"trt{slug(trt_version)}",
             job.precision, f"w{job.serving.window}", f"b{job.serving.max_batch_for(job.target)}",
             f"onnx{digest}"]
    if job.dry_run:  # placeholders must never be found by a real build
        parts.append("dryrun")
    return "_".join(parts)


# --------------------------------------------------------------------------- building
def _build_all(job: PlanJob, work: Path, plan_name: str, gpu: Gpu, trt_version: str) -> None:
    target = job.serving.trt_target(job.target)
    timing = timing_cache_path(job.cache_root / TIMING_DIR, gpu.name, gpu.compute_capability,
                               trt_version)
    for variant in job.variants:
        profile = engine_profile(job.serving.window_limits(variant),
                                 job.serving.max_batch_for(job.target))
        plan = work / triton_name(variant) / plan_name
        plan.parent.mkdir(parents=True, exist_ok=True)
        if job.dry_run:
            plan.write_bytes(DRY_RUN_PLAN)
            continue
        log.info("building %s (%s, profile min %s opt %s max %s)", plan.name, job.precision,
                 profile.min, profile.opt, profile.max)
        request = BuildRequest(job.onnx(variant), profile, job.precision == "fp16",
                               target.workspace_mb, timing)
        scratch = work / f".scratch-{variant}"
        scratch.mkdir()
        try:
            build_engine(request, plan, job.builder, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if not plan.is_file() or plan.stat().st_size == 0:
            raise PlanError(f"the {job.builder} builder left no plan at {plan}")


def ensure_plans(job: PlanJob, key: str, plan_name: str, meta: dict[str, object],
                 gpu: Gpu, trt_version: str) -> tuple[Path, bool]:
    """(cache folder with ``<model>/<plan_name>`` for every variant, cache hit?).

    Built in a private ``.build-*`` folder and renamed into place: concurrent pods on a shared
    volume see a complete entry or none.
    """
    final = job.cache_root / key
    manifest = final / MANIFEST
    if manifest.is_file() and all((final / triton_name(v) / plan_name).is_file() for v in job.variants):
        log.info("cache hit: %s", final)
        return final, True
    job.cache_root.mkdir(parents=True, exist_ok=True)
    for stale in job.cache_root.glob(".build-*"):
        if time.time() - stale.stat().st_mtime > STALE_BUILD_S:
            shutil.rmtree(stale, ignore_errors=True)
    work = job.cache_root / f".build-{key}-{os.getpid()}-{time.time_ns()}"
    work.mkdir(parents=True)
    try:
        log.info("cache miss: building %d plan(s) for %s", len(job.variants), key)
        _build_all(job, work, plan_name, gpu, trt_version)
        (work / MANIFEST).write_text(json.dumps(
            {**meta, "variants": job.variants, "built_at": int(time.time())}, indent=2) + "\n")
        if final.exists() and not manifest.is_file():  # leftovers of an interrupted build
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(work, final)
        except OSError:
            if not manifest.is_file():
                raise
            log.info("another pod finished %s first; using its plans", key)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final, False


def write_plan_repository(job: PlanJob, plans: Path, plan_name: str, key: str) -> None:
    """The model repository with this node's plans; each model must name ``plan_name``."""
    sources = [ModelSource(v, shipped_weights(v)) for v in job.variants]
    write_repository(job.repo_dir, job.target, sources, job.serving, plans)
    for variant in job.variants:
        model_dir = job.repo_dir / triton_name(variant)
        config = (model_dir / "config.pbtxt").read_text()
        if not (model_dir / "1" / plan_name).is_file() or f'"{plan_name}"' not in config:
            raise PlanError(f"{model_dir} does not serve {plan_name}")
    (job.repo_dir / CACHE_KEY_FILE).write_text(key + "\n")


def run_plans(job: PlanJob, gpu_name: str | None = None, gpu_cc: str | None = None) -> PlansResult:
    if not job.variants:
        raise PlanError("no variants to build")
    runtime = job.serving.trt_target(job.target).runtime
    if runtime != "tensorrt":
        raise PlanError(f"[{job.target}] runtime = \"{runtime}\" serves no TensorRT plans: write its "
                        f"repository with `imdsr export repo --target {job.target}`")
    trt_version = resolve_trt_version(job)
    gpu = resolve_gpu(job, gpu_name, gpu_cc)
    capabilities = job.serving.trt_target(job.target).compute_capabilities
    if gpu.compute_capability not in capabilities:
        log.warning("compute capability %s is not among [%s] compute_capabilities %s; serving it "
                    "anyway with the plan built here", gpu.compute_capability, job.target, capabilities)
    key = cache_key(job, gpu, trt_version, onnx_digest(job))
    plan_name = plan_filename(gpu.compute_capability, trt_version)
    log.info("GPU %s (sm %s), TensorRT %s, key %s", gpu.name, gpu.compute_capability, trt_version, key)
    meta = {"gpu": gpu.name, "compute_capability": gpu.compute_capability, "tensorrt": trt_version,
            "precision": job.precision, "window": job.serving.window,
            "max_batch": job.serving.max_batch_for(job.target), "builder": job.builder,
            "dry_run": job.dry_run}
    plans, hit = ensure_plans(job, key, plan_name, meta, gpu, trt_version)
    write_plan_repository(job, plans, plan_name, key)
    return PlansResult(key, hit, str(plans), str(job.repo_dir), plan_name, gpu.name,
                       gpu.compute_capability, trt_version, job.precision, job.dry_run)
