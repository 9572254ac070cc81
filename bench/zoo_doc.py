"""docs/MODEL_ZOO.md from a ``ZooReport`` (``imdsr bench zoo``): three tables (speed, standard
benchmarks, published figures), the comparisons between them, the tiling seams, a plot.

The published figures keep their source apart: the NTIRE 2022 report timed its models on a
Titan Xp and tested on DIV2K test; SRneXt's NTIRE 2023 factsheet timed on an RTX 3090 and tested
on DIV2K+LSDIR. Each (report, GPU) gets its own column group and its own ranking, never one
ranking across them.

No torch: the renderer runs from a saved report's JSON as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.zoo import BARE, PUBLISHED, SEAM_TILE, ZooReport, ZooRow, bare_key
from imdsr.contract import SCALE
from training.models.registry import ChallengeRow, get_architecture


@dataclass(frozen=True)
class Source:
    """What a report's figures are: who published them and on which sets."""

    title: str
    val: str
    test: str


# Every ChallengeRow.report of the registry (a unit test holds the registry to this table).
REPORTS: dict[str, Source] = {
    "NTIRE 2022": Source("NTIRE 2022 ESR report", "DIV2K val", "DIV2K test"),
    "NTIRE 2023": Source("NTIRE 2023 ESR, the entry's factsheet", "DIV2K val", "DIV2K+LSDIR test"),
}
SET_TITLES = {"set5": "Set5", "set14": "Set14", "bsd100": "BSD100", "urban100": "Urban100"}

# Issue 17's earlier measurement: 2-core CPU, ONNX Runtime 2 threads, 256x256 input (ms, Mpx/s).
ISSUE_17: dict[str, tuple[float, float]] = {
    "c16nla": (745.0, 1.41),
    "imdn": (838.0, 1.25),
    "rlfn": (313.0, 3.35),
}
ORT, OV_F32, OV_BF16 = (bare_key(*k) for k in BARE)


def _mpx(ms: float | None, size: int) -> float | None:
    return None if not ms else size * size * SCALE * SCALE / (ms / 1e3) / 1e6


def _cell(value: float | None, fmt: str, dash: str = "-") -> str:
    return dash if value is None else format(value, fmt)


def _name(variant: str) -> str:
    p = PUBLISHED.get(variant)
    return f"`{variant}`" + (f" ({p.team} {p.entry})" if p else "")


def _row_line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _head(cells: list[str]) -> list[str]:
    return [_row_line(cells), "|" + "---|" * len(cells)]


def groups(rows: list[ZooRow]) -> list[tuple[str, str]]:
    """The (report, GPU) pairs of the rows' published figures, in the rows' order."""
    out: list[tuple[str, str]] = []
    for r in rows:
        p = PUBLISHED.get(r.variant)
        if p is not None and (p.report, p.gpu) not in out:
            out.append((p.report, p.gpu))
    return out


def _mean_psnr(scores: dict) -> float | None:
    return float(np.mean([s.y_psnr for s in scores.values()])) if scores else None


# --------------------------------------------------------------------------- the tables
def speed_table(report: ZooReport) -> str:
    """Structure and speed, measured here: one row per model."""
    c1, c4 = report.clients[0], report.clients[-1]
    lines = _head(["model", "params", f"FLOPs {report.size}² (G)", "acts (M)", "conv",
                   *(f"{k} Mpx/s (ms)" for k in (bare_key(*b) for b in BARE)),
                   "bf16 vs f32: max levels (pixels > 1)", f"service Mpx/s, {c1} client",
                   f"service Mpx/s, {c4} clients"])
    for r in report.rows:
        speed = []
        for runtime, precision in BARE:
            k = bare_key(runtime, precision)
            ms = r.model_ms.get(k)
            ran = r.ran_as.get(k, precision)
            speed.append("-" if ms is None else f"{_mpx(ms, report.size):.2f} ({ms:.0f})"
                         + ("" if ran == precision else f", ran {ran}"))
        bf16 = ("-" if r.bf16_levels is None
                else f"{r.bf16_levels} ({100 * (r.bf16_frac_over_1 or 0):.2f}%)")
        lines.append(_row_line([
            _name(r.variant), f"{r.params / 1e6:.3f}M", f"{r.flops / 1e9:.2f}",
            f"{r.acts / 1e6:.2f}", str(r.convs), *speed, bf16,
            _cell(r.service_mpx.get(c1), ".2f"), _cell(r.service_mpx.get(c4), ".2f")]))
    return "\n".join(lines)


def benchmark_table(report: ZooReport) -> str:
    """Y-PSNR / SSIM per standard set, bicubic first, then the mean PSNR and the gain over it."""
    sets = report.sets
    base = _mean_psnr(report.bicubic)
    lines = _head(["model", *(f"{SET_TITLES.get(s, s)} Y-PSNR / SSIM" for s in sets),
                   "mean Y-PSNR", "gain over bicubic (dB)"])
    named = [("bicubic", report.bicubic)] + [(_name(r.variant), r.benchmarks) for r in report.rows]
    for name, scores in named:
        mean = _mean_psnr(scores)
        cells = [f"{scores[s].y_psnr:.2f} / {scores[s].y_ssim:.4f}" if s in scores else "-"
                 for s in sets]
        gain = "-" if name == "bicubic" or mean is None or base is None else f"{mean - base:+.2f}"
        lines.append(_row_line([name, *cells, _cell(mean, ".2f"), gain]))
    return "\n".join(lines)


def published_table(report: ZooReport) -> str:
    """The published figures, one column group per (report, GPU): a row's cells sit in its own
    group only, so no column mixes figures of two reports."""
    pairs = groups(report.rows)
    head = ["model"]
    for rep, gpu in pairs:
        src = REPORTS[rep]
        head += [f"{src.title}: PSNR {src.val} / {src.test}", f"{rep} ms ({gpu})"]
    lines = _head([*head, "published params / FLOPs / acts / conv"])
    for r in report.rows:
        p: ChallengeRow | None = PUBLISHED.get(r.variant)
        cells = [_name(r.variant)]
        for pair in pairs:
            mine = p is not None and (p.report, p.gpu) == pair
            cells += ([f"{p.psnr_val:.2f} / {p.psnr_test:.2f}", f"{p.runtime_ms:.2f}"]
                      if mine else ["", ""])
        cells.append("-" if p is None else
                     f"{p.params_m:.3f}M / {p.flops_g:.2f}G / {p.acts_m:.2f}M / {p.convs}")
        lines.append(_row_line(cells))
    return "\n".join(lines)


def table(report: ZooReport) -> str:
    """The three tables, as the command prints them."""
    return "\n\n".join([speed_table(report), benchmark_table(report), published_table(report)])


def seams_table(report: ZooReport) -> str:
    lines = _head(["architecture (checkpoint)", "align", "rule context", "tile", "context", "tiles",
                   "overhead", "max 8-bit levels", "pixels > 1 level", "served as"])
    for s in report.seams:
        served = (f"whole up to {s.rule.whole_up_to} px a side, beyond: context {s.rule.context}"
                  if s.rule.whole_up_to else f"tiles, context {s.rule.context}")
        mark = "**" if s.context == s.rule.context else ""
        lines.append(_row_line([
            f"{s.arch} ({s.variant})", str(s.rule.align), str(s.rule.context), str(s.tile),
            f"{mark}{s.context}{mark}", str(s.tiles), f"{s.overhead:.2f}", str(s.max_levels),
            f"{100 * s.frac_over_1:.2f}%", served]))
    return "\n".join(lines)


# --------------------------------------------------------------------------- the prose
def _ranking(values: dict[str, float], reverse: bool) -> str:
    return " > ".join(sorted(values, key=values.__getitem__, reverse=reverse))


def _published_by_group(rows: dict[str, ZooRow], get) -> dict[tuple[str, str], dict[str, float]]:  # noqa: ANN001
    out: dict[tuple[str, str], dict[str, float]] = {}
    for v in rows:
        if (p := PUBLISHED.get(v)) is not None:
            out.setdefault((p.report, p.gpu), {})[v] = get(p)
    return out


def _hardware(report: ZooReport, rows: dict[str, ZooRow]) -> list[str]:
    times = {k: {v: r.model_ms[k] for v, r in rows.items() if k in r.model_ms}
             for k in (ORT, OV_F32, OV_BF16)}
    published = _published_by_group(rows, lambda p: p.runtime_ms)
    flops = {v: r.flops for v, r in rows.items()}
    first = next(iter(published), None)
    out = ["* **Hardware and runtime.** The challenges timed each model in PyTorch on a GPU "
           "(fp32, 256x256 input); here the served ONNX graph runs on the CPU above with "
           f"{report.threads} threads. The orders, fastest or smallest first:"]
    for (rep, gpu), ms in published.items():
        alone = "" if (rep, gpu) == first else (
            f" (timed on another GPU, in another year: not ranked with the {first[0]} models)")
        out.append(f"  * {rep} ({gpu}): {_ranking(ms, False)}{alone};")
    out += [f"  * here, {k}: {_ranking(t, False)};" for k, t in times.items() if t]
    out += [f"  * FLOPs: {_ranking(flops, False)};",
            f"  * activations: {_ranking({v: r.acts for v, r in rows.items()}, False)}."]
    cpu = times[OV_F32]
    if cpu and first is not None:
        gpu_ms = published[first]
        per = [f"{v} {cpu[v] / (flops[v] / 1e9):.1f} ms here"
               + (f", {gpu_ms[v] / (flops[v] / 1e9):.2f} ms on the {first[1]}" if v in gpu_ms else "")
               for v in rows if v in cpu]
        follows = [name for name, t in ((f"the {first[1]}'s", gpu_ms), ("OpenVINO's", cpu),
                                        ("ONNX Runtime's", times[ORT]))
                   if t and _ranking(t, False) == _ranking({v: flops[v] for v in t}, False)]
        out += [f"  Time per GFLOP ({OV_F32} here): " + "; ".join(per) + ". "
                + (f"Only {' and '.join(follows)} order follows FLOPs. " if follows
                   else "FLOPs rank the models on no machine here. ")
                + "Layers that do little arithmetic per byte they move (grouped, depthwise and "
                "1x1 convolutions, channel splits and concatenations, IMDeception's attention, "
                "RLFN's and EFDN's pooling and resampling, SRneXt's channel norms and shifts) run "
                "far below peak, and each runtime fuses and schedules them differently: a GPU's "
                "ranking is no guide to a CPU's, and the two CPU runtimes differ too."]
    bf16 = [f"{v} x{r.model_ms[OV_F32] / r.model_ms[OV_BF16]:.2f} ({r.bf16_levels} levels, "
            f"{100 * (r.bf16_frac_over_1 or 0):.2f}% of pixels > 1)"
            for v, r in rows.items() if OV_F32 in r.model_ms and OV_BF16 in r.model_ms
            and r.bf16_levels is not None]
    if bf16:
        fallback = [v for v, r in rows.items() if r.ran_as.get(OV_BF16, "bf16") != "bf16"]
        out += ["* **bf16.** OpenVINO bf16 over f32 speed, and bf16's 8-bit output against "
                "f32's on the 256x256 photo: " + "; ".join(bf16) + ". "
                + (f"This CPU has no bf16 ({', '.join(fallback)} ran f32): the figures are f32 "
                   "twice. " if fallback else "")
                + "The service runs what `[cpu] precision` (export/serving.toml, \"auto\" by "
                f"default) resolves to on its CPU: here {report.service_runtime or 'unmeasured'}. "
                "bf16's fidelity on the standard sets against PyTorch f32 is `imdsr bench "
                "precision`'s (docs/PERFORMANCE.md, \"Precision\")."]
    return out


def _service(report: ZooReport, rows: dict[str, ZooRow]) -> list[str]:
    key = report.service_runtime or OV_F32
    bare = {v: r.model_ms[key] for v, r in rows.items() if key in r.model_ms}
    served = {v: r.service_mpx for v, r in rows.items() if r.service_mpx and v in bare}
    if not served:
        return []
    c1, c4 = report.clients[0], report.clients[-1]
    ratio = "; ".join(f"{v} {m.get(c1, 0) / _mpx(bare[v], report.size):.2f} / "
                      f"{m.get(c4, 0) / _mpx(bare[v], report.size):.2f}" for v, m in served.items())
    return [f"* **Service vs bare model.** The service's output Mpx/s over the bare {key} "
            f"figure (the service's runtime), at {c1} / {c4} clients: {ratio}. A request also "
            "pays for PNG decoding, the gateway's tiling, gRPC and PNG encoding of the x4 "
            "output; with more clients these compete with the model for this machine's cores, "
            "and each model has one instance, so its requests queue rather than run side by side."]


def _counting(rows: dict[str, ZooRow]) -> list[str]:
    line = ("* **Counting.** Parameters, FLOPs (multiply-accumulates of every convolution plus "
            "one per element through an activation layer), activations (elements of every conv "
            "output) and convolutions are counted as the challenges count them, at 256x256 "
            "(`training/summary.py`; a unit test holds each model to its row, from the "
            "registry). Two conventions of ours: a grouped convolution counts once (the "
            "published IMDeception stores each as 4 convs: 134 in the table, 62 here), and "
            "IMDeception's attention matrix products are not convolutions, so neither NTIRE's "
            "counter nor ours includes them")
    att = rows.get("c16nla")
    if att and att.attention_macs:
        line += f" ({att.attention_macs / 1e9:.2f} G MACs for c16nla at 256x256)"
    return [line + "."]


def _psnr(report: ZooReport, rows: dict[str, ZooRow]) -> list[str]:
    sets = ", ".join(SET_TITLES.get(s, s) for s in report.sets)
    line = ("* **PSNR.** The standard sets are scored as `imdsr eval --benchmark` scores them "
            "(`training/evaluate.py`, the sets verified against the committed manifest): HR "
            "mod-cropped to x4, LR by MATLAB-style bicubic, PyTorch f32 on whole images, output "
            "rounded to 8 bits, Y (BT.601) with a 4-px border cropped. The challenges' PSNR is "
            "RGB on DIV2K (and for 2023 LSDIR) images, so absolute values differ; compare the "
            "models' order and spread")
    here = {v: m for v, r in rows.items() if (m := _mean_psnr(r.benchmarks)) is not None}
    if here:
        line += (f". Best first, mean over {sets} here: {_ranking(here, True)} (spread "
                 f"{max(here.values()) - min(here.values()):.2f} dB)")
        # one ranking per report: a figure of another report is named beside it, not ranked in
        for (rep, _gpu), val in _published_by_group(rows, lambda p: p.psnr_val).items():
            val = {v: x for v, x in val.items() if v in here}
            if len(val) > 1:
                line += (f"; {REPORTS[rep].val}, {rep} figures: {_ranking(val, True)} (spread "
                         f"{max(val.values()) - min(val.values()):.2f} dB)")
            elif val:
                (v, x), = val.items()
                line += (f"; {v}'s {REPORTS[rep].val} figure, {x:.2f} dB, is from "
                         f"{REPORTS[rep].title}: not ranked with another report's")
    return [line + "."]


def _issue_17(report: ZooReport, rows: dict[str, ZooRow]) -> list[str]:
    ort = {v: r.model_ms[ORT] for v, r in rows.items() if ORT in r.model_ms}
    issue = [v for v in ISSUE_17 if v in ort]
    if not issue:
        return []
    out = ["", "### Issue 17's earlier CPU measurement", "",
           "Measured before the models were served: 2-core CPU, ONNX Runtime with 2 threads, "
           "256x256 input. Here: the served graph (with the 8-bit output the service uses) on "
           "ONNX Runtime, same threads and size.", "",
           *_head(["model", "issue 17 ms", "issue 17 Mpx/s", "here ms", "here Mpx/s",
                   "here / issue time"])]
    for v in issue:
        ms, mpx = ISSUE_17[v]
        out.append(_row_line([_name(v), f"{ms:.0f}", f"{mpx:.2f}", f"{ort[v]:.0f}",
                              f"{_mpx(ort[v], report.size):.2f}", f"{ort[v] / ms:.2f}"]))
    out += ["", "The issue does not record its machine's model or how it exported the graphs. "
            "This workplace's earlier sessions ran on 2-core VMs with AVX2 only (docs/"
            "PERFORMANCE.md); the machine line above says what this run's CPU reports, and a "
            "CPU with AVX-512/AMX alone can account for a large part of the difference. Here "
            "the graphs are the served ones (our exporter's, simplified, ending in the "
            "8-bit output), timed best-of-N in one run. On a shared 2-core machine one model's "
            "time also moves by tens of percent between runs, so only figures from one run "
            "(the table above) compare models."]
    return out


def _comparisons(report: ZooReport) -> list[str]:
    rows = {r.variant: r for r in report.rows}
    return ["## Why the figures differ", "", *_hardware(report, rows), *_service(report, rows),
            *_counting(rows), *_psnr(report, rows), *_issue_17(report, rows)]


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


def _seam_notes(report: ZooReport) -> list[str]:
    imdn, rlfn, efdn, srnext = (get_architecture(a).tiling
                                for a in ("imdn", "rlfn", "efdn", "srnext"))
    notes = [
        "* IMDN as the NTIRE 2022 baseline has **no contrast-aware channel attention**: the CCA "
        "layer of the IMDN paper is not in the challenge baseline's block (and NEESR's EFDN has "
        "its CCA commented out). Every IMDN operation is local, so its tiles can be exact: the "
        "error falls to rounding as the context covers the receptive field, and the registry "
        f"uses context {imdn.context} (align {imdn.align}). Issue 17 assumed the IMDN baseline "
        "had the global channel attention and could not be tiled exactly.",
        "* RLFN's and EFDN's spatial attention (ESA) max-pools a strided projection and resamples "
        "it bilinearly to the window's size, so each tile sees a differently pooled and "
        "interpolated attention map: no context makes them exact. The service therefore runs "
        f"them as one window up to {rlfn.whole_up_to} px a side (exactly whole-image inference) "
        f"and tiles larger images by the registry's rule (RLFN: context {rlfn.context}, align "
        f"{rlfn.align} = conv stride 2 x pool stride 3; EFDN: context {efdn.context}, align "
        f"{efdn.align} = pool stride 7)." + _best_contexts(report),
        "* IMDeception's block attention works on a fixed 32-px grid: windows aligned to 32 "
        "with 32 px of context reproduce whole-image inference to float rounding "
        "(docs/PERFORMANCE.md, \"Tiling\").",
    ]
    mine = [s for s in report.seams if s.arch == "srnext"]
    if mine:
        at_rule = ", ".join(f"{s.max_levels} level{'' if s.max_levels == 1 else 's'} at context "
                            f"{s.context}" for s in mine)
        notes.append(
            "* SRneXt is local too (strip convolutions, channel norms, one-pixel shifts) but its "
            "26 layers reach about 236 LR px; the trained weights' reach is far shorter: the "
            f"registry's context {srnext.context} (align {srnext.align}) keeps its tiles within "
            f"about one level of the whole image (this run: {at_rule}). Random-init weights reach "
            "much further (tests/integration/test_model_zoo_serving.py measures both), so the "
            "rule is a property of the published checkpoint, to re-measure for new weights.")
    return notes


def _models_line(report: ZooReport) -> str:
    reps = {p.report for r in report.rows if (p := PUBLISHED.get(r.variant)) is not None}
    parts = []
    if "NTIRE 2022" in reps:
        parts.append("the published NTIRE 2022 ESR checkpoints (model_zoo/ of the challenge "
                     "repository)")
    parts += [f"{p.team}'s {p.report} {p.entry} checkpoint (its team's repository)"
              for r in report.rows if (p := PUBLISHED.get(r.variant)) is not None
              and p.report != "NTIRE 2022"]
    return ("Models: " + (" and ".join(parts) or "the weights given with --weights")
            + ", imported with `imdsr weights import-ntire22 --arch ARCH` into the project's "
            "format and exported to ONNX as `imdsr export repo` exports every served model.")


def render(report: ZooReport, plot_file: str | None = None) -> str:
    c1, c4 = report.clients[0], report.clients[-1]
    lines = [
        "# Model zoo: IMDeception and its NTIRE efficient-SR peers, served", "",
        f"Generated by `{report.command}` on {report.date} ({report.seconds / 60:.0f} min). "
        "Every figure measured here comes from that one run, on one machine, one model after "
        "the other; figures of other runs or machines are not comparable with them (the "
        "standard-set scores come from a cache where the checkpoint was scored before: they do "
        "not depend on the machine).", "",
        f"Machine: {report.machine}.", "",
        _models_line(report), "",
        "## Structure and speed, measured here", "",
        f"* params, FLOPs, acts (conv output elements), conv: NTIRE counting at "
        f"{report.size}x{report.size} (`training/summary.py`; a grouped conv counts once);",
        f"* `RUNTIME PRECISION` Mpx/s (ms): the served graph, {report.size}x{report.size} "
        f"input, one image at a time in-process on each CPU runtime and precision it runs in "
        f"with {report.threads} threads (`triton_host/python_backend/runtimes.py` `make_runner`, "
        f"the code Triton runs), best of {report.repeats} after a warm-up; output megapixels "
        f"per second (x4: {report.size * SCALE}x{report.size * SCALE} = "
        f"{(report.size * SCALE) ** 2 / 1e6:.2f} Mpx per image); \"ran f32\" where the runtime "
        "reports it compiled f32 for a bf16 request;",
        "* bf16 vs f32: the largest difference between OpenVINO's bf16 and f32 8-bit outputs "
        "of that image, and the share of pixels more than one level apart;",
        f"* service Mpx/s: the full service, one Triton repository holding all models plus the "
        f"gateway (`imdsr gateway`, its own process), `POST /upscale?model=NAME` of a "
        f"{report.size}x{report.size} PNG by {c1} and {c4} closed-loop clients "
        f"({report.service_setup or 'not measured in this run'}); output Mpx/s over the wall time.",
        "", speed_table(report), "",
    ]
    failures = {r.variant: r.service_failures for r in report.rows if r.service_failures}
    if failures:
        lines += [f"Failed service requests (counted out of Mpx/s): {failures}.", ""]
    p50 = [r for r in report.rows if r.service_p50_ms]
    if p50:
        lines += ["Service p50 latency per request: " + "; ".join(
            f"{r.variant} " + ", ".join(f"{r.service_p50_ms[c]:.0f} ms at {c}" for c in report.clients
                                        if c in r.service_p50_ms) for r in p50) + ".", ""]
    lines += ["## Standard benchmarks, measured here", ""]
    if report.bicubic:
        lines += ["Mean Y-PSNR (dB) / SSIM per set, x4, as `imdsr eval --benchmark` measures "
                  f"them (\"PSNR\" below); {report.benchmarks_note}.", "",
                  benchmark_table(report), ""]
    else:
        lines += ["Not measured in this run.", ""]
    sources = [f"{REPORTS[rep].title}: timed on {gpu}, PSNR (RGB) on {REPORTS[rep].val} / "
               f"{REPORTS[rep].test}" for rep, gpu in groups(report.rows)]
    lines += ["## Published figures", "",
              "Each report's own figures for the same checkpoint, in that report's own columns ("
              + "; ".join(sources) + "). Another GPU or another test set: figures of two column "
              "groups do not compare with each other, nor with ours.", "",
              published_table(report), ""]
    if plot_file:
        lines += [f"![output Mpx/s against mean Y-PSNR on the standard sets]({plot_file})", ""]
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
                  seams_table(report), "", *_seam_notes(report), ""]
    return "\n".join(lines).rstrip() + "\n"


def plot(report: ZooReport, out: Path) -> Path | None:
    """Output Mpx/s on each runtime and precision and through the service against the mean
    Y-PSNR over the standard sets."""
    rows = [(r, m) for r in report.rows if (m := _mean_psnr(r.benchmarks)) is not None and r.model_ms]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    series = [(k, lambda r, k=k: _mpx(r.model_ms.get(k), report.size), marker)
              for k, marker in zip((bare_key(*b) for b in BARE), ("o", "s", "D"), strict=True)]
    c = report.clients[-1]
    series.append((f"service, {c} clients", lambda r: r.service_mpx.get(c), "^"))
    for label, get, marker in series:
        pts = [(get(r), m) for r, m in rows if get(r)]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=label, zorder=3)
    for r, m in rows:  # one model's figures on one line, named once at its fastest
        xs = [x for x in (get(r) for _, get, _ in series) if x]
        ax.plot([min(xs), max(xs)], [m] * 2, color="grey", linewidth=0.8, zorder=1)
        ax.annotate(r.variant, (max(xs), m), fontsize=8, xytext=(6, -3), textcoords="offset points")
    ax.margins(x=0.12)
    ax.set_xlabel(f"output Mpx/s ({report.size}x{report.size} input, {report.threads} threads)")
    ax.set_ylabel(f"mean Y-PSNR over {', '.join(SET_TITLES.get(s, s) for s in report.sets)} (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("imdsr bench zoo: published NTIRE efficient-SR checkpoints, served on CPU",
                 fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
