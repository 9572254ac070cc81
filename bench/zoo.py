"""``imdsr bench zoo``: the served NTIRE efficient-SR models side by side, in one run, on one machine.

For each model of the zoo (IMDeception c16nla, its NTIRE 2022 peers and SRneXt of NTIRE 2023)
and its published checkpoint: structure (params, FLOPs and activations at 256x256 by NTIRE's
counting, ``training/summary.py``), the served graph's speed on each CPU runtime at each
precision it runs in (``runtimes.make_runner``, the code Triton runs), the full service's speed
(one Triton repository holding every model, the gateway in front, ``POST /upscale`` of a PNG at 1
and 4 clients), and Y-PSNR/SSIM on the standard sets (Set5, Set14, BSD100, Urban100, as
``imdsr eval --benchmark`` measures them, cached per checkpoint: ``bench/zoo_quality.py``).
Beside them, the published figures (the 2022 challenge report's, the 2023 team's factsheet).
Optionally ("seams") how far tiled inference is from whole-image inference for each architecture
at a few contexts, which is what the registry's tiling rules rest on. ``bench/zoo_doc.py``
renders the report as docs/MODEL_ZOO.md.

Torch is imported inside the functions that run models; the report's data needs none of it.
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
from bench.zoo_quality import BICUBIC, BenchmarkCache, SetScore
from imdsr.contract import SCALE
from imdsr.imaging.pipeline import upscale_tiled
from imdsr.imaging.tiling import TilingRule, plan_tiles
from training.models.registry import ChallengeRow, get_variant, list_variants

# The zoo: every variant whose published checkpoint the registry names, in its order.
ZOO: tuple[str, ...] = tuple(v for v in list_variants() if get_variant(v).checkpoint)
# The published row of each variant that has one (the registry's entries): the NTIRE 2022
# report's, or for SRneXt its NTIRE 2023 factsheet's (another GPU, another test set).
PUBLISHED: dict[str, ChallengeRow] = {
    v: row for v in list_variants() if (row := get_variant(v).challenge) is not None}
CLIENTS: tuple[int, ...] = (1, 4)
SIZE = 256                      # LR input side of the speed figures (the challenges' 256x256)
CONTEXT_FACTORS = (0.5, 1.0, 2.0)
SEAM_TILE = 128                 # requested core; rounded down to each rule's alignment
STANDARD_SETS: tuple[str, ...] = ("set5", "set14", "bsd100", "urban100")
# The bare timings: each CPU runtime at each precision it runs the served graph in
# (runtimes.make_runner: ONNX Runtime f32 only; OpenVINO f32 and bf16).
BARE: tuple[tuple[str, str], ...] = (("onnxruntime", "f32"), ("openvino", "f32"),
                                     ("openvino", "bf16"))


def bare_key(runtime: str, precision: str) -> str:
    return f"{runtime} {precision}"


def published_zoo(report: str) -> list[str]:
    """The zoo's variants whose published checkpoint comes with ``report`` ("NTIRE 2022" from the
    challenge repository's model_zoo, "NTIRE 2023" from the team's own)."""
    return [v for v in ZOO if v in PUBLISHED and PUBLISHED[v].report == report]


@dataclass
class ZooRow:
    variant: str
    arch: str
    params: int = 0
    flops: int = 0                  # NTIRE counting: conv MACs + activation elements
    acts: int = 0                   # conv output elements
    convs: int = 0                  # a grouped conv counts once
    attention_macs: int = 0         # IMDeception's attention matmuls (not in NTIRE's counter)
    model_ms: dict[str, float] = field(default_factory=dict)    # bare_key -> ms per 256x256
    # bare_key -> the precision the runtime reports it compiled for (OpenVINO falls back to f32
    # where the CPU has no bf16), so a "bf16" column never hides an f32 run
    ran_as: dict[str, str] = field(default_factory=dict)
    bf16_levels: int | None = None  # max |OpenVINO bf16 - f32| over the 256x256 output, 8-bit
    bf16_frac_over_1: float | None = None  # share of output pixels more than one level off
    service_mpx: dict[int, float] = field(default_factory=dict)     # clients -> output Mpx/s
    service_p50_ms: dict[int, float] = field(default_factory=dict)
    service_failures: int = 0
    benchmarks: dict[str, SetScore] = field(default_factory=dict)  # set -> Y-PSNR / SSIM


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
    service_runtime: str = ""        # its bare_key, the bare figure the service is compared with
    seams_image: str = ""
    bicubic: dict[str, SetScore] = field(default_factory=dict)     # set -> bicubic's scores
    benchmarks_note: str = ""        # how many (model, set) scores came from the cache
    rows: list[ZooRow] = field(default_factory=list)
    seams: list[SeamRow] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def sets(self) -> list[str]:
        return list(self.bicubic)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ZooReport:
        """The inverse of ``as_dict`` (JSON keys are strings: client counts come back as ints)."""
        def scores(s: dict) -> dict[str, SetScore]:
            return {k: SetScore(**v) for k, v in s.items()}

        def row(r: dict) -> ZooRow:
            return ZooRow(**{**r, "service_mpx": {int(k): v for k, v in r["service_mpx"].items()},
                             "service_p50_ms": {int(k): v for k, v in r["service_p50_ms"].items()},
                             "benchmarks": scores(r["benchmarks"])})

        return cls(**{**d, "clients": tuple(d["clients"]), "bicubic": scores(d["bicubic"]),
                      "rows": [row(r) for r in d["rows"]],
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
    isa = [name for name, flag in (("AVX2", "avx2"), ("AVX-512", "avx512f"),
                                   ("AVX512_BF16", "avx512_bf16"), ("AMX", "amx_tile"))
           if flag in flags]
    return f"{model}, {cores} cores available" + (f" ({', '.join(isa)})" if isa else "")


def import_published(folder: Path, variants: Iterable[str], out: Path,
                     progress: Callable[[str], None] = print) -> dict[str, Path]:
    """The published checkpoints of ``variants`` (``folder``: the NTIRE 2022 ESR repository's
    model_zoo, or the folder holding a 2023 team's file) in the project's weights format under
    ``out``; as ``imdsr weights import-ntire22 --arch ARCH`` does."""
    from training.weights.ntire22 import CheckpointMismatch, import_file

    found: dict[str, Path] = {}
    for variant in variants:
        spec = get_variant(variant)
        if spec.checkpoint is None:
            raise CheckpointMismatch(f"{variant} has no published checkpoint")
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


def _reported_precision(runner: object, asked: str) -> str:
    """What OpenVINO compiled for (it ignores a bf16 hint on a CPU without bf16); the precision
    asked of any other runtime, which either runs it or refuses."""
    compiled = getattr(runner, "compiled", None)
    if compiled is None:
        return asked
    reported = str(compiled.get_property("INFERENCE_PRECISION_HINT"))  # "<Type: 'bfloat16'>"
    return "bf16" if "bf16" in reported or "bfloat16" in reported else "f32"


def bare_speed(row: ZooRow, onnx_file: Path, x: np.ndarray, threads: int, repeats: int) -> None:
    """``row``'s bare timings (best of ``repeats`` after a warm-up, ``bench.service.time_model``)
    on each runtime and precision of ``BARE``, and how far bf16's 8-bit output is from f32's."""
    from bench.service import time_model
    from triton_host.python_backend.runtimes import OUTPUT_U8_NAME, make_runner

    outputs: dict[str, np.ndarray] = {}
    for runtime, precision in BARE:
        key = bare_key(runtime, precision)
        runner = make_runner(runtime, str(onnx_file), threads, precision=precision)
        row.model_ms[key] = 1e3 * time_model(lambda r=runner: r.run(x, [OUTPUT_U8_NAME]), repeats)
        row.ran_as[key] = _reported_precision(runner, precision)
        outputs[key] = runner.run(x, [OUTPUT_U8_NAME])[0].astype(np.int16)
        del runner
    f32, bf16 = outputs.get(bare_key("openvino", "f32")), outputs.get(bare_key("openvino", "bf16"))
    if f32 is not None and bf16 is not None:
        diff = np.abs(bf16 - f32).max(axis=1)  # NCHW: the worst channel of each pixel
        row.bf16_levels, row.bf16_frac_over_1 = int(diff.max()), float((diff > 1).mean())


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


@dataclass(frozen=True)
class Parts:
    """Which measurements a run makes (``imdsr bench zoo --no-speed`` and the like)."""

    speed: bool = True              # bare timings per runtime and precision
    service: bool = True            # the full service
    seams: bool = True
    benchmarks: bool = True         # the standard sets (cached)
    sets: tuple[str, ...] = STANDARD_SETS
    sets_root: Path = Path("data/standard")
    cache: Path = Path("data/zoo_benchmarks.json")


def run_zoo(weights: dict[str, Path], *, command: str, threads: int = 2, repeats: int = 5,
            parts: Parts | None = None, progress: Callable[[str], None] = print) -> ZooReport:
    """Every measurement of the zoo ``parts`` asks for (default: all), one model after the
    other, in this process (plus Triton and the gateway for the service figures)."""
    import torch

    from bench.photos import square_photo
    from bench.zoo_quality import evaluate_zoo, standard_sets
    from export.repo import ModelSource, write_repository
    from export.serving import load_serving
    from imdsr.imaging import codec
    from training.models.registry import triton_name
    from training.summary import measure
    from training.weights.store import load_model

    parts = parts or Parts()
    start = time.monotonic()
    torch.set_num_threads(threads)
    variants = list(weights)
    report = ZooReport(command, machine(), time.strftime("%Y-%m-%d"), threads, repeats)
    cfg = load_serving()
    work = Path(tempfile.mkdtemp(prefix="imdsr-bench-zoo-"))
    try:
        repo = work / "repo"
        if parts.speed or parts.service:
            write_repository(repo, "cpu", [ModelSource(v, weights[v]) for v in variants], cfg)
            progress(f"exported {len(variants)} models into one repository")
        name, photo = square_photo(SIZE)
        x = np.ascontiguousarray(photo.astype(np.float32).transpose(2, 0, 1)[None] / 255.0)
        seam_name, seam_photo = seams_image() if parts.seams else ("", None)
        report.seams_image = seam_name
        for variant in variants:
            spec = get_variant(variant)
            model, _ = load_model(variant, weights[variant])
            c = measure(model, SIZE, SIZE)
            row = ZooRow(variant, spec.arch, c.params, c.flops, c.conv_output_elems, c.n_conv,
                         c.attention_macs)
            if parts.speed:
                bare_speed(row, repo / triton_name(variant) / "1" / "model.onnx", x, threads,
                           repeats)
                progress(f"{variant}: " + ", ".join(f"{k} {ms:.0f} ms"
                                                    for k, ms in row.model_ms.items()))
            if parts.seams and not any(s.arch == spec.arch for s in report.seams):
                report.seams += seams(variant, spec.arch, seam_photo, torch_infer(model), spec.tiling)
                progress(f"{variant}: seams measured ({spec.arch})")
            report.rows.append(row)
            del model
        if parts.benchmarks:
            got = evaluate_zoo(weights, standard_sets(parts.sets, parts.sets_root),
                               BenchmarkCache(parts.cache), progress)
            report.bicubic = got.scores[BICUBIC]
            for row in report.rows:
                row.benchmarks = got.scores[row.variant]
            pairs, fresh = len(variants) * len(parts.sets), len(got.measured)
            report.benchmarks_note = (f"{pairs - fresh} of {pairs} model-set scores from the cache "
                                      f"({parts.cache}), {fresh} measured in this run")
        if parts.service:
            png = codec.encode(codec.Picture(photo, None, False, "PNG"), codec.OutputFormat.PNG)
            levels = service_speed(repo, variants, png, SIZE * SIZE * SCALE * SCALE, list(CLIENTS),
                                   repeats, work, progress)
            for row in report.rows:
                for lv in levels[row.variant]:
                    row.service_mpx[lv.concurrency] = lv.mpx_per_s
                    row.service_p50_ms[lv.concurrency] = lv.p50_ms
                    row.service_failures += lv.failures
            from triton_host.python_backend.runtimes import resolve_precision

            # "auto" resolved as the served models resolve it, on this machine (the same CPU)
            served = resolve_precision(cfg.cpu.runtime, cfg.cpu.precision)
            report.service_runtime = bare_key(cfg.cpu.runtime, served)
            asked = "" if served == cfg.cpu.precision else f" {cfg.cpu.precision}, so"
            report.service_setup = (
                f"runtime {cfg.cpu.runtime}{asked} {served}, one instance per model, "
                f"{cfg.cpu.intra_op_threads} threads each, preferred batch sizes "
                f"{cfg.preferred_batch_sizes_for('cpu')}; input: {name} {SIZE}x{SIZE} PNG, "
                f"{repeats} requests per client per level after one untimed round")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.seconds = time.monotonic() - start
    return report
