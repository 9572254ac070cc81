"""``imdsr bench model|tiling|wire|service|memory|video|zoo|gpu``: every benchmark in one place, each side
by side in one run.

torch, tritonclient and the launcher are imported inside the commands: ``imdsr --help`` stays fast.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from imdsr.cli_support import fail
from imdsr.contract import DEFAULT_VARIANT, SCALE
from imdsr.settings import BenchSettings, PlanSettings

if TYPE_CHECKING:
    import numpy as np

ConfigOpt = Annotated[Path | None,
                      typer.Option("--config", help="serving TOML (default: export/serving.toml)")]


def check_variant(variant: str) -> str:
    from training.models import list_variants

    if variant not in list_variants():
        raise typer.BadParameter(f"unknown variant {variant!r}; known: {', '.join(list_variants())}")
    return variant


def bench_model(
    variant: Annotated[list[str], typer.Option(help="Variants (repeatable).")] = ["c16nla", "c4"],  # noqa: B006
    batch: Annotated[list[int], typer.Option(help="Batch sizes (repeatable).")] = [1, 8],  # noqa: B006
    size: Annotated[int, typer.Option(help="LR window side in pixels (a full gateway window is 320).")] = 256,
    device: Annotated[str, typer.Option(help="cuda or cpu (default: cuda where present).")] = "",
    seconds: Annotated[float, typer.Option(help="Timing per setting, seconds.")] = 1.0,
) -> None:
    """Model speed per precision (fp32, TF32, bf16, fp16 on CUDA): ms, Mpx/s, speed-up, error."""
    import torch

    from bench.model import bench_model as run
    from bench.model import format_rows

    for v in variant:
        check_variant(v)
    if size < 8 or any(b < 1 for b in batch):
        raise fail("--size must be at least 8 and every --batch at least 1")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise fail("--device cuda: torch sees no GPU on this machine")
    name = (torch.cuda.get_device_name(dev) if dev.type == "cuda"
            else f"CPU, {torch.get_num_threads()} threads")
    typer.echo(format_rows(run(variant, dev, batch, size, seconds), size, name))


def bench_tiling(
    variant: str = DEFAULT_VARIANT,
    weights: Annotated[str, typer.Option(help="'shipped', 'random', or a .safetensors path")
                       ] = "shipped",
    threads: int = 2,
) -> None:
    """Tiled vs whole-image inference (PyTorch): max difference, overhead and time per setting."""
    import torch

    from bench.photos import bench_images
    from bench.tiling import compare, markdown
    from training.models import create_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if weights == "random":
        model = create_model(variant).eval()
    else:
        from training.weights.store import load_model

        model, _ = load_model(variant, None if weights == "shipped" else Path(weights))

    def infer(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    rows = []
    for name, image in bench_images():
        rows += compare(name, image, infer, model.scale)
        typer.echo(f"{name} done", err=True)
    typer.echo(f"variant {variant}, weights {weights}, torch threads {threads}\n")
    typer.echo(markdown(rows))


def bench_wire(
    variant: Annotated[str, typer.Option(help="variant to serve")] = "c4",
    weights: Annotated[Path | None, typer.Option(help="weights (default: shipped, else random-init)")] = None,
    window: Annotated[int | None, typer.Option(help="window side (default: serving.toml)")] = None,
    batch: Annotated[int, typer.Option(help="windows per request")] = 1,
    iters: Annotated[int, typer.Option(help="timed requests per format")] = 20,
    threads: Annotated[int, typer.Option(help="ORT threads in the server")] = 2,
    config: ConfigOpt = None,
) -> None:
    """FP32 vs FP16 vs UINT8 tensors on the wire: bytes, latency and error through a real Triton."""
    import shutil
    import tempfile

    from bench.wire import format_results, run_wire_bench, temp_wire_repo
    from export.onnx_export import export_onnx
    from export.serving import load_serving
    from training.models import create_model
    from training.weights.store import WeightsError, WeightsMeta, save_weights, shipped_weights
    from triton_host.launcher import TritonOptions, TritonServer, free_ports

    cfg = load_serving(config)
    window = window or cfg.window
    cfg = cfg.model_copy(update={"cpu": cfg.cpu.model_copy(update={
        "instances": {"default": 1}, "intra_op_threads": threads, "warmup_batch_sizes": []})})
    work = Path(tempfile.mkdtemp(prefix="imdsr-bench-"))
    try:
        if weights is None:
            try:
                weights = shipped_weights(variant)
            except WeightsError:
                typer.echo(f"(no shipped weights for {variant}: random-init; bytes and latency do not "
                           "depend on weights, the error column does)")
                weights = save_weights(work / "w.safetensors", create_model(variant).state_dict(),
                                       WeightsMeta(variant, SCALE, "random-init"))
        onnx_file = export_onnx(variant, weights, work / "model.onnx").path
        repo = temp_wire_repo(variant, onnx_file, cfg)
        opts = TritonOptions(repo, *free_ports(3), host="127.0.0.1", exit_timeout_s=5)
        with (work / "triton.log").open("wb") as log, TritonServer(opts, log=log) as server:
            results = run_wire_bench(server.grpc_url, variant, window, batch, iters)
        typer.echo(f"{variant}, {batch}x3x{window}x{window} in, x{SCALE} out, gRPC over loopback, "
                   f"{iters} requests per format, ORT threads={threads}")
        typer.echo(format_results(results))
        shutil.rmtree(repo, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_service(
    variant: str = DEFAULT_VARIANT,
    weights: Annotated[Path | None, typer.Option(help="weights (default: shipped)")] = None,
    size: Annotated[int, typer.Option(help="input side in pixels (one window up to 320)")] = 256,
    threads: Annotated[int, typer.Option(help="runtime threads (Triton instance and bare model)")] = 2,
    concurrency: Annotated[list[int], typer.Option(help="client counts (repeatable)")] = [1, 2, 4, 8],  # noqa: B006
    rounds: Annotated[int, typer.Option(help="requests per client per level")] = 8,
    settle: Annotated[float, typer.Option(
        help="seconds idle after each level's untimed warm-up rounds, so that the model's "
             "background compilation of the shape is done before timing")] = 2.0,
    runtime: Annotated[list[str], typer.Option(help="CPU runtimes to compare (repeatable)")
                       ] = ["onnxruntime", "openvino"],  # noqa: B006
    out: Annotated[Path, typer.Option(help="folder for service.md, service.json, service.png")
                   ] = Path("bench-results"),
    config: ConfigOpt = None,
) -> None:
    """The full service vs the bare published model: model only per runtime, Triton only (gRPC,
    batching on/off), the full service; ratios and plots of throughput and p95 latency."""
    import json

    from bench.photos import square_photo
    from bench.service import ServiceBench, format_report, plot, run_service_bench
    from training.weights.store import WeightsError, shipped_weights
    from triton_host.python_backend.runtimes import RUNTIMES

    check_variant(variant)
    bad = [r for r in runtime if r not in RUNTIMES]
    if bad or size < 8 or threads < 1 or rounds < 1 or not concurrency or min(concurrency) < 1:
        raise fail(f"runtimes from {RUNTIMES}; size >= 8; threads, rounds, concurrency >= 1 (got {bad})")
    try:
        weights = weights or shipped_weights(variant)
    except WeightsError as exc:
        raise fail(str(exc)) from exc
    name, image = square_photo(size)
    if settle < 0:
        raise fail("--settle must be at least 0")
    bench = ServiceBench(variant, weights, image, name, threads, tuple(concurrency), rounds,
                         settle_s=settle, runtimes=tuple(runtime), serving_config=config)
    report = run_service_bench(bench, progress=lambda m: typer.echo(m, err=True))
    text = format_report(report)
    out.mkdir(parents=True, exist_ok=True)
    (out / "service.md").write_text(text + "\n")
    (out / "service.json").write_text(json.dumps(report.as_dict(), indent=1) + "\n")
    chart = plot(report, out / "service.png")
    typer.echo(text)
    typer.echo(f"\nwrote {out / 'service.md'}, {out / 'service.json'}, {chart}")


def bench_precision(
    variant: str = DEFAULT_VARIANT,
    weights: Annotated[Path | None, typer.Option(help="weights (default: shipped)")] = None,
    sets: Annotated[str, typer.Option(help="standard sets to score, comma-separated ('' for none)")
                    ] = "bsd100",
    sets_root: Annotated[Path, typer.Option(help="root of `imdsr data standard`")] = Path("data/standard"),
    threads: Annotated[int, typer.Option(help="runtime threads")] = 2,
    repeats: Annotated[int, typer.Option(help="timings: best of N")] = 8,
    out: Annotated[Path | None, typer.Option(help="also write the Markdown report here")] = None,
) -> None:
    """f32 vs bf16 on this CPU (OpenVINO) beside ONNX Runtime f32, for the served graph: ms per
    256x256 image and Y-PSNR on the standard sets against PyTorch f32, the measurement behind
    `[cpu] precision = "auto"`."""
    from bench.photos import square_photo
    from bench.precision import format_report, run_precision_bench
    from training.data.standard import StandardSetError, parse_set_names, set_files
    from training.weights.store import WeightsError, shipped_weights

    check_variant(variant)
    if threads < 1 or repeats < 1:
        raise fail("--threads and --repeats must be at least 1")
    try:
        weights = weights or shipped_weights(variant)
        files = {name: set_files(name, sets_root) for name in parse_set_names(sets)} if sets else {}
    except (WeightsError, StandardSetError, ValueError) as exc:
        raise fail(str(exc)) from exc
    _, image = square_photo(256)
    report = run_precision_bench(variant, weights, image, files, threads, repeats,
                                 progress=lambda m: typer.echo(m, err=True))
    text = format_report(report)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    typer.echo(text)


def bench_memory(
    variant: Annotated[str, typer.Option(help="model (c4: the memory is the gateway's, not the model's)")
                       ] = "c4",
    weights: Annotated[Path | None, typer.Option(help="weights (default: shipped)")] = None,
    burst: Annotated[int, typer.Option(help="concurrent largest requests")] = 8,
    budget_mib: Annotated[int, typer.Option(help="gateway memory budget, MiB (60% of a 2 GiB pod)")] = 1228,
    video: Annotated[bool, typer.Option(help="also a short clip and one --video-longer times "
                                              "longer, through POST /jobs")] = True,
    video_seconds: Annotated[float, typer.Option(min=0.5, help="the short clip's length")] = 2.0,
    video_longer: Annotated[int, typer.Option(min=2, help="the long clip's length, in short "
                                                          "clips")] = 4,
    video_size: Annotated[str, typer.Option(help="the clips' frame size, WxH")] = "320x180",
    images: Annotated[bool, typer.Option(help="the picture sizes and the burst")] = True,
) -> None:
    """Gateway peak memory per request size (JPEG in, PNG out) and under a burst of the largest;
    with --video, for a short clip and a longer one side by side (streamed: it should not grow
    with the clip's length)."""
    import shutil
    import tempfile

    from bench.memory import format_rows, measure, photo_jpeg, stack
    from bench.video import BENCH_ENV, measure_clip_memory
    from export.repo import ModelSource, write_repository
    from export.serving import load_serving
    from imdsr.video.synthetic import ClipSpec
    from training.weights.store import WeightsError, shipped_weights

    check_variant(variant)
    clip_w, clip_h = _size(video_size)
    try:
        weights = weights or shipped_weights(variant)
    except WeightsError as exc:
        raise fail(str(exc)) from exc
    work = Path(tempfile.mkdtemp(prefix="imdsr-bench-memory-"))
    try:
        repo = work / "repo"
        write_repository(repo, "cpu", [ModelSource(variant, weights)], load_serving())
        env = {"IMDSR_MEMORY_BUDGET_BYTES": str(budget_mib << 20),
               "IMDSR_JOBS_DIR": str(work / "jobs"), **BENCH_ENV}
        rows = []
        params = {"model": variant, "format": "png"}
        with stack(repo, variant, work, env) as (pid, url):
            for w, h in ((512, 384), (1024, 768), (2048, 1536)) if images else ():
                rows.append(measure(pid, url, photo_jpeg(w, h), (w, h), 1, "one request", params))
                typer.echo(f"{w}x{h} measured", err=True)
            if images:
                rows.append(measure(pid, url, photo_jpeg(2048, 1536), (2048, 1536), burst,
                                    f"{burst} at once", params))
            for n, what in ((1, "a clip (job)"), (video_longer, f"a clip {video_longer}x longer")
                            ) if video else ():
                spec = ClipSpec(seconds=video_seconds * n, fps=24, width=clip_w, height=clip_h)
                rows.append(measure_clip_memory(pid, url, spec, variant, what))
                typer.echo(f"{what} measured", err=True)
        typer.echo(f"{variant}, JPEG in, PNG out, memory budget {budget_mib} MiB\n")
        typer.echo(format_rows(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_zoo(
    ntire22: Annotated[Path | None, typer.Option(
        help="the NTIRE 2022 ESR repository's model_zoo folder: the zoo's published NTIRE 2022 "
             "checkpoints in it are imported (into a temporary folder) and measured")] = None,
    ntire23: Annotated[Path | None, typer.Option(
        help="the folder holding the zoo's NTIRE 2023 checkpoints as their teams publish them "
             "(SRneXt: team05_exnet.pth); imported and measured as --ntire22's")] = None,
    weights: Annotated[list[str], typer.Option(
        help="VARIANT=PATH (or ARCH=PATH): an imdsr weights file for that model, added to or "
             "replacing the folders' (repeatable)")] = [],  # noqa: B006
    out: Annotated[Path, typer.Option(help="the Markdown file to write")] = Path("docs/MODEL_ZOO.md"),
    repeats: Annotated[int, typer.Option(
        help="bare timings: best of N; service: requests per client per level")] = 5,
    speed: Annotated[bool, typer.Option(
        help="bare timings on each CPU runtime and precision (onnxruntime f32, openvino f32 "
             "and bf16)")] = True,
    service: Annotated[bool, typer.Option(help="the full service (Triton + gateway)")] = True,
    seams: Annotated[bool, typer.Option(help="tiled vs whole-image inference per architecture")
                     ] = True,
    benchmarks: Annotated[bool, typer.Option(
        help="Y-PSNR/SSIM on the standard sets (imdsr eval --benchmark's protocol), cached")] = True,
    sets: Annotated[str, typer.Option(help="the standard sets, comma-separated")
                    ] = "set5,set14,bsd100,urban100",
    sets_root: Annotated[Path, typer.Option(help="root of `imdsr data standard`")
                         ] = Path("data/standard"),
    benchmark_cache: Annotated[Path, typer.Option(
        help="scores per (weights SHA-256, set): a re-run measures only what it lacks")
    ] = Path("data/zoo_benchmarks.json"),
    threads: Annotated[int, typer.Option(help="threads of each runtime and of PyTorch")] = 2,
    json_out: Annotated[Path | None, typer.Option("--json", help="also save the raw figures here")
                        ] = None,
) -> None:
    """The NTIRE efficient-SR models the project serves, side by side in one run: structure, speed
    on each CPU runtime and precision and through the full service, Y-PSNR/SSIM on the standard
    sets, the published figures (each report's apart)."""
    import json
    import shutil
    import tempfile

    from bench.zoo import ZOO, Parts, import_published, published_zoo, run_zoo
    from bench.zoo_doc import plot, render, table
    from bench.zoo_quality import CacheError
    from export.cli import parse_weights_option
    from training.data.standard import BENCHMARKS, StandardSetError, parse_set_names, set_files
    from training.models.registry import get_variant
    from training.weights.ntire22 import CheckpointMismatch

    given = dict(parse_weights_option(item) for item in weights)  # unknown names: exit 2
    folders = {report: folder for report, folder in (("NTIRE 2022", ntire22), ("NTIRE 2023", ntire23))
               if folder is not None}
    if not folders and not given:
        raise fail("nothing to measure: pass --ntire22 MODEL_ZOO_DIR, --ntire23 DIR and/or "
                   "--weights VARIANT=PATH")
    if repeats < 1 or threads < 1:
        raise fail("--repeats and --threads must be at least 1")
    set_names: tuple[str, ...] = ()
    if benchmarks:
        try:
            set_names = tuple(parse_set_names(sets))
            if extra := [n for n in set_names if n not in BENCHMARKS]:
                raise fail(f"{', '.join(extra)} is a training set; benchmarks: {', '.join(BENCHMARKS)}")
            for name in set_names:  # before any model runs: a missing set stops the run now
                set_files(name, sets_root)
        except StandardSetError as exc:
            raise fail(str(exc)) from None
    wanted = {report: [v for v in published_zoo(report) if v not in given]
              for report in folders}
    for report, folder in folders.items():
        missing = [str(get_variant(v).checkpoint) for v in wanted[report]
                   if not (folder / str(get_variant(v).checkpoint)).is_file()]
        if missing:
            raise fail(f"{folder} lacks {', '.join(missing)} (pass --weights VARIANT=PATH for those)")
    command = " ".join(["imdsr bench zoo"]
                       + ([f"--ntire22 {ntire22}"] if ntire22 is not None else [])
                       + ([f"--ntire23 {ntire23}"] if ntire23 is not None else [])
                       + [f"--weights {w}" for w in weights]
                       + ([f"--repeats {repeats}"] if repeats != 5 else [])
                       + ([f"--threads {threads}"] if threads != 2 else [])
                       + ([] if speed else ["--no-speed"]) + ([] if service else ["--no-service"])
                       + ([] if seams else ["--no-seams"])
                       + ([] if benchmarks else ["--no-benchmarks"])
                       + ([f"--sets {sets}"] if benchmarks and set(set_names) != set(BENCHMARKS)
                          else [])
                       + ([f"--out {out}"] if out != Path("docs/MODEL_ZOO.md") else []))
    parts = Parts(speed=speed, service=service, seams=seams, benchmarks=benchmarks,
                  sets=set_names, sets_root=sets_root, cache=benchmark_cache)
    start = time.monotonic()

    def progress(message: str) -> None:
        typer.echo(f"[{time.monotonic() - start:6.0f} s] {message}", err=True)

    work = Path(tempfile.mkdtemp(prefix="imdsr-zoo-weights-"))
    try:
        imported: dict[str, Path] = {}
        try:
            for report, folder in folders.items():
                imported |= import_published(folder, wanted[report], work, progress)
        except (CheckpointMismatch, OSError, RuntimeError) as exc:
            raise fail(f"importing the published checkpoints: {exc}") from exc
        chosen = {**imported, **given}
        order = [v for v in ZOO if v in chosen] + [v for v in chosen if v not in ZOO]
        try:
            report = run_zoo({v: chosen[v] for v in order}, command=command, threads=threads,
                             repeats=repeats, parts=parts, progress=progress)
        except CacheError as exc:
            raise fail(str(exc)) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.as_dict(), indent=1) + "\n")
    chart = plot(report, out.with_name(out.stem.lower() + ".png"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(report, chart.name if chart else None))
    typer.echo(table(report))
    typer.echo(f"\nwrote {out}" + (f", {chart}" if chart else ""))


def bench_gpu(
    out: Annotated[Path | None, typer.Option(
        help="folder for report.md and report.json (default: $OUT, else bench-results/gpu-check)")] = None,
    variant: Annotated[str, typer.Option(help="the model to check")] = DEFAULT_VARIANT,
    gpu_name: Annotated[str | None, PlanSettings.option("gpu_name")] = PlanSettings.default("gpu_name"),
    gpu_cc: Annotated[str | None, PlanSettings.option("gpu_cc")] = PlanSettings.default("gpu_cc"),
    bsd100: Annotated[Path | None, BenchSettings.option("bsd100")] = BenchSettings.default("bsd100"),
    max_images: Annotated[int, typer.Option(help="at most this many fidelity images")] = 100,
    clients: Annotated[list[int], typer.Option(help="concurrent clients (repeatable)")] = [1, 4, 16],  # noqa: B006
    rounds: Annotated[int, typer.Option(help="service requests per client per level (Triton alone: x4)")
                      ] = 4,
    budget_s: Annotated[float, typer.Option(
        help="seconds the GPU steps may take in all; the fp16 serving pass is left out past it")] = 420.0,
    serve_device: Annotated[str, typer.Option(
        help="cuda; or cpu to rehearse the serving section without a GPU (KIND_CPU, f32: no "
             "measurement)")] = "cuda",
    sections: Annotated[str, typer.Option(help="which of a,b,c,d to run")] = "a,b,c,d",
    config: ConfigOpt = None,
) -> None:
    """One report of what a GPU machine does: the GPU as `imdsr export plans` sees it, the plan
    step in dry run, fp16 vs FP32 fidelity, c16nla served by Triton on the GPU (PyTorch CUDA)
    behind the gateway, throughput at 1/4/16 clients. Without CUDA the GPU steps say why they
    were skipped and the command exits 0."""
    import os

    from bench.gpu_check import Options, exit_code, render, run_check, write_report

    check_variant(variant)
    wanted = tuple(k.strip() for k in sections.split(",") if k.strip())
    if not wanted or set(wanted) - {"a", "b", "c", "d"}:
        raise fail(f"--sections takes a comma list of a, b, c, d, not {sections!r}")
    if serve_device not in ("cuda", "cpu") or max_images < 1 or rounds < 1 or not clients \
            or min(clients) < 1:
        raise fail("--serve-device cuda|cpu; --max-images, --rounds and every --clients at least 1")
    folder = out or Path(os.environ.get("OUT") or "bench-results/gpu-check")
    opts = Options(variant=variant, out=folder, gpu_name=gpu_name, gpu_cc=gpu_cc, bsd100=bsd100,
                   max_images=max_images, clients=tuple(clients), rounds=rounds, budget_s=budget_s,
                   serve_device=serve_device, config=config, sections=wanted)
    report = run_check(opts)
    md, js = write_report(report, folder)
    typer.echo(render(report))
    typer.echo(f"wrote {md}, {js}")
    raise typer.Exit(code=exit_code(report))


def _size(text: str) -> tuple[int, int]:
    """ "320x180" -> (320, 180); even sides (4:2:0 clips)."""
    try:
        w, h = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not WIDTHxHEIGHT") from None
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise typer.BadParameter(f"{text}: sides must be even and at least 16")
    return w, h


def bench_video(
    model: Annotated[list[str], typer.Option(help="models (repeatable)")] = ["c4", "rlfn", "c16nla"],  # noqa: B006
    size: Annotated[str, typer.Option(help="the clip's frame size, WxH (x4 out)")] = "320x180",
    seconds: Annotated[float, typer.Option(min=0.1, help="the clip's length")] = 4.0,
    fps: Annotated[int, typer.Option(min=1, help="the clip's frame rate")] = 24,
    crf: Annotated[int | None, typer.Option(min=0, max=51, help="H.264 CRF (default: the "
                                                                "gateway's, 20)")] = None,
) -> None:
    """Frames per second of a clip through the whole service (POST /jobs: decode, Triton, H.264
    encode, sound copied) per model, each after a warm-up clip; shipped weights."""
    import shutil
    import tempfile

    from bench.memory import stack
    from bench.video import BENCH_ENV, format_fps, measure_fps
    from export.repo import ModelSource, write_repository
    from export.serving import load_serving
    from imdsr.video.synthetic import ClipSpec
    from training.weights.store import WeightsError, shipped_weights

    for m in model:
        check_variant(m)
    width, height = _size(size)
    try:
        sources = [ModelSource(m, shipped_weights(m)) for m in model]
    except WeightsError as exc:
        raise fail(str(exc)) from exc
    spec = ClipSpec(seconds=seconds, fps=fps, width=width, height=height)
    warmup = ClipSpec(seconds=min(seconds, 0.5), fps=fps, width=width, height=height)
    work = Path(tempfile.mkdtemp(prefix="imdsr-bench-video-"))
    try:
        write_repository(work / "repo", "cpu", sources, load_serving())
        env = {"IMDSR_JOBS_DIR": str(work / "jobs"), **BENCH_ENV}
        if crf is not None:
            env["IMDSR_VIDEO_CRF"] = str(crf)
        with stack(work / "repo", model[0], work, env) as (_, url):
            rows = measure_fps(url, model, spec, warmup,
                               progress=lambda line: typer.echo(line, err=True))
        typer.echo(format_fps(rows, spec, crf))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    bench_app.command("gpu")(bench_gpu)
    bench_app.command("zoo")(bench_zoo)
    bench_app.command("memory")(bench_memory)
    bench_app.command("video")(bench_video)
    bench_app.command("service")(bench_service)
    bench_app.command("precision")(bench_precision)
    bench_app.command("model")(bench_model)
    bench_app.command("tiling")(bench_tiling)
    bench_app.command("wire")(bench_wire)
