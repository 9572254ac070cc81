#!/usr/bin/env python3
"""Build imdsr's TensorRT plans on the node that runs them, behind a persistent cache.

Runs as the ``build-plans`` initContainer of the Triton pod (overlays ``gpu`` and ``jetson``).
A TensorRT plan only loads on the GPU architecture and the TensorRT version that built it, so
plans are built here, on the node, and kept on a volume under a key made of

    GPU model + compute capability + TensorRT version + precision + tile + max batch + ONNX digest

A restart (or a second replica on the same kind of GPU) finds its key and builds nothing; a
node pool with another GPU, a new TensorRT or new ONNX files gets a key of its own.

Then ``imdsr export repo --target gpu|jetson --plans <cache>/<key>`` writes the Triton model
repository: each model's config.pbtxt maps this GPU's compute capability to its plan
(``cc_model_filenames`` -> ``model.sm86.trt10.5.plan``), beside the ONNX it came from.

Standard library only (tomllib where present), Python >= 3.10. Settings, from the environment
(ConfigMap ``imdsr-plans``) and the serving config (ConfigMap ``imdsr-serving``):

  IMDSR_TARGET            gpu | jetson                              (required)
  IMDSR_SERVING_CONFIG    the serving TOML: tile, max_batch, fp16 for the target; handed to
                          ``imdsr export repo`` too                 (default /etc/imdsr/serving.toml)
  IMDSR_VARIANTS          comma list, default "c16nla,c4"
  IMDSR_ONNX_DIR          holds imdeception_<variant>.onnx           (default /opt/imdsr/onnx)
  IMDSR_PLAN_CACHE        cache root, a persistent volume            (default /var/cache/imdsr/plans)
  IMDSR_REPO_DIR          the model repository Triton loads; its parent must be writable
                          (``export repo`` swaps a sibling folder in) (default /models/repo)
  IMDSR_TILE, IMDSR_MAX_BATCH, IMDSR_PRECISION (fp16|fp32)   override the serving config
  IMDSR_PLAN_BUILDER      imdsr (``imdsr export trt``) | trtexec     (default imdsr)
  IMDSR_EXPORT_REPO_ARGS  extra arguments for ``imdsr export repo``
  IMDSR_GPU_MODEL, IMDSR_GPU_CC, IMDSR_TRT_VERSION   override detection
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

MODEL_PREFIX = "imdeception_"
MANIFEST = "manifest.json"
STALE_BUILD_S = 6 * 3600  # a .build-* directory this old belongs to a pod that died


class PlanError(RuntimeError):
    """A setting or a node that cannot produce plans."""


def log(message: str) -> None:
    print(f"[build-plans] {message}", file=sys.stderr, flush=True)


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, "").strip()
    if value:
        return value
    if default is None:
        raise PlanError(f"{name} is required")
    return default


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "unknown"


# --------------------------------------------------------------------------- detection
def _gpu_from_nvidia_smi() -> tuple[str, str] | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    first = out.strip().splitlines()[0] if out.strip() else ""
    if "," not in first:
        return None
    name, cc = (part.strip() for part in first.split(",", 1))
    if not re.fullmatch(r"\d+\.\d", cc):  # e.g. "[N/A]" on Jetson: ask libcuda instead
        return None
    return name, cc


def _gpu_from_libcuda() -> tuple[str, str] | None:
    """Ask the CUDA driver directly: works on Jetson, where nvidia-smi tells little."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    device = ctypes.c_int()
    name = ctypes.create_string_buffer(256)
    major, minor = ctypes.c_int(), ctypes.c_int()
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGet(ctypes.byref(device), 0) != 0:
        return None
    if cuda.cuDeviceGetName(name, len(name), device) != 0:
        return None
    # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, _MINOR = 76
    cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, device)
    cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, device)
    return name.value.decode(errors="replace"), f"{major.value}.{minor.value}"


def detect_gpu() -> tuple[str, str]:
    model = os.environ.get("IMDSR_GPU_MODEL", "").strip()
    if model:
        return model, os.environ.get("IMDSR_GPU_CC", "").strip() or "unknown"
    for probe in (_gpu_from_nvidia_smi, _gpu_from_libcuda):
        found = probe()
        if found:
            return found
    raise PlanError("no GPU visible (nvidia-smi and libcuda.so.1 both failed): is the pod on a GPU "
                    "node, with nvidia.com/gpu requested and the nvidia runtime class?")


def _find_trtexec() -> str | None:
    return shutil.which("trtexec") or next(
        (p for p in ("/usr/src/tensorrt/bin/trtexec", "/opt/tensorrt/bin/trtexec")
         if os.access(p, os.X_OK)), None)


def detect_trt_version() -> str:
    version = os.environ.get("IMDSR_TRT_VERSION", "").strip()
    if version:
        return version
    # the image's Python first, then the system one (JetPack: TensorRT bindings for 3.10 only)
    for python in (sys.executable, "python3", "/usr/bin/python3"):
        try:
            out = subprocess.run([python, "-c", "import tensorrt; print(tensorrt.__version__)"],
                                 capture_output=True, text=True, timeout=60)
        except (subprocess.SubprocessError, OSError):
            continue
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    trtexec = _find_trtexec()
    if trtexec:
        out = subprocess.run([trtexec, "--help"], capture_output=True, text=True, timeout=60)
        match = re.search(r"TensorRT v(\d+)", out.stdout + out.stderr)
        if match:  # e.g. v100300 -> 10.3.0
            n = int(match.group(1))
            return f"{n // 10000}.{n // 100 % 100}.{n % 100}"
    raise PlanError("cannot tell the TensorRT version (no tensorrt module, no trtexec); "
                    "set IMDSR_TRT_VERSION")


# --------------------------------------------------------------------------- settings
def read_serving(path: str, target: str) -> dict[str, object]:
    """tile, max_batch and fp16 for ``target`` from the serving TOML ({} when unreadable)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: settings come from the environment only
        return {}
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError:
        return {}
    section = data.get(target, {})
    out: dict[str, object] = {}
    if "tile" in data:
        out["tile"] = int(data["tile"])
    max_batch = section.get("max_batch") or data.get("max_batch")
    if max_batch:
        out["max_batch"] = int(max_batch)
    if "fp16" in section:
        out["precision"] = "fp16" if section["fp16"] else "fp32"
    if "min_side" in section:
        out["min_side"] = int(section["min_side"])
    return out


class Settings:
    def __init__(self) -> None:
        self.target = env("IMDSR_TARGET")
        if self.target not in ("gpu", "jetson"):
            raise PlanError(f"IMDSR_TARGET must be gpu or jetson, not {self.target!r}")
        self.serving_config = env("IMDSR_SERVING_CONFIG", "/etc/imdsr/serving.toml")
        serving = read_serving(self.serving_config, self.target)
        self.variants = [v.strip() for v in env("IMDSR_VARIANTS", "c16nla,c4").split(",") if v.strip()]
        self.onnx_dir = Path(env("IMDSR_ONNX_DIR", "/opt/imdsr/onnx"))
        self.cache_root = Path(env("IMDSR_PLAN_CACHE", "/var/cache/imdsr/plans"))
        self.repo_dir = Path(env("IMDSR_REPO_DIR", "/models/repo"))
        self.tile = int(env("IMDSR_TILE", str(serving.get("tile", 320))))
        self.max_batch = int(env("IMDSR_MAX_BATCH", str(serving.get("max_batch", 8))))
        self.precision = env("IMDSR_PRECISION", str(serving.get("precision", "fp16")))
        self.min_side = int(serving.get("min_side", 32))
        if self.precision not in ("fp16", "fp32"):
            raise PlanError(f"IMDSR_PRECISION must be fp16 or fp32, not {self.precision!r}")
        self.builder = env("IMDSR_PLAN_BUILDER", "imdsr")
        if self.builder not in ("imdsr", "trtexec"):
            raise PlanError(f"IMDSR_PLAN_BUILDER must be imdsr or trtexec, not {self.builder!r}")
        self.repo_args = os.environ.get("IMDSR_EXPORT_REPO_ARGS", "").strip()

    def onnx(self, variant: str) -> Path:
        return self.onnx_dir / f"{MODEL_PREFIX}{variant}.onnx"


def plan_filename(compute_capability: str, trt_version: str) -> str:
    """The project's plan name (export/trt_plan.py): '8.6', '10.5.0.18' -> model.sm86.trt10.5.plan."""
    major, _, minor = compute_capability.partition(".")
    short = ".".join(trt_version.split(".")[:2])
    return f"model.sm{major}{minor}.trt{short}.plan"


def onnx_digest(settings: Settings) -> str:
    digest = hashlib.sha256()
    for variant in sorted(settings.variants):
        path = settings.onnx(variant)
        if not path.is_file():
            raise PlanError(f"missing ONNX for {variant}: {path}")
        digest.update(variant.encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def cache_key(settings: Settings, gpu: tuple[str, str], trt: str, digest: str) -> str:
    name, cc = gpu
    return "_".join([slug(name), f"sm{slug(cc)}", f"trt{slug(trt)}", settings.precision,
                     f"t{settings.tile}", f"b{settings.max_batch}", f"onnx{digest}"])


# --------------------------------------------------------------------------- building
def build_plan(settings: Settings, variant: str, out_dir: Path, plan_name: str) -> Path:
    onnx = settings.onnx(variant)
    out_dir.mkdir(parents=True, exist_ok=True)
    if settings.builder == "imdsr":
        # -o a directory: `imdsr export trt` names the plan itself (model.sm<cc>.trt<ver>.plan)
        cmd = ["imdsr", "export", "trt", "--onnx", str(onnx), "--tile", str(settings.tile),
               "--max-batch", str(settings.max_batch), "--min-side", str(settings.min_side),
               "-o", str(out_dir)]
        if Path(settings.serving_config).is_file():
            cmd += ["--config", settings.serving_config]
        if settings.precision == "fp16":
            cmd.append("--fp16")
    else:
        trtexec = _find_trtexec()
        if not trtexec:
            raise PlanError("IMDSR_PLAN_BUILDER=trtexec but no trtexec in this image")
        t, b, m = settings.tile, settings.max_batch, settings.min_side
        cmd = [trtexec, f"--onnx={onnx}", f"--saveEngine={out_dir / plan_name}", "--skipInference",
               f"--minShapes=input:1x3x{m}x{m}", f"--optShapes=input:{b}x3x{t}x{t}",
               f"--maxShapes=input:{b}x3x{t}x{t}"]
        if settings.precision == "fp16":
            cmd.append("--fp16")
    log("$ " + shlex.join(cmd))
    subprocess.run(cmd, check=True)
    plans = sorted(p for p in out_dir.glob("*.plan") if p.stat().st_size > 0)
    if len(plans) != 1:
        raise PlanError(f"the builder left {len(plans)} plan(s) in {out_dir}, expected one")
    if plans[0].name != plan_name:
        raise PlanError(f"built {plans[0].name}, expected {plan_name}: the TensorRT that built it "
                        "is not the one detected")
    return plans[0]


def ensure_plans(settings: Settings, key: str, plan_name: str,
                 meta: dict[str, str]) -> tuple[Path, bool]:
    """(cache directory holding imdeception_<variant>/<plan_name> for every variant, cache hit?)

    The layout is what ``imdsr export repo --plans`` reads.
    """
    final = settings.cache_root / key
    manifest = final / MANIFEST
    if manifest.is_file() and all((final / f"{MODEL_PREFIX}{v}" / plan_name).is_file()
                                  for v in settings.variants):
        log(f"cache hit: {final}")
        return final, True
    settings.cache_root.mkdir(parents=True, exist_ok=True)
    for stale in settings.cache_root.glob(".build-*"):  # builds of pods killed mid-way
        if time.time() - stale.stat().st_mtime > STALE_BUILD_S:
            shutil.rmtree(stale, ignore_errors=True)
    work = settings.cache_root / f".build-{key}-{os.getpid()}-{int(time.time())}"
    work.mkdir(parents=True)
    try:
        log(f"cache miss: building {len(settings.variants)} plan(s) for {key}")
        for variant in settings.variants:
            build_plan(settings, variant, work / f"{MODEL_PREFIX}{variant}", plan_name)
        (work / MANIFEST).write_text(json.dumps(
            {**meta, "variants": settings.variants, "built_at": int(time.time())}, indent=2) + "\n")
        if final.exists() and not manifest.is_file():  # leftovers of an interrupted build
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(work, final)  # atomic: readers see a complete directory or none
        except OSError:
            if not manifest.is_file():
                raise
            log("another pod finished the same key first; using its plans")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final, False


def write_repository(settings: Settings, plans: Path, plan_name: str) -> None:
    """``imdsr export repo`` with the cached plans, then check each model serves its plan."""
    # leftovers of a run that died (the folder is an emptyDir kept across container restarts)
    shutil.rmtree(settings.repo_dir, ignore_errors=True)
    settings.repo_dir.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["imdsr", "export", "repo", "--target", settings.target,
           "--variants", ",".join(settings.variants), "--plans", str(plans),
           "-o", str(settings.repo_dir)]
    if Path(settings.serving_config).is_file():
        cmd += ["--config", settings.serving_config]
    if settings.repo_args:
        cmd += shlex.split(settings.repo_args)
    log("$ " + shlex.join(cmd))
    subprocess.run(cmd, check=True)
    for variant in settings.variants:
        model_dir = settings.repo_dir / f"{MODEL_PREFIX}{variant}"
        config = model_dir / "config.pbtxt"
        if not config.is_file():
            raise PlanError(f"imdsr export repo wrote no {config}")
        if not (model_dir / "1" / plan_name).is_file() or plan_name not in config.read_text():
            raise PlanError(f"{model_dir} does not serve {plan_name}: imdsr export repo ignored "
                            f"the plans in {plans}")


def main() -> int:
    try:
        settings = Settings()
        gpu = detect_gpu()
        trt = detect_trt_version()
        digest = onnx_digest(settings)
        key = cache_key(settings, gpu, trt, digest)
        plan_name = plan_filename(gpu[1], trt)
        log(f"GPU {gpu[0]} (sm {gpu[1]}), TensorRT {trt}, key {key}")
        meta = {"gpu": gpu[0], "compute_capability": gpu[1], "tensorrt": trt,
                "precision": settings.precision, "tile": str(settings.tile),
                "max_batch": str(settings.max_batch), "onnx": digest, "builder": settings.builder}
        plans, hit = ensure_plans(settings, key, plan_name, meta)
        write_repository(settings, plans, plan_name)
        (settings.repo_dir / "PLAN_CACHE_KEY").write_text(key + "\n")
        print(json.dumps({"key": key, "cache_hit": hit, "repository": str(settings.repo_dir)}))
        return 0
    except (PlanError, subprocess.CalledProcessError, OSError, ValueError) as exc:
        log(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
