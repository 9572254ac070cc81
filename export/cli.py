"""``imdsr export onnx|trt|repo|check-repo`` and ``imdsr bench wire``.

torch, onnx and tensorrt are imported inside the commands: ``imdsr --help`` stays fast and the
serving image (no torch) still loads this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from imdsr.contract import SCALE

export_app = typer.Typer(help="Turn weights into what Triton serves: ONNX, TensorRT plans, "
                              "model repositories.", no_args_is_help=True)

ConfigOpt = Annotated[Path | None,
                      typer.Option("--config", help="serving TOML (default: export/serving.toml)")]


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def _weights_for(variant: str, given: Path | None) -> Path:
    from training.weights.store import WeightsError, shipped_weights

    if given is not None:
        return given
    try:
        return shipped_weights(variant)
    except WeightsError as exc:
        raise _fail(str(exc)) from exc


@export_app.command("onnx")
def onnx_cmd(
    variant: Annotated[str, typer.Option(help="model variant, e.g. c16nla")],
    output: Annotated[Path, typer.Option("-o", "--output", help="ONNX file to write")],
    weights: Annotated[Path | None, typer.Option(help="weights (default: the shipped ones)")] = None,
    simplify: Annotated[bool, typer.Option(help="fold shape arithmetic with onnxslim")] = True,
    verify: Annotated[bool, typer.Option(help="compare ONNX Runtime with PyTorch at odd sizes")] = True,
) -> None:
    """Export one variant to ONNX: dynamic batch/height/width, FP32 NCHW, provenance metadata."""
    from export.onnx_export import VERIFY_SHAPES, export_onnx, load_model, max_abs_diff
    from training.weights.store import WeightsError

    path = _weights_for(variant, weights)
    try:
        res = export_onnx(variant, path, output, scale=SCALE, simplified=simplify)
    except (WeightsError, KeyError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"wrote {res.path} ({res.path.stat().st_size:,} bytes, {res.nodes_final} nodes, "
               f"{res.nodes_traced} traced) weights sha256={res.provenance.weights_sha256[:16]}")
    if verify:
        model, _ = load_model(variant, path)
        diff = max_abs_diff(model, res.path)
        shapes = ", ".join("x".join(map(str, s)) for s in VERIFY_SHAPES)
        typer.echo(f"ONNX Runtime vs PyTorch at {shapes}: max |diff| = {diff:.2e}")
        if diff > 1e-4:
            raise _fail(f"ONNX output differs from PyTorch by {diff:.2e} (> 1e-4)")


@export_app.command("trt")
def trt_cmd(
    onnx: Annotated[Path, typer.Option(help="ONNX file from `imdsr export onnx`")],
    output: Annotated[Path, typer.Option("-o", "--output",
                                         help="a .plan file, or a folder to get model.smXY.trtA.B.plan")],
    tile: Annotated[int | None, typer.Option(help="gateway tile side (default: serving.toml)")] = None,
    max_batch: Annotated[int | None, typer.Option(help="Triton max batch (default: serving.toml)")] = None,
    fp16: Annotated[bool | None, typer.Option(
        "--fp16/--fp32", help="FP16 layers; I/O stays FP32 (default: serving.toml)")] = None,
    target: Annotated[str, typer.Option(help="gpu | jetson: whose serving.toml defaults apply")] = "gpu",
    timing_cache: Annotated[Path | None, typer.Option(
        help="timing cache to reuse and update (default: ~/.cache/imdsr/tensorrt/, per GPU)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Build a TensorRT engine (needs CUDA and TensorRT): one profile from tile and max batch."""
    from export.serving import load_serving
    from export.trt_build import BuildRequest, build_engine
    from export.trt_plan import tile_profile

    cfg = load_serving(config)
    if target not in ("gpu", "jetson"):
        raise typer.BadParameter("--target must be gpu or jetson")
    t = cfg.gpu if target == "gpu" else cfg.jetson
    try:
        profile = tile_profile(tile or cfg.tile, max_batch or t.max_batch or cfg.max_batch, t.min_side)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    if not onnx.is_file():
        raise _fail(f"ONNX file not found: {onnx}")
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        raise _fail("TensorRT is not installed here; build engines on the GPU node "
                    "(NGC container or JetPack)") from exc
    use_fp16 = t.fp16 if fp16 is None else fp16
    res = build_engine(BuildRequest(onnx, profile, use_fp16, t.workspace_mb, timing_cache), output)
    typer.echo(f"wrote {res.plan} (sm {res.compute_capability}, TensorRT {res.trt_version}, "
               f"{'fp16' if use_fp16 else 'fp32'}; profile min {profile.min} opt {profile.opt} "
               f"max {profile.max}; timing cache {res.timing_cache})")
    if res.trt_version != t.tensorrt_version or res.compute_capability not in t.compute_capabilities:
        # The generated config.pbtxt names plans from serving.toml; a plan it does not name is
        # never loaded. Say so now rather than at Triton's start.
        typer.secho(f"warning: serving.toml [{target}] expects TensorRT {t.tensorrt_version} on "
                    f"{t.compute_capabilities}; regenerate the repository with --plans or update it",
                    fg=typer.colors.YELLOW, err=True)


def _parse_variants(values: list[str]) -> list[str]:
    from export.repo import shipped_variants
    from training.models import list_variants

    names = [n for v in values for n in v.split(",") if n]
    if names in (["shipped"], []):
        return shipped_variants()
    if names == ["all"]:
        return list_variants()
    unknown = [n for n in names if n not in list_variants()]
    if unknown:
        raise typer.BadParameter(f"unknown variants {unknown}; known: {', '.join(list_variants())}")
    return names


@export_app.command("repo")
def repo_cmd(
    target: Annotated[str, typer.Option(help="cpu | gpu | jetson")],
    output: Annotated[Path, typer.Option("-o", "--output", help="repository folder (replaced whole)")],
    variants: Annotated[list[str], typer.Option(
        help="variants (repeat or comma-separate); 'shipped' (default) or 'all'")] = ["shipped"],  # noqa: B006
    weights: Annotated[list[str], typer.Option(
        help="VARIANT=PATH weights override (default: the shipped weights)")] = [],  # noqa: B006
    plans: Annotated[Path | None, typer.Option(
        help="gpu/jetson: folder with <model>/**/model.smXY.trtA.B.plan already built")] = None,
    config: ConfigOpt = None,
) -> None:
    """Write a Triton model repository, one imdeception_<variant> model per variant."""
    from export.repo import ModelSource, write_repository
    from export.serving import TARGETS, load_serving

    if target not in TARGETS:
        raise typer.BadParameter(f"target must be one of {', '.join(TARGETS)}")
    overrides = {}
    for item in weights:
        variant, sep, path = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--weights wants VARIANT=PATH, got {item!r}")
        overrides[variant] = Path(path)
    names = _parse_variants(variants)
    if not names:
        raise _fail("no variants: no weights ship yet; pass --variants and --weights V=PATH")
    sources = [ModelSource(v, _weights_for(v, overrides.get(v))) for v in names]
    manifest = write_repository(output, target, sources, load_serving(config), plans)  # type: ignore[arg-type]
    for name, entry in manifest["models"].items():
        typer.echo(f"{name}: {entry['weights']} ({entry['weights_source']})")
    typer.echo(f"wrote {output} ({target}, {len(sources)} models)")


@export_app.command("check-repo")
def check_repo_cmd(
    repo: Annotated[Path, typer.Argument(help="committed cpu repository")] = Path("model_repository"),
    config: ConfigOpt = None,
) -> None:
    """Exit non-zero if the repository is stale w.r.t. the shipped weights or the generator."""
    from export.repo import check_repository
    from export.serving import load_serving

    problems = check_repository(repo, load_serving(config))
    for p in problems:
        typer.echo(f"stale: {p}")
    if problems:
        raise typer.Exit(code=1)
    typer.echo(f"{repo}: up to date")


def bench_wire(
    variant: Annotated[str, typer.Option(help="variant to serve")] = "c4",
    weights: Annotated[Path | None, typer.Option(help="weights (default: shipped, else random-init)")] = None,
    tile: Annotated[int | None, typer.Option(help="tile side (default: serving.toml)")] = None,
    batch: Annotated[int, typer.Option(help="tiles per request")] = 1,
    iters: Annotated[int, typer.Option(help="timed requests per format")] = 20,
    threads: Annotated[int, typer.Option(help="ORT threads in the server")] = 2,
    config: ConfigOpt = None,
) -> None:
    """FP32 vs FP16 vs UINT8 tensors on the wire: bytes, latency and error through a real Triton."""
    import shutil
    import tempfile

    from export.onnx_export import export_onnx
    from export.serving import load_serving
    from export.wire_bench import format_results, run_wire_bench, temp_wire_repo
    from service.triton_server import TritonOptions, TritonServer, free_ports
    from training.models import create_model
    from training.weights.store import WeightsError, WeightsMeta, save_weights, shipped_weights

    cfg = load_serving(config)
    tile = tile or cfg.tile
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
            results = run_wire_bench(server.grpc_url, variant, tile, batch, iters)
        typer.echo(f"{variant}, {batch}x3x{tile}x{tile} in, x{SCALE} out, gRPC over loopback, "
                   f"{iters} requests per format, ORT threads={threads}")
        typer.echo(format_results(results))
        shutil.rmtree(repo, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
    bench_app.command("wire")(bench_wire)
