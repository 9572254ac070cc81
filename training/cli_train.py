"""``imdsr data photos``, ``imdsr train``, ``imdsr ship``, ``imdsr eval`` (torch imported lazily)."""

from __future__ import annotations

from pathlib import Path

import typer

from imdsr.cli_support import fail
from imdsr.contract import DEFAULT_VARIANT

data_app = typer.Typer(help="Build training sets.", no_args_is_help=True)


@data_app.command("photos")
def data_photos(
    out: Path = typer.Argument(Path("data/photos"), help="Folder to write the photo set to."),
    source: list[Path] = typer.Option(None, "--from", help="HR image folders (default: Debian "
                                      "wallpaper packages, fetched with apt-get download)."),
    no_filter: bool = typer.Option(False, help="Keep every image, not only photo-like ones."),
) -> None:
    """Build a deduplicated HR photo set with a manifest (sizes, SHA-256)."""
    from training.data.photos import build_from_debian, build_photo_set

    entries = (build_photo_set(list(source), out, filter_photos=not no_filter) if source
               else build_from_debian(out))
    px = sum(e.width * e.height for e in entries)
    typer.echo(f"{len(entries)} photos, {px / 1e6:.0f} Mpx -> {out}/manifest.json")


@data_app.command("standard")
def data_standard(
    sets: str = typer.Argument(..., help="Comma-separated sets: train291 (T91 + BSD200), set5, "
                               "set14, bsd100, urban100, or all."),
    source: list[Path] = typer.Option(..., "--from", help="A clone of the repository holding "
                                      "the set (or a folder of its files); repeat for several."),
    out: Path = typer.Option(None, help="Root of the built sets (default data/standard)."),
) -> None:
    """Copy standard SR sets from clones of their public repositories, verified against the
    committed SHA-256 manifest; a missing or changed file is named and nothing is half-built."""
    from training.data.standard import DEFAULT_ROOT, StandardSetError, build_set, parse_set_names

    try:
        for name in parse_set_names(sets):
            folder = build_set(name, list(source), out or DEFAULT_ROOT)
            typer.echo(f"{name}: {len(list(folder.iterdir()))} files verified -> {folder}")
    except StandardSetError as e:
        raise fail(str(e)) from None


@data_app.command("pack")
def data_pack(
    src: Path = typer.Argument(..., help="Folder of HR images (e.g. data/standard/train291)."),
    out: Path = typer.Argument(..., help="Folder to write lossless WebP copies to."),
) -> None:
    """Pack a training folder small (lossless WebP, every pixel checked) for a GPU machine
    whose calls carry at most 64 MiB (training/configs/gpu_c16nla_291.toml)."""
    from training.data.pack import pack_folder

    try:
        count, size = pack_folder(src, out)
    except (FileNotFoundError, ValueError) as e:
        raise fail(str(e)) from None
    typer.echo(f"{count} images, {size / 2**20:.1f} MiB -> {out}")


def train(
    config: Path = typer.Option(..., help="TOML config under training/configs/."),
    resume: bool = typer.Option(False, help="Continue from the run's last checkpoint."),
    name: str = typer.Option(None, help="Override the run name."),
    out_dir: str = typer.Option(None, help="Override the output folder (default runs/)."),
    threads: int = typer.Option(None, help="torch CPU threads."),
    max_minutes: float = typer.Option(0.0, help="Stop (after a checkpoint) after this long; "
                                      "resume later to train in pieces."),
) -> None:
    """Train the config's model variant, IMDeception or an NTIRE 2022 peer, with the same recipe
    (CPU, one GPU, or torchrun for DDP)."""
    from training.train.config import load_config
    from training.train.loop import Trainer

    cfg = load_config(config, {"name": name, "out_dir": out_dir, "threads": threads})
    state = Trainer(cfg, resume=resume, max_minutes=max_minutes).run()
    typer.echo(f"step {state.step}; best val Y-PSNR {state.best_psnr:.3f} dB at step "
               f"{state.best_step}; run in {cfg.run_dir}")


def ship(
    run: Path = typer.Argument(..., help="Run folder (holds best.pt)."),
    out: Path = typer.Option(..., help="Weights file to write."),
    last: bool = typer.Option(False, help="Ship the last checkpoint instead of the best."),
    as_variant: str = typer.Option(None, "--as", help="Name the weights as this variant (same "
                                   "structure as the one trained, e.g. c16nla -> c16nla_real)."),
) -> None:
    """Write a run's EMA weights as an imdsr weights file with a training summary."""
    from training.train.ship import ship as do_ship

    try:
        typer.echo(do_ship(run, out, "last.pt" if last else "best.pt", variant=as_variant))
    except (ValueError, KeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def evaluate(
    variant: str = typer.Option(DEFAULT_VARIANT, help="Model variant (any in `imdsr model summary`)."),
    weights: list[str] = typer.Option(None, help="Weights file for --variant (default: the "
                                      "shipped weights); with --benchmark, VARIANT=PATH or "
                                      "ARCH=PATH adds a row (repeat for several)."),
    data: Path = typer.Option(None, help="Folder of HR images (default: the five photos "
                              "inside scikit-image's wheel)."),
    benchmark: str = typer.Option(None, help="Standard sets, comma-separated (set5, set14, "
                                  "bsd100, urban100): one table in the paper's Table 3 form."),
    models: str = typer.Option(None, help="With --benchmark: variants whose shipped weights get "
                               "a row (default: every shipped variant unless --weights is given)."),
    sets_root: Path = typer.Option(None, help="Root of `imdsr data standard` (default "
                                   "data/standard)."),
    degrade: str = typer.Option(None, help="With --benchmark: LR degradations measured beside "
                                "clean, comma-separated: jpegQ is JPEG at quality Q (4:2:0, "
                                "PIL) applied to the LR before bicubic and the models see it "
                                "(e.g. jpeg50,jpeg75)."),
    scale: int = typer.Option(4),
    markdown: bool = typer.Option(False, help="Print a Markdown table."),
    plot: Path = typer.Option(None, help="With --degrade: a PNG of Y-PSNR against the LR's JPEG "
                              "quality, per method and set."),
) -> None:
    """Bicubic vs model: per image and mean (Y-PSNR, Y-SSIM with crop = scale, RGB-PSNR), or
    with --benchmark, mean Y-PSNR / Y-SSIM per standard set for bicubic and each model (with
    --degrade, one block of rows per LR input: clean and each degradation)."""
    import torch

    from training.weights.store import WeightsError, load_model

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    try:
        if benchmark:
            _evaluate_benchmarks(benchmark, models, weights or [], sets_root, scale, markdown,
                                 degrade, plot)
            return
        if len(weights or []) > 1 or models or degrade or plot:
            raise fail("--models, --degrade, --plot and several --weights go with --benchmark")
        from training.evaluate import evaluate_images, folder_photos, format_table, skimage_photos

        model, _ = load_model(variant, weights[0] if weights else None, scale)
    except WeightsError as e:
        raise fail(str(e)) from None
    images = folder_photos(data) if data else skimage_photos()
    typer.echo(format_table(evaluate_images(model, images, scale), markdown=markdown))


def _evaluate_benchmarks(benchmark: str, models: str | None, weights: list[str],
                         sets_root: Path | None, scale: int, markdown: bool,
                         degrade: str | None = None, plot: Path | None = None) -> None:
    from training.data.degrade import parse_names
    from training.data.standard import (
        BENCHMARKS,
        DEFAULT_ROOT,
        StandardSetError,
        parse_set_names,
        set_files,
    )
    from training.evaluate import (
        benchmark_table,
        degraded_benchmark_tables,
        format_benchmark_table,
        format_degraded_benchmark,
    )
    from training.models.registry import VARIANTS, list_variants
    from training.weights.store import load_model, parse_weights_spec, shipped_variants

    try:
        degradations = parse_names(degrade) if degrade else None
        if plot and not degradations:
            raise ValueError("--plot draws the --degrade curves: give --degrade jpegQ,...")
        names = parse_set_names(benchmark)
        if extra := [n for n in names if n not in BENCHMARKS]:
            raise fail(f"{', '.join(extra)} is a training set; benchmarks: {', '.join(BENCHMARKS)}")
        sets = {n: set_files(n, sets_root or DEFAULT_ROOT) for n in names}
    except (StandardSetError, ValueError) as e:
        raise fail(str(e)) from None
    variants = ([v.strip() for v in models.split(",") if v.strip()] if models
                else [] if weights else shipped_variants())
    if unknown := [v for v in variants if v not in VARIANTS]:
        raise fail(f"unknown variant {', '.join(unknown)}; known: {', '.join(list_variants())}")
    rows = {v: load_model(v, None, scale)[0] for v in variants}
    for item in weights:
        variant, path = parse_weights_spec(item)
        rows[f"{variant} ({path.name})"] = load_model(variant, path, scale)[0]
    if degradations:
        tables = degraded_benchmark_tables(rows, sets, scale, degradations)
        typer.echo(format_degraded_benchmark(tables, markdown=markdown))
        if plot:
            from training.degrade_plot import plot_jpeg_curves

            typer.echo(f"plot: {plot_jpeg_curves(tables, plot)}")
        return
    typer.echo(format_benchmark_table(benchmark_table(rows, sets, scale), markdown=markdown))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
    app.command("train")(train)
    app.command("ship")(ship)
    app.command("eval")(evaluate)
