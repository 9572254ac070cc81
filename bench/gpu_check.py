"""``imdsr bench gpu``: one short run that says what a GPU machine does with this project.

Sections, each marked ran, skipped (and why) or failed (and why), then a summary table:

a. **GPU**: name and compute capability as ``imdsr export plans`` detects them (the driver API,
   ``export.trt_plan.detect_gpu``), beside what PyTorch sees;
b. **plan step, dry run**: the real ``imdsr export plans --dry-run`` for that GPU (or the one
   named with ``--gpu-name``/``--gpu-cc``) into a temporary folder: cache key, plan file, repository;
c. **fp16 fidelity**: the shipped model in PyTorch on CUDA, fp16 against FP32 (TF32 off), at the
   engine profile's min/opt/max shapes and on whole BSD100 images: Y-PSNR against FP32 and against
   HR, largest 8-bit level difference, NaN/Inf; the project's rule (fp16 within 0.03 dB Y-PSNR
   of FP32 on BSD100) passes or fails;
d. **served on the GPU**: the repository ``imdsr export repo --target gpu`` writes with
   ``[gpu] runtime = "torch-cuda"`` (Python backend, KIND_GPU, dynamic batching) under a real
   ``tritonserver``, the real gateway in front; RGBA, grey and 16-bit PNGs through
   ``POST /upscale`` against ``imdsr infer`` on CUDA (within one 8-bit level); output Mpx/s at
   1, 4 and 16 clients, gRPC to Triton alone and through the gateway, with Triton's batching
   counters (requests vs executions, batch sizes) per level; FP32, then fp16 if time is left;
e. **summary**.

Without CUDA every GPU step is skipped with its reason and the command exits 0; the report's
structure, the dry run and the generated repository are still produced (what CI runs).
``bench/gpu_check.sh`` runs this on a lent GPU machine after installing the carried wheels
(``bench/gpu_wheels.txt``, ``bench/gpu_pack.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import lzma
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imdsr.contract import SCALE
from triton_host.launcher import SITE_PACKAGES_ENV, TritonServer

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / ".whl"                      # what bench/gpu_pack.py writes and the device carries
STUB_SITE_ENV = "IMDSR_GPU_CHECK_STUB_SITE"   # numpy < 2 for the Python backend's stub, put first
CARRY_ENV = "IMDSR_GPU_CHECK_CARRY"           # what gpu_check.sh installed, one line
LIBPYTHON_XZ = "libpython3.12.so.1.0.xz"      # the pack's fallback for a machine without libpython
FP16_RULE_DB = 0.03                           # fp16 within 0.03 dB Y-PSNR of FP32 on BSD100
LEVEL_RULE = 1                                # served == `imdsr infer` within one 8-bit level
# The gpu overlay's gateway settings (k8s/overlays/gpu/gateway-gpu.yaml): starting admission
# rates a GPU can meet, and the two c16nla instances per GPU.
GATEWAY_ENV = {"IMDSR_SECONDS_PER_MPX": '{"c16nla": 0.02, "c4": 0.005}',
               "IMDSR_DEFAULT_SECONDS_PER_MPX": "0.02", "IMDSR_TRITON_PARALLELISM": "2"}

RAN, SKIPPED, FAILED = "ran", "skipped", "failed"


@dataclass
class Section:
    key: str
    title: str
    status: str = SKIPPED
    why: str = ""
    lines: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    verdicts: dict[str, bool] = field(default_factory=dict)
    summary: str = ""

    def skip(self, why: str) -> Section:
        self.status, self.why = SKIPPED, why
        return self

    def fail(self, why: str) -> Section:
        self.status, self.why = FAILED, why
        return self


@dataclass
class Options:
    variant: str = "c16nla"
    out: Path = Path("bench-results/gpu-check")
    gpu_name: str | None = None
    gpu_cc: str | None = None
    bsd100: Path | None = None
    max_images: int = 100
    clients: tuple[int, ...] = (1, 4, 16)
    rounds: int = 4
    budget_s: float = 420.0
    serve_device: str = "cuda"          # "cpu": rehearse section d without a GPU (not a measurement)
    config: Path | None = None
    sections: tuple[str, ...] = ("a", "b", "c", "d")


@dataclass
class Report:
    started: float
    environment: dict[str, Any] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)
    seconds: float = 0.0

    def section(self, key: str) -> Section | None:
        return next((s for s in self.sections if s.key == key), None)

    def as_dict(self) -> dict[str, Any]:
        return {"environment": self.environment, "seconds": round(self.seconds, 1),
                "sections": [asdict(s) for s in self.sections],
                "exit_code": exit_code(self)}


def exit_code(report: Report) -> int:
    """0 unless a section failed or a verdict did (skips are not failures)."""
    bad = any(s.status == FAILED or not all(s.verdicts.values()) for s in report.sections)
    return 1 if bad else 0


def _progress(message: str) -> None:
    print(f"[gpu check] {message}", file=sys.stderr, flush=True)


def _elapsed(report: Report) -> float:
    return time.monotonic() - report.started


def _has(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _cuda() -> tuple[bool, str]:
    """(usable, why not) for PyTorch CUDA."""
    if not _has("torch"):
        return False, "torch is not installed"
    import torch

    if not torch.cuda.is_available():
        return False, f"torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)"
    return True, ""


def _subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for ``python -m imdsr ...`` children: this checkout importable."""
    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(ROOT) not in paths:
        paths.append(str(ROOT))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return {**env, **(extra or {})}


def imdsr_command() -> list[str]:
    """The ``imdsr`` command: the installed entry point, else ``python -m imdsr`` (a bare checkout,
    as on a lent GPU machine)."""
    exe = Path(sys.executable).parent / "imdsr"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "imdsr"]


def _run_imdsr(args: list[str], timeout: float, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*imdsr_command(), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=_subprocess_env(env))


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# --------------------------------------------------------------------------- environment
def environment() -> dict[str, Any]:
    env: dict[str, Any] = {"python": platform.python_version(), "executable": sys.executable,
                           "machine": platform.machine(), "numpy": np.__version__,
                           "carried": os.environ.get(CARRY_ENV, "nothing (no .whl/ installed)")}
    if _has("torch"):
        import torch

        env["torch"] = torch.__version__
        env["torch CUDA"] = torch.version.cuda or "none (CPU build)"
        env["cuda available"] = torch.cuda.is_available()
    else:
        env["torch"] = "not installed"
    if _has("onnxruntime"):
        import onnxruntime

        env["onnxruntime"] = f"{onnxruntime.__version__}, providers {onnxruntime.get_available_providers()}"
    for name in ("pytriton", "tritonclient", "fastapi", "uvicorn", "imagecodecs"):
        env[name] = "present" if _has(name) else "missing"
    with contextlib.suppress(OSError):  # the Python backend moves every tensor through /dev/shm
        st = os.statvfs("/dev/shm")
        env["/dev/shm"] = f"{st.f_bavail * st.f_frsize / 2**20:.0f} MiB free"
    if shutil.which("nvidia-smi"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
            env["nvidia-smi"] = subprocess.run(query, capture_output=True, text=True,
                                               timeout=20).stdout.strip()
    return env


# --------------------------------------------------------------------------- a. the GPU
def section_gpu(opts: Options) -> Section:
    from export.trt_plan import detect_gpu

    s = Section("a", "GPU as `imdsr export plans` detects it")
    try:
        gpu = detect_gpu()
    except RuntimeError as exc:
        s.skip(f"no GPU detected: {exc}")
        if opts.gpu_name or opts.gpu_cc:
            s.lines.append(f"named instead (--gpu-name/--gpu-cc): {opts.gpu_name} (sm {opts.gpu_cc})")
        return s
    s.status = RAN
    s.data = {"name": gpu.name, "compute_capability": gpu.compute_capability}
    s.lines.append(f"driver API (export.trt_plan.detect_gpu, what `imdsr export plans` uses): "
                   f"**{gpu.name}**, compute capability **{gpu.compute_capability}**")
    ok, _ = _cuda()
    if ok:
        import torch

        major, minor = torch.cuda.get_device_capability(0)
        free, total = torch.cuda.mem_get_info(0)
        s.data["torch"] = {"name": torch.cuda.get_device_name(0), "capability": f"{major}.{minor}",
                           "memory_gib": round(total / 2**30, 1), "free_gib": round(free / 2**30, 1)}
        s.lines.append(f"PyTorch: {torch.cuda.get_device_name(0)}, {major}.{minor}, "
                       f"{total / 2**30:.0f} GiB ({free / 2**30:.0f} free), "
                       f"{torch.cuda.device_count()} device(s)")
    s.summary = f"{gpu.name}, sm {gpu.compute_capability}"
    return s


# --------------------------------------------------------------------------- b. plans, dry run
def section_plans(opts: Options, gpu: Section | None, work: Path) -> Section:
    from export.serving import load_serving

    s = Section("b", "plan step (`imdsr export plans --dry-run`)")
    name = (gpu.data.get("name") if gpu and gpu.status == RAN else None) or opts.gpu_name
    cc = (gpu.data.get("compute_capability") if gpu and gpu.status == RAN else None) or opts.gpu_cc
    onnx_dir, cache, repo = work / "onnx", work / "plan-cache", work / "plan-repo"
    onnx_dir.mkdir(parents=True, exist_ok=True)  # an existing folder: `-o DIR/` names the file itself
    exported = _run_imdsr(["export", "onnx", "--variant", opts.variant, "--no-verify",
                           "-o", f"{onnx_dir}/"], timeout=300)
    if exported.returncode != 0:
        return s.fail(f"`imdsr export onnx` exited {exported.returncode}: {_tail(exported.stderr, 3)}")
    env = {"IMDSR_TARGET": "gpu", "IMDSR_VARIANTS": opts.variant, "IMDSR_ONNX_DIR": str(onnx_dir),
           "IMDSR_PLAN_CACHE": str(cache), "IMDSR_REPO_DIR": str(repo)}
    env.update({"IMDSR_GPU_NAME": name} if name else {})
    env.update({"IMDSR_GPU_CC": cc} if cc else {})
    if opts.config:
        env["IMDSR_SERVING_CONFIG"] = str(opts.config)
    command = ["export", "plans", "--dry-run"]
    shown = ("IMDSR_TARGET", "IMDSR_GPU_NAME", "IMDSR_GPU_CC", "IMDSR_VARIANTS")
    s.lines.append("`" + " ".join(f"{k}={v}" for k, v in env.items() if k in shown) + " imdsr "
                   + " ".join(command) + "` (ONNX, cache and repository in a temporary folder)")
    if not name:
        s.lines.append("no GPU detected or named: the dry run takes its own placeholder GPU")
    done = _run_imdsr(command, timeout=300, env=env)
    if done.returncode != 0:
        return s.fail(f"exited {done.returncode}: {_tail(done.stderr, 4)}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    s.status, s.data = RAN, result
    target = load_serving(opts.config).trt_target("gpu")
    model = repo / next(p.name for p in repo.iterdir() if (p / "config.pbtxt").is_file())
    config = (model / "config.pbtxt").read_text()
    listed = result["compute_capability"] in target.compute_capabilities
    s.data["cc_listed_in_serving_toml"] = listed
    s.data["repository_names_plan"] = f'value: "{result["plan"]}"' in config
    s.lines += [
        f"GPU {result['gpu']} (sm {result['compute_capability']}), TensorRT {result['tensorrt']} "
        f"(the serving image's), {result['precision']}",
        f"cache key `{result['key']}`",
        f"plan `{result['plan']}`: placeholder written, named in {model.name}/config.pbtxt: "
        f"{s.data['repository_names_plan']}",
        f"compute capability {result['compute_capability']} in [gpu] compute_capabilities "
        f"{target.compute_capabilities}: {listed}",
    ]
    s.lines += [f"    {line}" for line in done.stderr.strip().splitlines()[-4:]]
    s.summary = f"{result['plan']} (key ...{result['key'][-30:]})"
    return s


# --------------------------------------------------------------------------- c. fp16 fidelity
def fidelity_images(opts: Options) -> tuple[str, list[tuple[str, np.ndarray]], str]:
    """(source label, [(name, HR)], note): BSD100 HR images where a folder has them, else the
    five scikit-image photos."""
    from training.evaluate import folder_photos, skimage_photos

    candidates = [opts.bsd100] if opts.bsd100 else [ROOT / "data/standard/bsd100", PACK / "bsd100"]
    for folder in candidates:
        if folder and folder.is_dir():
            images = folder_photos(folder)[: opts.max_images]
            if images:
                note = "" if len(images) >= 100 else f"{len(images)} of BSD100's 100 images"
                return "BSD100", images, note
    note = (f"no BSD100 folder ({', '.join(str(c) for c in candidates if c)} absent): the five "
            "scikit-image photos instead; the 0.03 dB rule is stated on BSD100")
    return "scikit-image photos", skimage_photos()[: opts.max_images], note


def _to_u8(y: np.ndarray) -> np.ndarray:
    """FP32 [0, 1] NCHW or CHW -> uint8, as a saved image (round half to even, clamp)."""
    return np.rint(np.clip(y, 0.0, 1.0) * 255.0).astype(np.uint8)


def _windows(lrs: list[np.ndarray], batch: int, side_h: int, side_w: int
             ) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """``batch`` windows of LR pixels (edge-padded where an image is smaller): NCHW float32 and,
    per window, (image index, valid rows, valid cols)."""
    out, valid = [], []
    for i in range(batch):
        k = i % len(lrs)
        lr = lrs[k]
        h, w = min(lr.shape[0], side_h), min(lr.shape[1], side_w)
        crop = lr[:h, :w]
        padded = np.pad(crop, ((0, side_h - h), (0, side_w - w), (0, 0)), mode="edge")
        out.append(padded.transpose(2, 0, 1).astype(np.float32) / 255.0)
        valid.append((k, h, w))
    return np.ascontiguousarray(np.stack(out)), valid


def section_fidelity(opts: Options, device: str = "cuda") -> Section:
    """``device`` other than cuda: a rehearsal of this code (the tests), not a measurement."""
    s = Section("c", "fp16 vs FP32 in PyTorch CUDA (Y-PSNR, levels, NaN/Inf)")
    ok, why = _cuda()
    if device == "cuda" and not ok:
        return s.skip(f"no GPU: {why}")
    import copy

    import torch

    from export.serving import load_serving
    from export.trt_plan import engine_profile
    from imdsr.imaging.metrics import psnr_255, y_psnr
    from imdsr.imaging.resize import downscale, modcrop
    from training.weights.store import load_model

    cfg = load_serving(opts.config)
    profile = engine_profile(cfg.window_limits(opts.variant), cfg.max_batch_for("gpu"))
    source, images, note = fidelity_images(opts)
    dev = torch.device(device)
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        model32, _ = load_model(opts.variant, None)
        model32 = model32.to(dev).eval()
        model16 = copy.deepcopy(model32).half()

        @torch.inference_mode()
        def run(model: torch.nn.Module, x: np.ndarray, dtype: torch.dtype) -> np.ndarray:
            y = model(torch.from_numpy(x).to(dev, dtype)).float()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            return y.cpu().numpy()

        hrs = [modcrop(img, SCALE) for _, img in images]
        lrs = [downscale(hr, SCALE) for hr in hrs]
        s.lines.append(f"source: {source}, {len(images)} images" + (f" ({note})" if note else "")
                       + "; LR = the project's bicubic x1/4 of the mod-cropped HR (training/evaluate.py)")
        s.lines.append("FP32 = PyTorch FP32 with TF32 off; fp16 = model.half(); Y-PSNR on BT.601 Y with "
                       f"{SCALE} px shaved; levels = |fp16 - FP32| after rounding to 8 bits")
        s.lines += ["", "| shape (N,3,H,W) | Y-PSNR fp16 vs FP32 | Y-PSNR vs HR FP32 | fp16 | "
                    "max level diff | NaN/Inf fp16 | NaN/Inf FP32 | ms FP32 | ms fp16 |",
                    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        rows = []
        for label, shape in (("min", profile.min), ("opt", profile.opt), ("max", profile.max)):
            n, _, h, w = shape
            x, valid = _windows(lrs, n, h, w)
            run(model32, x, torch.float32)  # warm-up: cuDNN picks its kernels for this shape
            run(model16, x, torch.float16)
            t0 = time.perf_counter()
            y32 = run(model32, x, torch.float32)
            t1 = time.perf_counter()
            y16 = run(model16, x, torch.float16)
            t2 = time.perf_counter()
            u32, u16 = _to_u8(y32), _to_u8(y16)
            vs32, hr32, hr16 = [], [], []
            for i, (k, vh, vw) in enumerate(valid):
                a = u16[i].transpose(1, 2, 0)
                b = u32[i].transpose(1, 2, 0)
                vs32.append(psnr_255(*(_y(v) for v in (a, b))))
                oh, ow = vh * SCALE, vw * SCALE
                if min(oh, ow) > 2 * SCALE:
                    ref = hrs[k][:oh, :ow]
                    hr32.append(y_psnr(b[:oh, :ow], ref))
                    hr16.append(y_psnr(a[:oh, :ow], ref))
            row = {"shape": list(shape), "profile": label,
                   "y_psnr_fp16_vs_fp32": _mean(vs32),
                   "y_psnr_hr_fp32": _mean(hr32) if hr32 else None,
                   "y_psnr_hr_fp16": _mean(hr16) if hr16 else None,
                   "max_level_diff": int(np.abs(u16.astype(np.int16) - u32).max()),
                   "nonfinite_fp16": int((~np.isfinite(y16)).sum()),
                   "nonfinite_fp32": int((~np.isfinite(y32)).sum()),
                   "ms_fp32": 1e3 * (t1 - t0), "ms_fp16": 1e3 * (t2 - t1)}
            rows.append(row)
            s.lines.append(f"| {label} {tuple(shape)} | {_db(row['y_psnr_fp16_vs_fp32'])} | "
                           f"{_db(row['y_psnr_hr_fp32'])} | {_db(row['y_psnr_hr_fp16'])} | "
                           f"{row['max_level_diff']} | {row['nonfinite_fp16']} | {row['nonfinite_fp32']} | "
                           f"{row['ms_fp32']:.1f} | {row['ms_fp16']:.1f} |")

        whole32, whole16, whole_vs, worst = [], [], [], 0
        nonfinite = 0
        for hr, lr in zip(hrs, lrs, strict=True):
            x = np.ascontiguousarray(lr.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
            y32, y16 = run(model32, x, torch.float32), run(model16, x, torch.float16)
            nonfinite += int((~np.isfinite(y16)).sum())
            a, b = _to_u8(y16)[0].transpose(1, 2, 0), _to_u8(y32)[0].transpose(1, 2, 0)
            whole32.append(y_psnr(b, hr))
            whole16.append(y_psnr(a, hr))
            whole_vs.append(psnr_255(_y(a), _y(b)))
            worst = max(worst, int(np.abs(a.astype(np.int16) - b).max()))
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    m32, m16 = _mean(whole32), _mean(whole16)
    delta = m16 - m32
    rule = abs(delta) <= FP16_RULE_DB and nonfinite == 0
    s.status = RAN
    s.data = {"source": source, "images": len(images), "note": note, "profile": rows,
              "whole": {"y_psnr_hr_fp32": m32, "y_psnr_hr_fp16": m16, "delta_db": delta,
                        "y_psnr_fp16_vs_fp32": _mean(whole_vs), "max_level_diff": worst,
                        "nonfinite_fp16": nonfinite}}
    s.verdicts["fp16 within 0.03 dB of FP32"] = rule
    s.lines += ["", f"whole images, one at a time: mean Y-PSNR vs HR FP32 {m32:.3f} dB, fp16 {m16:.3f} dB "
                f"(fp16 - FP32 = {delta:+.4f} dB); fp16 vs FP32 {_db(_mean(whole_vs))}; largest level "
                f"difference {worst}; NaN/Inf in fp16 {nonfinite}",
                f"rule (fp16 within {FP16_RULE_DB} dB Y-PSNR of FP32 on BSD100"
                f"{'' if source == 'BSD100' else ', here on ' + source}): **{'PASS' if rule else 'FAIL'}**"]
    s.summary = (f"{'PASS' if rule else 'FAIL'}: fp16 - FP32 = {delta:+.4f} dB on {source} "
                 f"({len(images)} images), max {worst} levels")
    return s


def _y(img: np.ndarray) -> np.ndarray:
    from imdsr.imaging.color import rgb_to_y

    return rgb_to_y(img)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("inf")


def _db(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "identical" if not np.isfinite(value) else f"{value:.2f} dB"


# --------------------------------------------------------------------------- d. served on the GPU
def gpu_repository(opts: Options, out: Path, fp16: bool) -> Path:
    """What ``imdsr export repo --target gpu`` writes with ``[gpu] runtime = "torch-cuda"``."""
    from export.repo import ModelSource, write_repository
    from export.serving import load_serving
    from training.weights.store import shipped_weights

    cfg = load_serving(opts.config)
    gpu = cfg.gpu.model_copy(update={"runtime": "torch-cuda", "fp16": fp16})
    write_repository(out, "gpu", [ModelSource(opts.variant, shipped_weights(opts.variant))],
                     cfg.model_copy(update={"gpu": gpu}))
    return out


def describe_config(model_dir: Path) -> dict[str, Any]:
    text = (model_dir / "config.pbtxt").read_text()
    params = dict(re.findall(r'key: "([^"]+)"\s+value \{\s+string_value: "([^"]*)"', text))

    def one(pattern: str) -> str | None:
        m = re.search(pattern, text)
        return m.group(1) if m else None

    return {"backend": one(r'backend: "([^"]+)"'), "kind": one(r"kind: (KIND_\w+)"),
            "count": int(one(r"count: (\d+)") or 0),
            "max_batch_size": int(one(r"max_batch_size: (\d+)") or 0),
            "dynamic_batching": "dynamic_batching {" in text,
            "max_queue_delay_us": int(one(r"max_queue_delay_microseconds: (\d+)") or 0),
            "runtime": params.get("runtime"), "precision": params.get("precision"),
            "model_file": params.get("model_file"),
            "files": sorted(p.name for p in (model_dir / "1").iterdir())}


class CheckTriton(TritonServer):
    """A ``TritonServer`` whose Python-backend stub sees ``stub_site`` first (numpy < 2), with
    ``extra_env`` for the server only (the libpython fallback's LD_LIBRARY_PATH and PYTHONHOME)."""

    def __init__(self, options: Any, log: Any, stub_site: list[str], extra_env: dict[str, str]) -> None:
        super().__init__(options, log=log)
        self.stub_site, self.extra_env = stub_site, extra_env

    def environment(self) -> dict[str, str]:
        env = super().environment()
        if self.stub_site:
            env[SITE_PACKAGES_ENV] = os.pathsep.join([*self.stub_site, env[SITE_PACKAGES_ENV]])
        for key, value in self.extra_env.items():
            joined = key == "LD_LIBRARY_PATH" and env.get(key)
            env[key] = f"{value}{os.pathsep}{env[key]}" if joined else value
        return env


def stub_libpython(work: Path) -> tuple[dict[str, str], str]:
    """(extra server environment, note): where the stub's libpython3.X is missing on this machine,
    the pack's copy (``.whl/libpython3.12.so.1.0.xz``) with this interpreter's stdlib (PYTHONHOME)."""
    from triton_host.launcher import TritonOptions, find_tritonserver

    install = find_tritonserver()
    if install.python_stub is None:
        return {}, f"tritonserver from {install.source}: its own Python backend"
    probe = CheckTriton(TritonOptions(work), None, [], {})
    env = probe.environment()
    try:
        ldd = subprocess.run(["ldd", str(install.python_stub)], capture_output=True, text=True, env=env,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {}, f"ldd failed ({exc}): stub libraries not checked"
    missing = [line.split()[0] for line in ldd.splitlines() if "not found" in line]
    if not missing:
        return {}, "the stub finds every library it links (libpython included)"
    ver = f"{sys.version_info[0]}.{sys.version_info[1]}"
    packed = PACK / LIBPYTHON_XZ
    if missing == [f"libpython{ver}.so.1.0"] and packed.is_file() and ver == "3.12":
        folder = work / "libpython"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"libpython{ver}.so.1.0").write_bytes(lzma.decompress(packed.read_bytes()))
        return ({"LD_LIBRARY_PATH": str(folder), "PYTHONHOME": sys.base_prefix},
                f"this machine has no libpython{ver}.so.1.0: the pack's copy, "
                f"with PYTHONHOME={sys.base_prefix}")
    raise RuntimeError(f"the Python-backend stub lacks {missing} on this machine and the pack has no "
                       "fallback for them")


def _stats(http_url: str, model: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{http_url}/v2/models/{model}/stats", timeout=10) as r:
        stats = json.load(r)["model_stats"][0]
    return {"inference_count": int(stats.get("inference_count", 0)),
            "execution_count": int(stats.get("execution_count", 0)),
            "success": int(stats.get("inference_stats", {}).get("success", {}).get("count", 0)),
            "batches": {int(b["batch_size"]): int(b["compute_infer"]["count"])
                        for b in stats.get("batch_stats", [])}}


def _metrics(metrics_url: str, model: str) -> dict[str, float]:
    with urllib.request.urlopen(metrics_url, timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for name in ("nv_inference_request_success", "nv_inference_count", "nv_inference_exec_count"):
        m = re.search(rf'^{name}{{[^}}]*model="{re.escape(model)}"[^}}]*}} ([0-9.e+]+)$', text, re.M)
        if m:
            out[name] = float(m.group(1))
    return out


def _delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    batches = {b: after["batches"].get(b, 0) - before["batches"].get(b, 0) for b in after["batches"]}
    return {"triton_requests": after["success"] - before["success"],
            "inferences": after["inference_count"] - before["inference_count"],
            "executions": after["execution_count"] - before["execution_count"],
            "batch_sizes": {b: n for b, n in sorted(batches.items()) if n}}


def test_pictures(work: Path) -> dict[str, Path]:
    """RGBA, grey and 16-bit PNGs of a real photo (scikit-image's astronaut; synthetic without it),
    sides neither multiples of 4 nor of 32."""
    from imdsr.imaging import codec

    try:
        from skimage import data

        photo = np.ascontiguousarray(data.astronaut()[60:60 + 213, 120:120 + 291])
    except ImportError:
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:213, 0:291]
        base = (np.sin(xx / 9.0) * np.cos(yy / 13.0) * 100 + 128)[..., None]
        photo = np.clip(base + rng.normal(0, 20, (213, 291, 3)), 0, 255).astype(np.uint8)
    h, w = photo.shape[:2]
    alpha = np.clip(np.linspace(0, 255, w)[None, :] + np.zeros((h, 1)), 0, 255).astype(np.uint8)
    grey = np.rint(photo @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    rng = np.random.default_rng(1)  # 16 bits that are not 8 bits times 257
    deep = np.clip(photo.astype(np.int32) * 257 + rng.integers(-128, 128, photo.shape), 0, 65535)
    deep = deep.astype(np.uint16)
    pictures = {"rgba": codec.Picture(photo, alpha, False, "PNG"),
                "grey": codec.Picture(np.repeat(grey[..., None], 3, axis=2), None, True, "PNG"),
                "rgb16": codec.Picture(deep, None, False, "PNG")}
    folder = work / "pictures"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, pic in pictures.items():
        paths[name] = folder / f"{name}.png"
        paths[name].write_bytes(codec.encode(pic, codec.OutputFormat.PNG))
    return paths


def compare_pictures(served: bytes, local: bytes) -> dict[str, Any]:
    """The gateway's result against ``imdsr infer``'s: differences in the picture's own levels and
    in 8-bit levels (a 16-bit level is 1/257 of one)."""
    from imdsr.imaging import codec

    a, b = codec.decode(served, 1 << 28), codec.decode(local, 1 << 28)
    out: dict[str, Any] = {"size": f"{a.width}x{a.height}", "bit_depth": a.bit_depth,
                           "same_form": (a.color.shape == b.color.shape and a.bit_depth == b.bit_depth
                                         and a.gray == b.gray and (a.alpha is None) == (b.alpha is None))}
    if not out["same_form"]:
        out["why"] = (f"served {a.color.shape} {a.bit_depth}-bit grey={a.gray} alpha={a.alpha is not None}; "
                      f"infer {b.color.shape} {b.bit_depth}-bit grey={b.gray} alpha={b.alpha is not None}")
        return out
    per = 257.0 if a.bit_depth == 16 else 1.0
    diffs = [np.abs(a.color.astype(np.int64) - b.color.astype(np.int64))]
    if a.alpha is not None and b.alpha is not None:
        diffs.append(np.abs(a.alpha.astype(np.int64) - b.alpha.astype(np.int64)))
    worst = max(int(d.max()) for d in diffs)
    out.update({"max_diff_levels": worst, "max_diff_8bit": worst / per,
                "share_off": float(np.mean(diffs[0] > 0)),
                "within_one_level": worst / per <= LEVEL_RULE})
    return out


async def _post(url: str, variant: str, body: bytes) -> tuple[int, bytes, str]:
    import httpx

    async with httpx.AsyncClient(timeout=300) as client:
        r = await client.post(f"{url}/upscale", content=body, params={"model": variant},
                              headers={"Content-Type": "image/png"})
        return r.status_code, r.content, r.text[:300] if r.status_code != 200 else ""


def _missing_for_serving() -> list[str]:
    """What Triton, the gateway and the clients need that is not importable here."""
    wanted = {"tritonclient": "tritonclient", "fastapi": "fastapi", "uvicorn": "uvicorn",
              "pydantic_settings": "pydantic-settings", "multipart": "python-multipart",
              "imagecodecs": "imagecodecs", "httpx": "httpx"}
    missing = [pkg for mod, pkg in wanted.items() if not _has(mod)]
    if not _has("pytriton") and not shutil.which("tritonserver"):
        missing.append("nvidia-pytriton (or a tritonserver on PATH)")
    return missing


def section_serve(opts: Options, report: Report, work: Path) -> Section:
    from export.serving import load_serving
    from training.models.registry import triton_name

    s = Section("d", "c16nla served on the GPU: Triton (Python backend, PyTorch CUDA) + the gateway"
                if opts.variant == "c16nla" else f"{opts.variant} served on the GPU")
    cfg = load_serving(opts.config)
    model = triton_name(opts.variant)
    precisions = ["f32"] + (["fp16"] if cfg.gpu.fp16 else [])
    repos: dict[str, Path] = {}
    try:  # FP32 first: the fp16 one is written only when its pass runs
        repos["f32"] = gpu_repository(opts, work / "repo-f32", fp16=False)
    except Exception as exc:  # noqa: BLE001 - the report says what broke and goes on
        return s.fail(f"generating the torch-cuda repository: {exc!r}")
    desc = describe_config(repos["f32"] / model)
    s.data["repository"] = desc
    s.lines.append(f"repository (`imdsr export repo --target gpu`, `[gpu] runtime = \"torch-cuda\"`): "
                   f"backend {desc['backend']}, {desc['count']} x {desc['kind']}, "
                   f"dynamic batching {desc['dynamic_batching']} "
                   f"(max batch {desc['max_batch_size']}, queue delay {desc['max_queue_delay_us']} us), "
                   f"files {', '.join(desc['files'])}")
    s.data["repository_ok"] = (desc["backend"] == "python" and desc["kind"] == "KIND_GPU"
                               and desc["dynamic_batching"] and desc["runtime"] == "torch-cuda")
    if opts.serve_device == "cuda":
        ok, why = _cuda()
        if not ok:
            s.lines.append("Triton, gateway, pictures and throughput: skipped")
            return s.skip(f"no GPU: {why}; the repository above was generated")
    missing = _missing_for_serving()
    if missing:
        s.lines.append("Triton, gateway, pictures and throughput: skipped")
        return s.skip(f"not installed here: {', '.join(missing)} "
                      "(the GPU machine gets them from the pack: bench/gpu_wheels.txt)")
    if opts.serve_device != "cuda":
        s.lines.append(f"REHEARSAL on {opts.serve_device}: KIND_CPU, PyTorch on the CPU, f32 only; "
                       "the figures below are no GPU measurement")
        precisions = ["f32"]
    try:
        extra_env, note = stub_libpython(work)
    except Exception as exc:  # noqa: BLE001
        return s.fail(str(exc))
    s.lines.append(f"Python-backend stub: {note}")
    stub_site = [p for p in os.environ.get(STUB_SITE_ENV, "").split(os.pathsep) if p]
    if stub_site:
        s.lines.append(f"stub site-packages first: {', '.join(stub_site)}")
    pictures = test_pictures(work)
    local = _local_results(opts, pictures, work)
    s.data["infer"] = {"returncode": local["returncode"]}
    if local["returncode"] != 0:
        s.lines.append(f"`imdsr infer` failed: {local['stderr']}")
    s.data["runs"] = {}
    verdicts_ok = True
    kinds = ["KIND_GPU", "KIND_CPU"] if opts.serve_device == "cuda" else ["KIND_CPU"]
    for p in precisions:
        left = opts.budget_s - _elapsed(report)
        if p != "f32" and left < 150:
            s.lines.append(f"{p}: skipped, {left:.0f} s of the {opts.budget_s:.0f} s budget left")
            continue
        if p not in repos:
            repos[p] = gpu_repository(opts, work / f"repo-{p}", fp16=p == "fp16")
        run = _serve_once(opts, repos[p], model, p, pictures, local, work, stub_site, extra_env, report,
                          kinds)
        kinds = [run["kind"]] if run.get("kind") else kinds  # fp16 starts where FP32 got
        s.data["runs"][p] = run
        s.lines += run.pop("lines")
        if p == "f32" and "within_one_level" in run:
            s.verdicts["served == imdsr infer within one level (FP32)"] = run["within_one_level"]
            verdicts_ok = verdicts_ok and run["within_one_level"]
        if run.get("error") and p == "f32":
            return s.fail(run["error"])
    s.status = RAN
    f32 = s.data["runs"].get("f32", {})
    best = max((lv["mpx_per_s"] for lv in f32.get("service", [])), default=0.0)
    s.summary = (f"{f32.get('kind', '?')}; pictures {'PASS' if verdicts_ok else 'FAIL'}; "
                 f"service up to {best:.2f} Mpx/s (FP32)")
    return s


def _local_results(opts: Options, pictures: dict[str, Path], work: Path) -> dict[str, Any]:
    """``imdsr infer`` (the real command, PyTorch FP32) on the same pictures. TF32 off through
    NVIDIA's own switch (cuDNN and cuBLAS read NVIDIA_TF32_OVERRIDE): PyTorch's default TF32
    convolutions are about one 8-bit level off FP32, the served FP32 model runs without them."""
    out = work / "infer"
    device = "cuda" if opts.serve_device == "cuda" else opts.serve_device
    done = _run_imdsr(["infer", *map(str, pictures.values()), "-o", str(out), "--variant", opts.variant,
                       "--device", device, "--format", "png"], timeout=300,
                      env={"NVIDIA_TF32_OVERRIDE": "0"})
    files = {name: out / f"{path.stem}_x{SCALE}.png" for name, path in pictures.items()}
    return {"returncode": done.returncode, "stderr": _tail(done.stderr, 3), "files": files}


def _serve_once(opts: Options, repo: Path, model: str, precision: str, pictures: dict[str, Path],
                local: dict[str, Any], work: Path, stub_site: list[str], extra_env: dict[str, str],
                report: Report, kinds: list[str]) -> dict[str, Any]:
    """One Triton with ``repo``: ``kinds`` in turn until one becomes ready (KIND_GPU, then
    KIND_CPU instances whose model still runs on cuda:0), then the pictures and the levels."""
    from triton_host.launcher import TritonLaunchError, TritonOptions, free_ports

    run: dict[str, Any] = {"lines": ["", f"**{precision}**"]}
    config = repo / model / "config.pbtxt"
    if opts.serve_device != "cuda":  # the rehearsal: one CPU instance, PyTorch on the CPU
        config.write_text(config.read_text().replace("kind: KIND_GPU", "kind: KIND_CPU")
                          .replace(re.search(r"count: \d+", config.read_text()).group(0), "count: 1")
                          .replace('string_value: "cuda"', f'string_value: "{opts.serve_device}"'))
    log_path = work / f"triton-{precision}.log"
    for kind in kinds:
        if kind == "KIND_CPU" and opts.serve_device == "cuda":
            # The Python backend's own KIND_GPU set-up failed: the model still runs on cuda:0.
            config.write_text(config.read_text().replace("kind: KIND_GPU", "kind: KIND_CPU"))
            run["lines"].append("KIND_CPU instances (the model's device parameter: cuda:0)")
        opts_t = TritonOptions(repo, *free_ports(3), host="127.0.0.1", exit_timeout_s=5)
        with log_path.open("ab") as log:
            server = CheckTriton(opts_t, log, stub_site, extra_env)
            started = time.monotonic()
            try:
                server.start()
                # torch, the model and its warm-up take well under a minute on a GPU
                server.wait_ready(timeout_s=min(180.0, max(60.0, opts.budget_s - _elapsed(report))))
            except (TritonLaunchError, OSError) as exc:
                server.stop()
                run["lines"].append(f"{kind}: tritonserver did not become ready: {exc}; log tail:")
                run["lines"] += [f"    {line}" for line in _file_tail(log_path, 12).splitlines()]
                run["error"] = f"tritonserver ({kind}) did not become ready: {exc}"
                continue
            run.pop("error", None)
            run["kind"] = kind
            run["ready_s"] = round(time.monotonic() - started, 1)
            run["lines"].append(f"tritonserver ({server.install.source}) ready in {run['ready_s']} s, "
                                f"{kind}, model {model} ({precision})")
            try:
                _exercise(opts, server, model, precision, pictures, local, work, run)
            except Exception as exc:  # noqa: BLE001
                run["error"] = f"{type(exc).__name__}: {exc}"
                run["lines"].append(f"error: {run['error']}")
                run["lines"] += [f"    {line}" for line in traceback.format_exc().strip().splitlines()[-6:]]
            finally:
                server.stop()
            break
    _keep_logs(work, opts.out)
    return run


def _exercise(opts: Options, server: Any, model: str, precision: str, pictures: dict[str, Path],
              local: dict[str, Any], work: Path, run: dict[str, Any]) -> None:
    from bench.service import gateway, service_levels, triton_levels
    from imdsr.imaging import codec

    env = {**GATEWAY_ENV, "PYTHONPATH": _subprocess_env()["PYTHONPATH"]}
    with gateway(server.grpc_url, opts.variant, work / f"gateway-{precision}.log", env) as (_, url):
        run["lines"] += ["", "| picture | served | vs `imdsr infer` (max diff) | 8-bit levels | pixels off | "
                         "within one level |", "| --- | --- | --- | --- | --- | --- |"]
        ok_all = True
        for name, path in pictures.items():
            status, body, text = asyncio.run(_post(url, opts.variant, path.read_bytes()))
            if status != 200:
                run["lines"].append(f"| {name} | HTTP {status}: {text} | | | | no |")
                ok_all = False
                continue
            (work / f"served-{precision}-{name}.png").write_bytes(body)
            ref = local["files"][name]
            if not ref.is_file():
                run["lines"].append(f"| {name} | 200 | no `imdsr infer` output | | | no |")
                ok_all = False
                continue
            c = compare_pictures(body, ref.read_bytes())
            run.setdefault("pictures", {})[name] = c
            if not c["same_form"]:
                run["lines"].append(f"| {name} | 200 | differs in form: {c['why']} | | | no |")
                ok_all = False
                continue
            ok_all = ok_all and c["within_one_level"]
            run["lines"].append(f"| {name} | {c['size']} {c['bit_depth']}-bit | {c['max_diff_levels']} "
                                f"{c['bit_depth']}-bit levels | {c['max_diff_8bit']:.2f} | "
                                f"{100 * c['share_off']:.2f}% | {'yes' if c['within_one_level'] else 'NO'} |")
        run["within_one_level"] = ok_all
        run["lines"].append(f"(`imdsr infer --device {opts.serve_device}` with NVIDIA_TF32_OVERRIDE=0: FP32 "
                            "without TF32, as the served FP32 model runs)")
        if precision != "f32":
            run["lines"].append(f"({precision} served against `imdsr infer`'s FP32: information, no verdict)")

        window = _window_side(server, model)
        rng = np.random.default_rng(0)
        x = rng.random((1, 3, window, window), dtype=np.float32)
        photo = codec.decode(pictures["rgba"].read_bytes(), 1 << 28)
        png = codec.encode(codec.Picture(np.ascontiguousarray(np.tile(photo.color, (2, 2, 1))), None, False,
                                         "PNG"), codec.OutputFormat.PNG)
        side = photo.color.shape[0] * 2, photo.color.shape[1] * 2
        out_pixels = side[0] * side[1] * SCALE * SCALE
        run["triton"], run["service"] = [], []
        for system in ("triton", "service"):
            for c in opts.clients:
                before = _stats(server.http_url, model)
                if system == "triton":
                    level = asyncio.run(triton_levels(server.grpc_url, opts.variant, x,
                                                      f"triton gRPC, 1 window {window}px", [c],
                                                      opts.rounds * 4))[0]
                else:
                    level = asyncio.run(service_levels(url, png, opts.variant, out_pixels, [c],
                                                       opts.rounds))[0]
                counters = _delta(before, _stats(server.http_url, model))
                row = {**asdict(level), **counters}
                run[system].append(row)
        run["metrics"] = _metrics(server.metrics_url, model)
    run["lines"] += ["", f"throughput (closed loop; Triton alone: one {window}x{window} window per gRPC "
                     f"request; service: POST /upscale of a {side[1]}x{side[0]} PNG, "
                     f"{side[1] * SCALE}x{side[0] * SCALE} out, PNG encode included; counters are "
                     "Triton's statistics API, warm-up round included)",
                     "", "| system | clients | requests | output Mpx/s | p50 ms | p95 ms | failures | "
                     "Triton requests | executions | mean batch | batch sizes |",
                     "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for system in ("triton", "service"):
        for row in run[system]:
            mean = row["inferences"] / row["executions"] if row["executions"] else 0.0
            sizes = ", ".join(f"{b}: {n}" for b, n in row["batch_sizes"].items())
            run["lines"].append(f"| {system} | {row['concurrency']} | {row['requests']} | "
                                f"{row['mpx_per_s']:.2f} | "
                                f"{row['p50_ms']:.0f} | {row['p95_ms']:.0f} | {row['failures']} | "
                                f"{row['triton_requests']} | "
                                f"{row['executions']} | {mean:.2f} | {sizes} |")
    m = run["metrics"]
    if m:
        run["lines"].append("metrics endpoint at the end: " + ", ".join(f"{k} {v:.0f}" for k, v in m.items()))


def _window_side(server: Any, model: str) -> int:
    """The window the gateway sends at most, as Triton publishes it (imdsr_max_window)."""
    with urllib.request.urlopen(f"{server.http_url}/v2/models/{model}/config", timeout=10) as r:
        params = json.load(r).get("parameters", {})
    return int(params.get("imdsr_max_window", {}).get("string_value", "320"))


def _file_tail(path: Path, lines: int) -> str:
    try:
        return _tail(path.read_text(errors="replace"), lines)
    except OSError:
        return ""


def _keep_logs(work: Path, out: Path) -> None:
    """The last 64 KiB of every server log, beside the report."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for log in work.glob("*.log"):
        data = log.read_bytes()[-65536:]
        (logs / log.name).write_bytes(data)


# --------------------------------------------------------------------------- the whole run
SECTION_TITLES = {"a": "GPU as `imdsr export plans` detects it",
                  "b": "plan step (`imdsr export plans --dry-run`)",
                  "c": "fp16 vs FP32 in PyTorch CUDA (Y-PSNR, levels, NaN/Inf)",
                  "d": "served on the GPU: Triton (Python backend, PyTorch CUDA) + the gateway"}


def run_check(opts: Options, progress: Callable[[str], None] = _progress) -> Report:
    report = Report(time.monotonic(), environment())
    work = Path(tempfile.mkdtemp(prefix="imdsr-gpu-check-"))
    steps: list[tuple[str, Callable[[], Section]]] = [
        ("a", lambda: section_gpu(opts)),
        ("b", lambda: section_plans(opts, report.section("a"), work)),
        ("c", lambda: section_fidelity(opts)),
        ("d", lambda: section_serve(opts, report, work)),
    ]
    try:
        for key, step in steps:
            if key not in opts.sections:
                report.sections.append(Section(key, SECTION_TITLES[key]).skip("not asked for (--sections)"))
                continue
            progress(f"section {key} ({_elapsed(report):.0f} s in)")
            try:
                section = step()
            except Exception as exc:  # noqa: BLE001 - one broken step must not hide the others
                section = Section(key, SECTION_TITLES[key]).fail(f"{type(exc).__name__}: {exc}")
                section.lines += traceback.format_exc().strip().splitlines()[-6:]
            report.sections.append(section)
            progress(f"section {key}: {section.status}{': ' + section.why if section.why else ''}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.seconds = _elapsed(report)
    return report


def render(report: Report) -> str:
    lines = ["# imdsr GPU check", ""]
    lines += [f"- {k}: {v}" for k, v in report.environment.items()]
    for s in report.sections:
        lines += ["", f"## {s.key}. {s.title}: {s.status.upper()}", ""]
        if s.why:
            lines.append(f"- **{'skipped' if s.status == SKIPPED else 'failed'}**: {s.why}")
        # Markdown: prose as bullets; tables, blank lines and indented (log) lines as they are
        lines += [line if not line or line.startswith(("|", "    ", "**")) else f"- {line}"
                  for line in s.lines]
    lines += ["", "## e. summary", "", "| section | status | result |", "| --- | --- | --- |"]
    for s in report.sections:
        result = " ".join((s.summary or s.why).split()).replace("|", "/")
        lines.append(f"| {s.key}. {s.title} | {s.status} | {result} |")
    lines += ["", f"{report.seconds:.0f} s; exit code {exit_code(report)} "
              "(non-zero only for a failed section or verdict; skips are not failures)"]
    return "\n".join(lines) + "\n"


def write_report(report: Report, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "report.md", out / "report.json"
    md.write_text(render(report))
    js.write_text(json.dumps(report.as_dict(), indent=1, default=str) + "\n")
    return md, js

