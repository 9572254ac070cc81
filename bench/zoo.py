"""``imdsr bench zoo``: the served NTIRE 2022 ESR models side by side, in one run, on one machine.

For each model of the zoo (IMDeception c16nla and its challenge peers) and its published
checkpoint: structure (params, FLOPs and activations at 256x256 by NTIRE's counting,
``training/summary.py``), the served graph's speed on each CPU runtime (``served_model_seconds``,
the code Triton runs), the full service's speed (one Triton repository holding every model, the
gateway in front, ``POST /upscale`` of a PNG at 1 and 4 clients), and Y-PSNR/SSIM on the five
scikit-image photos (``training/evaluate.py``, the model card's evaluation). Beside them, the
challenge's published figures. Optionally ("seams") how far tiled inference is from whole-image
inference for each architecture at a few contexts, which is what the registry's tiling rules rest
on. ``render`` writes docs/MODEL_ZOO.md.

Torch is imported inside the functions that run models; the table renderer needs none of it.
"""

from __future__ import annotations

import asyncio
import math
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bench.tiling import Infer, to_8bit, whole_image
from imdsr.contract import SCALE
from imdsr.imaging.pipeline import upscale_tiled
from imdsr.imaging.tiling import TilingRule, plan_tiles
from training.models.registry import ChallengeRow, get_architecture, get_variant, list_variants

# The zoo: every variant whose published NTIRE 2022 checkpoint the registry names, in its order.
ZOO: tuple[str, ...] = tuple(v for v in list_variants() if get_variant(v).checkpoint)
# The challenge report's row of each variant that has one (the registry's entries).
PUBLISHED: dict[str, ChallengeRow] = {
    v: row for v in list_variants() if (row := get_variant(v).challenge) is not None}
CLIENTS: tuple[int, ...] = (1, 4)
SIZE = 256                      # LR input side of the speed figures (the challenge's 256x256)
CONTEXT_FACTORS = (0.5, 1.0, 2.0)
SEAM_TILE = 128                 # requested core; rounded down to each rule's alignment


# Issue 17's earlier measurement: 2-core CPU, ONNX Runtime 2 threads, 256x256 input (ms, Mpx/s).
ISSUE_17: dict[str, tuple[float, float]] = {
    "c16nla": (745.0, 1.41),
    "imdn": (838.0, 1.25),
    "rlfn": (313.0, 3.35),
}


@dataclass
class ZooRow:
    variant: str
    arch: str
    params: int = 0
    flops: int = 0                  # NTIRE counting: conv MACs + activation elements
    acts: int = 0                   # conv output elements
    convs: int = 0                  # a grouped conv counts once
    attention_macs: int = 0         # IMDeception's attention matmuls (not in NTIRE's counter)
    model_ms: dict[str, float] = field(default_factory=dict)        # runtime -> ms per 256x256
    service_mpx: dict[int, float] = field(default_factory=dict)     # clients -> output Mpx/s
    service_p50_ms: dict[int, float] = field(default_factory=dict)
    service_failures: int = 0
    y_psnr: float | None = None     # mean over the five photos
    y_ssim: float | None = None
    rgb_psnr: float | None = None
    bicubic_y_psnr: float | None = None


@dataclass(frozen=True)
class SeamRow:
    variant: str
    arch: str
    rule: TilingRule
    tile: int
    context: int
    tiles: int
    overhead: float
    max_levels: int                 # max |tiled - whole| over all pixels and channels, 8-bit
    frac_over_1: float              # fraction of pixels with some channel more than 1 level off


@dataclass
class ZooReport:
    command: str
    machine: str
    date: str
    threads: int
    repeats: int
    size: int = SIZE
    clients: tuple[int, ...] = CLIENTS
    service_setup: str = ""          # how the service ran (runtime, instances, threads)
    seams_image: str = ""
    rows: list[ZooRow] = field(default_factory=list)
    seams: list[SeamRow] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ZooReport:
        """The inverse of ``as_dict`` (JSON keys are strings: client counts come back as ints)."""
        def row(r: dict) -> ZooRow:
            return ZooRow(**{**r, "service_mpx": {int(k): v for k, v in r["service_mpx"].items()},
                             "service_p50_ms": {int(k): v for k, v in r["service_p50_ms"].items()}})

        return cls(**{**d, "clients": tuple(d["clients"]), "rows": [row(r) for r in d["rows"]],
                      "seams": [SeamRow(**{**s, "rule": TilingRule(**s["rule"])}) for s in d["seams"]]})


# --------------------------------------------------------------------------- inputs
def machine() -> str:
    """CPU model and cores, from /proc/cpuinfo where there is one."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    isa = [name for name, flag in (("AVX2", "avx2"), ("AVX-512", "avx512f"), ("AMX", "amx_tile"))
           if flag in flags]
    return f"{model}, {cores} cores available" + (f" ({', '.join(isa)})" if isa else "")


def import_ntire22(folder: Path, variants: Iterable[str], out: Path,
                   progress: Callable[[str], None] = print) -> dict[str, Path]:
    """The published checkpoints of ``variants`` (``folder``: the NTIRE 2022 ESR repository's
    model_zoo) in the project's weights format under ``out``; as ``imdsr weights import-ntire22``."""
    from training.weights.ntire22 import CheckpointMismatch, import_file

    found: dict[str, Path] = {}
    for variant in variants:
        spec = get_variant(variant)
        if spec.checkpoint is None:
            raise CheckpointMismatch(f"{variant} has no published NTIRE 2022 checkpoint")
        src, dst = folder / spec.checkpoint, out / f"{variant}.safetensors"
        imported, _ = import_file(src, spec.arch, dst)
        if imported != variant:
            raise CheckpointMismatch(f"{src} holds the {imported} structure, not {variant}")
        found[variant] = dst
        progress(f"imported {src.name} as {variant}")
    return found


def seam_contexts(rule: TilingRule, factors: Iterable[float] = CONTEXT_FACTORS) -> list[int]:
    """``factors`` x the rule's context, each rounded to the rule's alignment (halves down: 0.5x
    of IMDeception's 32 with align 32 is no context at all)."""
    out = []
    for f in factors:
        ctx = math.ceil(f * rule.context / rule.align - 0.5) * rule.align
        if ctx not in out:
            out.append(ctx)
    return out


def seams_image() -> tuple[str, np.ndarray]:
    """A real photo: scikit-image's astronaut, rows 64-447 (384x512 LR, uint8)."""
    from skimage import data

    return "astronaut rows 64-447, 384x512", np.ascontiguousarray(data.astronaut()[64:448])


# --------------------------------------------------------------------------- measurements
def seams(variant: str, arch: str, image: np.ndarray, infer: Infer, rule: TilingRule,
          tile: int = SEAM_TILE, contexts: Iterable[int] | None = None,
          scale: int = SCALE) -> list[SeamRow]:
    """Tiled (``rule``'s alignment, ``tile`` rounded to it) vs whole-image inference of the uint8
    HWC ``image``, in 8-bit levels, for each context (default: ``seam_contexts(rule)``)."""
    h, w = image.shape[:2]
    tile = rule.tile(tile)
    as_float = image.astype(np.float32) / 255.0
    reference = to_8bit(whole_image(as_float, infer)).astype(np.int16)
    rows = []
    for context in seam_contexts(rule) if contexts is None else contexts:
        plan = plan_tiles(h, w, tile, context, rule.align)
        tiled = to_8bit(upscale_tiled(as_float, infer, scale, tile, context, align=rule.align))
        diff = np.abs(tiled.astype(np.int16) - reference).max(axis=2)
        rows.append(SeamRow(variant, arch, rule, tile, context, len(plan), plan.overhead,
                            int(diff.max()), float((diff > 1).mean())))
    return rows


def torch_infer(model) -> Infer:  # noqa: ANN001 - nn.Module; torch stays out of module scope
    import torch

    def infer(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return infer


def service_speed(repo: Path, variants: list[str], png: bytes, out_pixels: int,
                  clients: list[int], rounds: int, work: Path,
                  progress: Callable[[str], None] = print) -> dict[str, list]:
    """Each variant through one Triton (``repo``) and the gateway: variant -> [Level per clients]."""
    from bench.service import gateway, service_levels, triton

    out: dict[str, list] = {}
    with triton(repo, work / "triton.log") as server, \
            gateway(server.grpc_url, variants[0], work / "gateway.log") as (_, url):
        progress("Triton and the gateway are up")
        for variant in variants:
            out[variant] = asyncio.run(service_levels(url, png, variant, out_pixels, clients, rounds))
            progress(f"{variant}: full service measured")
    return out


def run_zoo(weights: dict[str, Path], *, command: str, threads: int = 2, repeats: int = 5,
            with_service: bool = True, with_seams: bool = True,
            progress: Callable[[str], None] = print) -> ZooReport:
    """Every measurement of the zoo, one model after the other, in this process (plus Triton and
    the gateway for the service figures)."""
    import torch

    from bench.photos import square_photo
    from bench.service import served_model_seconds
    from export.repo import ModelSource, write_repository
    from export.serving import load_serving
    from imdsr.imaging import codec
    from training.evaluate import evaluate_images, mean_row, skimage_photos
    from training.models.registry import triton_name
    from training.summary import measure
    from training.weights.store import load_model
    from triton_host.python_backend.runtimes import RUNTIMES

    start = time.monotonic()
    torch.set_num_threads(threads)
    variants = list(weights)
    report = ZooReport(command, machine(), time.strftime("%Y-%m-%d"), threads, repeats)
    cfg = load_serving()
    work = Path(tempfile.mkdtemp(prefix="imdsr-bench-zoo-"))
    try:
        repo = work / "repo"
        write_repository(repo, "cpu", [ModelSource(v, weights[v]) for v in variants], cfg)
        progress(f"exported {len(variants)} models into one repository")
        name, photo = square_photo(SIZE)
        x = np.ascontiguousarray(photo.astype(np.float32).transpose(2, 0, 1)[None] / 255.0)
        photos = skimage_photos()
        seam_name, seam_photo = seams_image() if with_seams else ("", None)
        report.seams_image = seam_name
        for variant in variants:
            spec = get_variant(variant)
            model, _ = load_model(variant, weights[variant])
            model.eval()
            c = measure(model, SIZE, SIZE)
            row = ZooRow(variant, spec.arch, c.params, c.flops, c.conv_output_elems, c.n_conv,
                         c.attention_macs)
            onnx_file = repo / triton_name(variant) / "1" / "model.onnx"
            for runtime in RUNTIMES:
                row.model_ms[runtime] = 1e3 * served_model_seconds(onnx_file, runtime, x, threads,
                                                                   repeats)
            progress(f"{variant}: " + ", ".join(f"{r} {ms:.0f} ms" for r, ms in row.model_ms.items()))
            mean = mean_row(evaluate_images(model, photos, SCALE))
            row.y_psnr, row.y_ssim, row.rgb_psnr = mean.model.y_psnr, mean.model.y_ssim, mean.model.rgb_psnr
            row.bicubic_y_psnr = mean.bicubic.y_psnr
            progress(f"{variant}: five photos Y-PSNR {row.y_psnr:.2f} dB, SSIM {row.y_ssim:.4f}")
            if with_seams and not any(s.arch == spec.arch for s in report.seams):
                report.seams += seams(variant, spec.arch, seam_photo, torch_infer(model), spec.tiling)
                progress(f"{variant}: seams measured ({spec.arch})")
            report.rows.append(row)
            del model
        if with_service:
            png = codec.encode(codec.Picture(photo, None, False, "PNG"), codec.OutputFormat.PNG)
            levels = service_speed(repo, variants, png, SIZE * SIZE * SCALE * SCALE, list(CLIENTS),
                                   repeats, work, progress)
            for row in report.rows:
                for lv in levels[row.variant]:
                    row.service_mpx[lv.concurrency] = lv.mpx_per_s
                    row.service_p50_ms[lv.concurrency] = lv.p50_ms
                    row.service_failures += lv.failures
            report.service_setup = (
                f"runtime {cfg.cpu.runtime}, one instance per model, {cfg.cpu.intra_op_threads} "
                f"threads each, preferred batch sizes {cfg.preferred_batch_sizes_for('cpu')}; "
                f"input: {name} {SIZE}x{SIZE} PNG, {repeats} requests per client per level after "
                "one untimed round")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.seconds = time.monotonic() - start
    return report


# --------------------------------------------------------------------------- output
def _mpx(ms: float | None, size: int = SIZE) -> float | None:
    return None if not ms else size * size * SCALE * SCALE / (ms / 1e3) / 1e6


def _cell(value: float | None, fmt: str, dash: str = "-") -> str:
    return dash if value is None else format(value, fmt)


def _name(variant: str) -> str:
    p = PUBLISHED.get(variant)
    return f"`{variant}`" + (f" ({p.team} {p.entry})" if p else "")


def table(report: ZooReport) -> str:
    """The one table: measured here, then the challenge's figures for the same model."""
    from triton_host.python_backend.runtimes import RUNTIMES

    c1, *rest = report.clients
    c4 = rest[-1] if rest else c1
    head = ["model", "params", f"FLOPs {report.size}² (G)", "acts (M)", "conv",
            *(f"{r} Mpx/s (ms)" for r in RUNTIMES),
            f"service Mpx/s, {c1} client", f"service Mpx/s, {c4} clients",
            "five photos Y-PSNR / SSIM (RGB-PSNR)",
            "NTIRE PSNR val / test", "NTIRE ms (Titan Xp)", "NTIRE params / FLOPs / acts / conv"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report.rows:
        p = PUBLISHED.get(r.variant)
        speed = [f"{_mpx(r.model_ms[rt]):.2f} ({r.model_ms[rt]:.0f})" if rt in r.model_ms else "-"
                 for rt in RUNTIMES]
        quality = "-" if r.y_psnr is None else (f"{r.y_psnr:.2f} / {r.y_ssim:.4f} ({r.rgb_psnr:.2f})")
        published = ["-", "-", "-"] if p is None else [
            f"{p.psnr_val:.2f} / {p.psnr_test:.2f}", f"{p.runtime_ms:.2f}",
            f"{p.params_m:.3f}M / {p.flops_g:.2f}G / {p.acts_m:.2f}M / {p.convs}"]
        lines.append("| " + " | ".join([
            _name(r.variant), f"{r.params / 1e6:.3f}M", f"{r.flops / 1e9:.2f}", f"{r.acts / 1e6:.2f}",
            str(r.convs), *speed, _cell(r.service_mpx.get(c1), ".2f"),
            _cell(r.service_mpx.get(c4), ".2f"), quality, *published]) + " |")
    return "\n".join(lines)


def seams_table(report: ZooReport) -> str:
    head = ["architecture (checkpoint)", "align", "rule context", "tile", "context", "tiles",
            "overhead", "max 8-bit levels", "pixels > 1 level", "served as"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in report.seams:
        served = (f"whole up to {s.rule.whole_up_to} px a side, beyond: context {s.rule.context}"
                  if s.rule.whole_up_to else f"tiles, context {s.rule.context}")
        mark = "**" if s.context == s.rule.context else ""
        lines.append("| " + " | ".join([
            f"{s.arch} ({s.variant})", str(s.rule.align), str(s.rule.context), str(s.tile),
            f"{mark}{s.context}{mark}", str(s.tiles), f"{s.overhead:.2f}", str(s.max_levels),
            f"{100 * s.frac_over_1:.2f}%", served]) + " |")
    return "\n".join(lines)


def _ranking(values: dict[str, float], reverse: bool) -> str:
    order = sorted(values, key=values.__getitem__, reverse=reverse)
    return " > ".join(f"{v}" for v in order)


def _comparisons(report: ZooReport) -> list[str]:
    rows = {r.variant: r for r in report.rows}
    out = ["## Why the figures differ", ""]
    gpu = {v: PUBLISHED[v].runtime_ms for v in rows if v in PUBLISHED}
    cpu = {v: r.model_ms["openvino"] for v, r in rows.items() if "openvino" in r.model_ms}
    ort = {v: r.model_ms["onnxruntime"] for v, r in rows.items() if "onnxruntime" in r.model_ms}
    flops = {v: r.flops for v, r in rows.items()}
    acts = {v: r.acts for v, r in rows.items()}
    out += [
        "* **Hardware and runtime.** The challenge timed each model in PyTorch on a Titan Xp GPU "
        "(fp32, 256x256 input); here the served ONNX graph runs on the CPU above with "
        f"{report.threads} threads. The orders, fastest or smallest first:",
        f"  * challenge (Titan Xp): {_ranking(gpu, False)};",
    ]
    if cpu:
        out.append(f"  * here, OpenVINO: {_ranking(cpu, False)};")
    if ort:
        out.append(f"  * here, ONNX Runtime: {_ranking(ort, False)};")
    out += [f"  * FLOPs: {_ranking(flops, False)};", f"  * activations: {_ranking(acts, False)}."]
    per_gflop = [f"{v} {cpu[v] / (flops[v] / 1e9):.1f} ms here, {gpu[v] / (flops[v] / 1e9):.2f} ms "
                 "on the Titan Xp" for v in rows if v in cpu and v in gpu]
    if per_gflop:
        follows = [name for name, times in (("the Titan Xp's", gpu), ("OpenVINO's", cpu),
                                            ("ONNX Runtime's", ort))
                   if times and _ranking(times, False) == _ranking(flops, False)]
        out += ["  Time per GFLOP (OpenVINO here): " + "; ".join(per_gflop) + ". "
                + ("All three orders follow FLOPs. " if len(follows) == 3
                   else f"Only {' and '.join(follows)} order follows FLOPs. " if follows
                   else "FLOPs rank the models on neither machine. ")
                + "Layers that do little arithmetic per byte they move (grouped and 1x1 "
                "convolutions, channel splits and concatenations, IMDeception's attention, RLFN's "
                "and EFDN's pooling and resampling) run far below peak, and each runtime fuses and "
                "schedules them differently: a GPU's ranking is no guide to a CPU's, and the two "
                "CPU runtimes differ too."]
    served = {v: r.service_mpx for v, r in rows.items() if r.service_mpx and v in cpu}
    if served:
        c1, c4 = report.clients[0], report.clients[-1]
        out += ["* **Service vs bare model.** The service's output Mpx/s over the bare OpenVINO "
                "figure (the service's runtime), at " + f"{c1} / {c4} clients: " + "; ".join(
                    f"{v} {m.get(c1, 0) / _mpx(cpu[v]):.2f} / {m.get(c4, 0) / _mpx(cpu[v]):.2f}"
                    for v, m in served.items()) + ". A request also pays for PNG decoding, the "
                "gateway's tiling, gRPC and PNG encoding of the x4 output; with more clients "
                "these compete with the model for this machine's cores, and each model has one "
                "instance, so its requests queue rather than run side by side."]
    out += [
        "* **Counting.** Parameters, FLOPs (multiply-accumulates of every convolution plus one "
        "per element through an activation layer), activations (elements of every conv output) "
        "and convolutions are counted as the challenge counts them, at 256x256 "
        "(`training/summary.py`; a unit test holds each model to its row, from the registry). "
        "Two conventions of ours: a grouped convolution counts once (the published IMDeception "
        "stores each as 4 convs: 134 in the table, 62 here), and IMDeception's attention matrix "
        "products are not "
        "convolutions, so neither NTIRE's counter nor ours includes them"]
    att = rows.get("c16nla")
    if att and att.attention_macs:
        out[-1] += f" ({att.attention_macs / 1e9:.2f} G MACs for c16nla at 256x256)"
    out[-1] += "."
    out += [
        "* **PSNR.** The challenge's PSNR is on DIV2K's 100 validation and 100 test images, RGB, 4 "
        "border pixels cropped; ours is the mean over the five photos in scikit-image's wheel "
        "(HR mod-cropped, LR by MATLAB-style bicubic, output rounded to 8 bits), Y channel "
        "(BT.601) with 4 pixels cropped, and RGB in brackets (the challenge's convention). "
        "Different photos give different absolute values; compare the models' order and spread"]
    gains = {v: r.y_psnr - r.bicubic_y_psnr for v, r in rows.items()
             if r.y_psnr is not None and r.bicubic_y_psnr is not None}
    if gains:
        here = {v: rows[v].y_psnr for v in gains}
        div2k = {v: PUBLISHED[v].psnr_val for v in gains if v in PUBLISHED}
        out[-1] += (". Gain over bicubic Y-PSNR here: "
                    + ", ".join(f"{v} {g:+.2f} dB" for v, g in gains.items())
                    + f". Best first, here: {_ranking(here, True)} (spread "
                    f"{max(here.values()) - min(here.values()):.2f} dB)")
        if div2k:
            out[-1] += (f"; DIV2K validation: {_ranking(div2k, True)} (spread "
                        f"{max(div2k.values()) - min(div2k.values()):.2f} dB)")
    out[-1] += "."
    issue = [v for v in ISSUE_17 if v in ort]
    if issue:
        out += ["", "### Issue 17's earlier CPU measurement", "",
                "Measured before the models were served: 2-core CPU, ONNX Runtime with 2 threads, "
                "256x256 input. Here: the served graph (with the 8-bit output the service uses) on "
                "ONNX Runtime, same threads and size.", "",
                "| model | issue 17 ms | issue 17 Mpx/s | here ms | here Mpx/s | here / issue time |",
                "|---|---|---|---|---|---|"]
        for v in issue:
            ms, mpx = ISSUE_17[v]
            out.append(f"| {_name(v)} | {ms:.0f} | {mpx:.2f} | {ort[v]:.0f} | {_mpx(ort[v]):.2f} "
                       f"| {ort[v] / ms:.2f} |")
        out += ["", "The issue does not record its machine's model or how it exported the graphs. "
                "This workplace's earlier sessions ran on 2-core VMs with AVX2 only (docs/"
                "PERFORMANCE.md); the machine line above says what this run's CPU reports, and a "
                "CPU with AVX-512/AMX alone can account for a large part of the difference. Here "
                "the graphs are the served ones (our exporter's, simplified, ending in the "
                "8-bit output), timed best-of-N in one run. On a shared 2-core machine one model's "
                "time also moves by tens of percent between runs, so only figures from one run "
                "(the table above) compare models."]
    return out


def _best_contexts(report: ZooReport) -> str:
    """Which context came closest to whole-image inference, for the models served whole."""
    best = {}
    for s in report.seams:
        if s.rule.whole_up_to and (s.arch not in best or (s.max_levels, s.frac_over_1)
                                   < (best[s.arch].max_levels, best[s.arch].frac_over_1)):
            best[s.arch] = s
    if not best:
        return ""
    return " Closest to whole-image inference in this run: " + "; ".join(
        f"{a.upper()} at context {s.context} ({s.max_levels} levels, {100 * s.frac_over_1:.2f}% "
        f"of pixels > 1{'' if s.context == s.rule.context else ', not the rule' + chr(39) + 's'})"
        for a, s in best.items()) + "."


def render(report: ZooReport, plot_file: str | None = None) -> str:
    imdn, rlfn, efdn = (get_architecture(a).tiling for a in ("imdn", "rlfn", "efdn"))
    c1, *rest = report.clients
    c4 = rest[-1] if rest else c1
    lines = [
        "# Model zoo: IMDeception and its NTIRE 2022 ESR peers, served", "",
        f"Generated by `{report.command}` on {report.date} ({report.seconds / 60:.0f} min). "
        "Every figure measured here comes from that one run, on one machine, one model after "
        "the other; figures of other runs or machines are not comparable with them.", "",
        f"Machine: {report.machine}.", "",
        "Models: the published NTIRE 2022 ESR checkpoints (model_zoo/ of the challenge "
        "repository), imported with `imdsr weights import-ntire22` into the project's format "
        "and exported to ONNX as `imdsr export repo` exports every served model.", "",
        "Columns:", "",
        f"* params, FLOPs, acts (conv output elements), conv: NTIRE 2022 counting at "
        f"{report.size}x{report.size} (`training/summary.py`; a grouped conv counts once);",
        f"* `onnxruntime`/`openvino` Mpx/s (ms): the served graph, {report.size}x{report.size} "
        f"input, one image at a time in-process on each CPU runtime with {report.threads} threads "
        f"(`triton_host/python_backend/runtimes.py`, the code Triton runs), best of "
        f"{report.repeats} after a warm-up; output megapixels per second (x4: "
        f"{report.size * SCALE}x{report.size * SCALE} = "
        f"{(report.size * SCALE) ** 2 / 1e6:.2f} Mpx per image);",
        f"* service Mpx/s: the full service, one Triton repository holding all models plus the "
        f"gateway (`imdsr gateway`, its own process), `POST /upscale?model=NAME` of a "
        f"{report.size}x{report.size} PNG by {c1} and {c4} closed-loop clients "
        f"({report.service_setup or 'not measured in this run'}); output Mpx/s over the wall time;",
        "* five photos: mean Y-PSNR (dB) / SSIM on BT.601 Y and RGB-PSNR over scikit-image's five "
        "photos, PyTorch, whole images (`imdsr eval`'s evaluation, docs/MODEL_CARD.md);",
        "* NTIRE: the challenge report's figures for the same checkpoint (DIV2K x4, runtime on a "
        "Titan Xp GPU).", "",
        table(report), "",
    ]
    failures = {r.variant: r.service_failures for r in report.rows if r.service_failures}
    if failures:
        lines += [f"Failed service requests (counted out of Mpx/s): {failures}.", ""]
    p50 = [r for r in report.rows if r.service_p50_ms]
    if p50:
        lines += ["Service p50 latency per request: " + "; ".join(
            f"{r.variant} " + ", ".join(f"{r.service_p50_ms[c]:.0f} ms at {c}" for c in report.clients
                                        if c in r.service_p50_ms) for r in p50) + ".", ""]
    if plot_file:
        lines += [f"![output Mpx/s against five-photo Y-PSNR]({plot_file})", ""]
    lines += _comparisons(report)
    if report.seams:
        lines += ["", "## Tiling seams", "",
                  f"Tiled against whole-image inference of one photo ({report.seams_image}), "
                  "PyTorch on the CPU, published checkpoints: the tiles placed by the registry's "
                  "`TilingRule` of each architecture (windows on its alignment, a core of "
                  f"{SEAM_TILE} px rounded down to it, so several tiles) at 0.5x, 1x and 2x the "
                  "rule's context (rounded to the alignment; the rule's own in bold). Max "
                  "difference over all output pixels and channels in 8-bit levels, and the share "
                  "of output pixels with a channel more than one level off (one level is a value "
                  "on a rounding boundary, not a seam).", "",
                  seams_table(report), "",
                  "* IMDN as the NTIRE 2022 baseline has **no contrast-aware channel attention**: "
                  "the CCA layer of the IMDN paper is not in the challenge baseline's block (and "
                  "NEESR's EFDN has its CCA commented out). Every IMDN operation is local, so its "
                  "tiles can be exact: the error falls to rounding as the context covers the "
                  f"receptive field, and the registry uses context {imdn.context} "
                  f"(align {imdn.align}). Issue 17 assumed "
                  "the IMDN baseline had the global channel attention and could not be tiled "
                  "exactly.",
                  "* RLFN's and EFDN's spatial attention (ESA) max-pools a strided projection and "
                  "resamples it bilinearly to the window's size, so each tile sees a differently "
                  "pooled and interpolated attention map: no context makes them exact. The service "
                  f"therefore runs them as one window up to {rlfn.whole_up_to} px a "
                  "side (exactly whole-image "
                  "inference) and tiles larger images by the registry's rule (RLFN: context "
                  f"{rlfn.context}, align {rlfn.align} = conv stride 2 x pool "
                  f"stride 3; EFDN: context {efdn.context}, align "
                  f"{efdn.align} = pool stride 7)." + _best_contexts(report),
                  "* IMDeception's block attention works on a fixed 32-px grid: windows aligned to "
                  "32 with 32 px of context reproduce whole-image inference to float rounding "
                  "(docs/PERFORMANCE.md, \"Tiling\").", ""]
    return "\n".join(lines).rstrip() + "\n"


def plot(report: ZooReport, out: Path) -> Path | None:
    """Output Mpx/s on each runtime and through the service against five-photo Y-PSNR."""
    rows = [r for r in report.rows if r.y_psnr is not None and r.model_ms]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    series = [(rt, lambda r, rt=rt: _mpx(r.model_ms.get(rt)), marker)
              for rt, marker in (("onnxruntime", "o"), ("openvino", "s"))]
    c = report.clients[-1]
    series.append((f"service, {c} clients", lambda r: r.service_mpx.get(c), "^"))
    for label, get, marker in series:
        pts = [(get(r), r.y_psnr) for r in rows if get(r)]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=label, zorder=3)
    for r in rows:  # one model's figures on one line, named once at its fastest
        xs = [x for x in (get(r) for _, get, _ in series) if x]
        ax.plot([min(xs), max(xs)], [r.y_psnr] * 2, color="grey", linewidth=0.8, zorder=1)
        ax.annotate(r.variant, (max(xs), r.y_psnr), fontsize=8, xytext=(6, -3),
                    textcoords="offset points")
    ax.margins(x=0.12)
    ax.set_xlabel(f"output Mpx/s ({report.size}x{report.size} input, {report.threads} threads)")
    ax.set_ylabel("five photos, mean Y-PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("imdsr bench zoo: published NTIRE 2022 ESR checkpoints, served on CPU", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
