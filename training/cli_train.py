"""``imdsr data photos``, ``imdsr train``, ``imdsr ship``, ``imdsr eval`` (torch imported lazily)."""

from __future__ import annotations

from pathlib import Path

import typer

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
) -> None:
    """Write a run's EMA weights as an imdsr weights file with a training summary."""
    from training.train.ship import ship as do_ship

    typer.echo(do_ship(run, out, "last.pt" if last else "best.pt"))


def evaluate(
    variant: str = typer.Option(DEFAULT_VARIANT, help="Model variant (any in `imdsr model summary`)."),
    weights: Path = typer.Option(None, help="Weights file (default: the shipped weights, where "
                                 "the variant has some)."),
    data: Path = typer.Option(None, help="Folder of HR images (default: the five photos "
                              "inside scikit-image's wheel)."),
    scale: int = typer.Option(4),
    markdown: bool = typer.Option(False, help="Print a Markdown table."),
) -> None:
    """Bicubic vs model per image and mean: Y-PSNR, Y-SSIM (crop = scale), RGB-PSNR."""
    import torch

    from training.evaluate import evaluate_images, folder_photos, format_table, skimage_photos
    from training.weights.store import load_model

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    model, _ = load_model(variant, weights, scale)
    images = folder_photos(data) if data else skimage_photos()
    typer.echo(format_table(evaluate_images(model, images, scale), markdown=markdown))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
    app.command("train")(train)
    app.command("ship")(ship)
    app.command("eval")(evaluate)
