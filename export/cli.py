"""``imdsr export onnx|trt|plans|repo|check-repo``.

torch, onnx and tensorrt are imported inside the commands: ``imdsr --help`` stays fast and the
serving image (no torch) still loads this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from imdsr.cli_support import fail
from imdsr.contract import SCALE
from imdsr.settings import PlanSettings

export_app = typer.Typer(help="Turn weights into what Triton serves: ONNX, TensorRT plans, "
                              "model repositories.", no_args_is_help=True)

ConfigOpt = Annotated[Path | None,
                      typer.Option("--config", help="serving TOML (default: export/serving.toml)")]


def _weights_for(variant: str, given: Path | None) -> Path:
    from training.weights.store import WeightsError, shipped_weights

    if given is not None:
        return given
    try:
        return shipped_weights(variant)
    except WeightsError as exc:
        raise fail(str(exc)) from exc


@export_app.command("onnx")
def onnx_cmd(
    variant: Annotated[str, typer.Option(help="model variant, e.g. c16nla")],
    output: Annotated[Path, typer.Option(
        "-o", "--output", help="ONNX file to write, or a folder (existing, or ending in /) to get "
        "<Triton model name>.onnx there, the name `imdsr export plans` reads")],
    weights: Annotated[Path | None, typer.Option(help="weights (default: the shipped ones)")] = None,
    simplify: Annotated[bool, typer.Option(help="fold shape arithmetic with onnxslim")] = True,
    verify: Annotated[bool, typer.Option(help="compare ONNX Runtime with PyTorch at odd sizes")] = True,
) -> None:
    """Export one variant to ONNX: dynamic batch/height/width, FP32 NCHW, provenance metadata."""
    from export.onnx_export import VERIFY_SHAPES, export_onnx, load_model, max_abs_diff
    from training.models.registry import VARIANTS, triton_name
    from training.weights.store import WeightsError

    if variant not in VARIANTS:
        raise fail(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    if output.is_dir() or str(output).endswith("/"):
        output = output / f"{triton_name(variant)}.onnx"
    path = _weights_for(variant, weights)
    try:
        res = export_onnx(variant, path, output, scale=SCALE, simplified=simplify)
    except (WeightsError, KeyError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"wrote {res.path} ({res.path.stat().st_size:,} bytes, {res.nodes_final} nodes, "
               f"{res.nodes_traced} traced, {res.splits_rewritten} splits as convolutions) "
               f"weights sha256={res.provenance.weights_sha256[:16]}")
    if verify:
        model, _ = load_model(variant, path)
        diff = max_abs_diff(model, res.path)
        shapes = ", ".join("x".join(map(str, s)) for s in VERIFY_SHAPES)
        typer.echo(f"ONNX Runtime vs PyTorch at {shapes}: max |diff| = {diff:.2e}")
        if diff > 1e-4:
            raise fail(f"ONNX output differs from PyTorch by {diff:.2e} (> 1e-4)")


TargetOpt = Annotated[str, typer.Option(help="gpu | jetson: whose serving-config section applies")]
BuilderOpt = Annotated[str, PlanSettings.option("plan_builder")]


def _trt_target(target: str) -> str:
    if target not in ("gpu", "jetson"):
        raise fail(f"target must be gpu or jetson, not {target!r}")
    return target


def _builder(builder: str) -> str:
    from export.trt_build import BUILDERS

    if builder not in BUILDERS:
        raise fail(f"builder must be one of {', '.join(BUILDERS)}, not {builder!r}")
    return builder


@export_app.command("trt")
def trt_cmd(
    onnx: Annotated[Path, typer.Option(help="ONNX file from `imdsr export onnx`")],
    output: Annotated[Path, typer.Option("-o", "--output",
                                         help="a .plan file, or a folder to get model.smXY.trtA.B.C.D.plan")],
    max_batch: Annotated[int | None, typer.Option(help="Triton max batch (default: serving config)")] = None,
    fp16: Annotated[bool | None, typer.Option(
        "--fp16/--fp32", help="FP16 layers; I/O stays FP32 (default: serving config)")] = None,
    target: TargetOpt = "gpu",
    builder: BuilderOpt = "api",  # a build by hand; IMDSR_PLAN_BUILDER's default is the plans job's
    timing_cache: Annotated[Path | None, typer.Option(
        help="timing cache to reuse and update (default: ~/.cache/imdsr/tensorrt/, per GPU and TensorRT)")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Build one TensorRT engine here (needs CUDA and TensorRT); the window comes from the serving
    config. For the plans a node serves, use `imdsr export plans`."""
    import tempfile

    from export.serving import load_serving
    from export.trt_build import BuildError, BuildRequest, build_engine, detect_trt_version
    from export.trt_plan import (
        default_timing_cache_root,
        detect_gpu,
        engine_profile,
        plan_filename,
        timing_cache_path,
    )

    cfg = load_serving(config)
    t = cfg.trt_target(_trt_target(target))  # type: ignore[arg-type]
    try:
        profile = engine_profile(cfg.window_limits(), max_batch or cfg.max_batch_for(target))  # type: ignore[arg-type]
    except ValueError as exc:
        raise fail(str(exc)) from exc
    if not onnx.is_file():
        raise fail(f"ONNX file not found: {onnx}")
    version = detect_trt_version(_builder(builder))  # type: ignore[arg-type]
    if version is None:
        raise fail(f"no TensorRT here for the {builder} builder; build engines on the GPU node "
                    "(the export image, or JetPack)")
    try:
        gpu = detect_gpu()
    except RuntimeError as exc:
        raise fail(str(exc)) from exc
    plan = output if output.suffix == ".plan" else output / plan_filename(gpu.compute_capability, version)
    cache = timing_cache or timing_cache_path(default_timing_cache_root(), gpu.name,
                                              gpu.compute_capability, version)
    use_fp16 = t.fp16 if fp16 is None else fp16
    with tempfile.TemporaryDirectory(prefix="imdsr-trt-") as work:
        try:
            build_engine(BuildRequest(onnx, profile, use_fp16, t.workspace_mb, cache), plan,
                         builder, Path(work))  # type: ignore[arg-type]
        except BuildError as exc:
            raise fail(str(exc)) from exc
    typer.echo(f"wrote {plan} ({gpu.name}, sm {gpu.compute_capability}, TensorRT {version}, "
               f"{'fp16' if use_fp16 else 'fp32'}; profile min {profile.min} opt {profile.opt} "
               f"max {profile.max}; timing cache {cache})")


@export_app.command("plans")
def plans_cmd(
    target: Annotated[str, PlanSettings.option("target")],
    variants: Annotated[str, PlanSettings.option("variants")] = PlanSettings.default("variants"),
    onnx_dir: Annotated[Path, PlanSettings.option("onnx_dir")] = PlanSettings.default("onnx_dir"),
    cache: Annotated[Path, PlanSettings.option("plan_cache")] = PlanSettings.default("plan_cache"),
    repo: Annotated[Path, PlanSettings.option("repo_dir")] = PlanSettings.default("repo_dir"),
    config: Annotated[Path | None, PlanSettings.option("serving_config", "--config")
                      ] = PlanSettings.default("serving_config"),
    precision: Annotated[str | None, PlanSettings.option("precision")] = PlanSettings.default("precision"),
    builder: BuilderOpt = PlanSettings.default("plan_builder"),
    gpu_name: Annotated[str | None, PlanSettings.option("gpu_name")] = PlanSettings.default("gpu_name"),
    gpu_cc: Annotated[str | None, PlanSettings.option("gpu_cc")] = PlanSettings.default("gpu_cc"),
    dry_run: Annotated[bool, PlanSettings.option("plans_dry_run", "--dry-run")
                       ] = PlanSettings.default("plans_dry_run"),
) -> None:
    """Build (or find in the cache) this node's TensorRT plans and write the model repository.

    What the build-plans initContainer of the gpu and jetson deployments runs.
    """
    import logging

    from export.plans import PlanError, PlanJob, run_plans
    from export.serving import load_serving

    logging.basicConfig(level=logging.INFO, format="[export plans] %(message)s")
    if precision not in (None, "fp16", "fp32"):
        raise fail(f"precision must be fp16 or fp32, not {precision!r}")
    if config is not None and not config.is_file():
        raise fail(f"serving config not found: {config}")
    try:
        cfg = load_serving(config)
    except ValueError as exc:
        raise fail(f"{config}: {exc}") from exc
    job = PlanJob(
        target=_trt_target(target), variants=_parse_variants([variants]), onnx_dir=onnx_dir,  # type: ignore[arg-type]
        cache_root=cache, repo_dir=repo, serving=cfg, serving_path=config,
        fp16=None if precision is None else precision == "fp16", builder=_builder(builder),  # type: ignore[arg-type]
        dry_run=dry_run)
    try:
        result = run_plans(job, gpu_name, gpu_cc)
    except (PlanError, OSError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(result.to_json())


def _parse_variants(values: list[str]) -> list[str]:
    from training.models import list_variants
    from training.weights.store import shipped_variants

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
        help="ARCH=PATH or VARIANT=PATH: add that model (or replace its shipped weights); an "
             "architecture (rlfn, efdn, imdn, imdeception) takes the variant its weights file names")
    ] = [],  # noqa: B006
    plans: Annotated[Path | None, typer.Option(
        help="gpu/jetson: folder with <model>/**/model.smXY.trtA.B.plan already built")] = None,
    config: ConfigOpt = None,
) -> None:
    """Write a Triton model repository: one model per variant, named by architecture and variant
    (imdeception_c16nla, rlfn, imdn_nb7, ...)."""
    from export.repo import ModelSource, write_repository
    from export.serving import TARGETS, load_serving

    if target not in TARGETS:
        raise typer.BadParameter(f"target must be one of {', '.join(TARGETS)}")
    overrides = dict(parse_weights_option(item) for item in weights)
    names = _parse_variants(variants)
    names += [v for v in overrides if v not in names]
    if not names:
        raise fail("no variants: no weights ship yet; pass --variants and --weights V=PATH")
    sources = [ModelSource(v, _weights_for(v, overrides.get(v))) for v in names]
    manifest = write_repository(output, target, sources, load_serving(config), plans)  # type: ignore[arg-type]
    for name, entry in manifest["models"].items():
        typer.echo(f"{name}: {entry['weights']} ({entry['weights_source']})")
    typer.echo(f"wrote {output} ({target}, {len(sources)} models)")


def parse_weights_option(item: str) -> tuple[str, Path]:
    """``ARCH=PATH`` or ``VARIANT=PATH`` -> (variant, path), checked against the file's metadata."""
    from training.weights.store import WeightsError, WeightsSpecError, parse_weights_spec

    try:
        return parse_weights_spec(item)
    except WeightsSpecError as exc:
        raise typer.BadParameter(f"--weights {exc}") from None
    except WeightsError as exc:
        raise fail(str(exc)) from None


@export_app.command("native-repo")
def native_repo_cmd(
    source: Annotated[Path, typer.Argument(help="a generated cpu repository")] = Path("model_repository"),
    output: Annotated[Path, typer.Option("-o", "--output", help="repository to write (replaced whole)")
                      ] = Path("model_repository_native"),
    runtime: Annotated[str | None, typer.Option(
        help="onnxruntime | openvino (default: [cpu] runtime of the serving config)")] = None,
    config: ConfigOpt = None,
) -> None:
    """The cpu repository on Triton's own onnxruntime/openvino backend (NVIDIA's Triton images)."""
    from export.model_config import NATIVE_BACKENDS
    from export.native_repo import write_native_repository
    from export.serving import load_serving

    if runtime is not None and runtime not in NATIVE_BACKENDS:
        raise fail(f"runtime must be one of {', '.join(NATIVE_BACKENDS)}, not {runtime!r}")
    if not (source / "MANIFEST.json").is_file():
        raise fail(f"{source} is not a generated repository (no MANIFEST.json)")
    try:
        names = write_native_repository(source, output, load_serving(config), runtime)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"wrote {output} ({', '.join(names)}; backend {runtime or load_serving(config).cpu.runtime})")


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


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
