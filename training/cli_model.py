"""``imdsr weights``, ``imdsr infer`` and ``imdsr model``: the model family and its weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from imdsr.cli_support import fail
from imdsr.contract import DEFAULT_VARIANT, SCALE
from imdsr.imaging.codec import OutputFormat
from training.models.registry import ARCHITECTURES, VARIANTS, list_variants

weights_app = typer.Typer(help="Weights files: import the published checkpoint, inspect.",
                          no_args_is_help=True)
model_app = typer.Typer(help="The model family: IMDeception and its NTIRE 2022 peers.",
                        no_args_is_help=True)


def _check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise typer.BadParameter(f"unknown variant {variant!r}; known: {', '.join(list_variants())}")
    return variant


@weights_app.command("import-ntire22")
def import_ntire22(
    src: Annotated[Path, typer.Argument(help="a published checkpoint of the NTIRE 2022 ESR repository "
                                        "(model_zoo/*.pth: a plain PyTorch state_dict)")],
    dst: Annotated[Path, typer.Argument(help="output .safetensors file")],
    arch: Annotated[str, typer.Option(help="architecture: " + ", ".join(ARCHITECTURES))] = "imdeception",
) -> None:
    """Convert a published NTIRE 2022 checkpoint (IMDeception or a peer) into the project's format."""
    from training.weights.ntire22 import CheckpointMismatch, import_file

    if arch not in ARCHITECTURES:
        raise fail(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    if not src.is_file():
        raise fail(f"checkpoint not found: {src}")
    try:
        variant, params = import_file(src, arch, dst)
    except CheckpointMismatch as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"wrote {dst} (variant {variant}, {arch}, x{SCALE}, {params:,} params)")


@weights_app.command("info")
def weights_info(path: Path) -> None:
    """Print a weights file's metadata."""
    from training.weights.store import WeightsError, read_meta

    try:
        meta = read_meta(path)
    except (WeightsError, OSError, Exception) as exc:  # noqa: BLE001
        raise fail(f"cannot read {path}: {exc}") from exc
    typer.echo(f"variant={meta.variant} scale={meta.scale} source={meta.source}")
    for key, value in meta.training.items():
        typer.echo(f"  {key}: {value}")


@model_app.command("summary")
def summary(
    height: int = 256,
    width: int = 256,
) -> None:
    """Parameters, FLOPs, activations and conv layers of every variant, next to the published ones."""
    from training.models import create_model
    from training.summary import against_challenge, measure

    typer.echo(f"Input {height}x{width} (LR), x4. FLOPs = conv MACs + one per activated element "
               "(NTIRE 2022 convention); Acts = elements of all conv outputs; #conv counts a "
               "grouped conv once.")
    header = (f"{'variant':11} {'arch':11} {'params':>9} {'paper':>9} {'FLOPs[G]':>9} {'Acts[M]':>8} "
              f"{'attnMAC[G]':>10} {'#conv':>6}")
    typer.echo(header)
    typer.echo("-" * len(header))
    notes = []
    for name, spec in VARIANTS.items():
        c = measure(create_model(name), height, width)
        paper = f"{spec.paper_params:,}" if spec.paper_params else "-"
        typer.echo(f"{name:11} {spec.arch:11} {c.params:>9,} {paper:>9} {c.flops / 1e9:>9.2f} "
                   f"{c.conv_output_elems / 1e6:>8.1f} {c.attention_macs / 1e9:>10.3f} {c.n_conv:>6}")
        if spec.paper_params and spec.paper_params != c.params:
            notes.append(f"{name}: the paper reports {spec.paper_params:,} parameters; the "
                         f"structure built here has {c.params:,}.")
        row = spec.challenge
        if row is not None and (height, width) == (256, 256):
            differ = against_challenge(c, spec)
            split = (f"; its #conv, {row.convs}, counts each group of a grouped conv, as the "
                     "published code computes them" if spec.architecture.published_splits_groups
                     else "")
            notes.append(f"{name}: " + ("; ".join(differ) if differ else "params, FLOPs, activations "
                         "and #conv match") + f" the {row.report} ESR figures ({row.team} {row.entry}"
                         f"{split}).")
    if (height, width) != (256, 256):
        notes.append("The NTIRE ESR table counts at 256x256: run at the default size to "
                     "compare with it.")
    typer.echo("\nNotes:\n" + "\n".join(f"* {n}" for n in notes))


@model_app.command("crops")
def crops(
    image: Annotated[Path, typer.Argument(help="an HR photo (e.g. data/standard/urban100/img_004.png)")],
    out: Annotated[Path, typer.Option("-o", "--out", help="PNG to write")],
    weights: Annotated[list[str], typer.Option(
        help="VARIANT=PATH (or a shipped VARIANT): a column each, in order")],
    box: Annotated[list[str], typer.Option(help="x,y,size of a crop in HR px: a row each")],
    degrade: Annotated[str, typer.Option(help="the LR's degradation: clean or jpegQ")] = "jpeg50",
) -> None:
    """The same crops upscaled by bicubic and each model, from an LR made as the benchmarks make
    it, beside the HR: the picture of the model card's tables."""
    from training.crops import crops_figure, parse_box
    from training.data.degrade import parse_names
    from training.data.pairs import load_rgb
    from training.weights.store import WeightsError, load_model, parse_weights_spec

    try:
        parse_names(degrade)
        boxes = [parse_box(b) for b in box]
        models = {}
        for item in weights:
            variant, path = (parse_weights_spec(item) if "=" in item else (_check_variant(item), None))
            models[variant if path is None else path.stem] = load_model(variant, path)[0]
        hr = load_rgb(image)
        typer.echo(crops_figure(hr, models, degrade, boxes, out, title=f"{image.name}, LR {degrade}"))
    except (WeightsError, ValueError, OSError) as exc:
        raise fail(str(exc)) from exc


def infer(
    inputs: Annotated[list[Path], typer.Argument(help="image files (PNG, JPEG, WebP, TIFF, BMP, GIF)")],
    outdir: Annotated[Path, typer.Option("-o", "--outdir", help="folder for the x4 images")],
    variant: Annotated[str, typer.Option(help="model variant")] = DEFAULT_VARIANT,
    weights: Annotated[Path | None, typer.Option(help="weights file (default: shipped)")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N]")] = "auto",
    tile: Annotated[int, typer.Option(help="tile core in LR px (rounded down to the model's alignment); "
                                      "0 = whole image")] = 256,
    fmt: Annotated[str | None, typer.Option(
        "--format", help=f"{', '.join(OutputFormat)} (default: the gateway's: same family as the "
                         "input)")] = None,
    outscale: Annotated[float | None, typer.Option(help="final scale, e.g. 2 or 3.5 (x4 then Lanczos)")
                        ] = None,
) -> None:
    """Upscale image files locally with PyTorch (no server), through the gateway's own picture
    pipeline: alpha, 16-bit, grey and ICC profiles are kept exactly as `POST /upscale` keeps them."""
    from imdsr.imaging import codec
    from training.infer import MAX_LOCAL_PIXELS, load_on, output_path, pick_device, upscale_picture
    from training.weights.store import WeightsError

    _check_variant(variant)
    if tile < 0:
        raise typer.BadParameter(f"--tile {tile} must be 0 (whole image) or positive")
    chosen = None if fmt is None else codec.OutputFormat.named(fmt)
    if fmt is not None and chosen is None:
        raise typer.BadParameter(f"--format {fmt!r}: use one of {', '.join(OutputFormat)}")
    if outscale is not None and not 0 < outscale <= 16:
        raise typer.BadParameter(f"--outscale {outscale} must be in (0, 16]")
    try:
        dev = pick_device(device)
        model = load_on(variant, weights, dev)
    except (WeightsError, RuntimeError) as exc:
        raise fail(str(exc)) from exc
    outdir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for src in inputs:
        try:
            picture = codec.decode(src.read_bytes(), MAX_LOCAL_PIXELS)
        except (OSError, codec.CodecError) as exc:
            typer.secho(f"skip {src}: {exc}", fg=typer.colors.YELLOW, err=True)
            failed += 1
            continue
        result = upscale_picture(model, picture, dev, tile=tile, rule=VARIANTS[variant].tiling,
                                 outscale=outscale).picture
        out_fmt = chosen or codec.default_format(picture.source_format)
        dst = output_path(src, outdir, model.scale, out_fmt)
        dst.write_bytes(codec.encode(result, out_fmt))
        alpha = ", alpha" if result.alpha is not None else ""
        typer.echo(f"{src} {picture.width}x{picture.height} -> {dst} {result.width}x{result.height}"
                   f" ({out_fmt.value}, {result.bit_depth}-bit{alpha})")
    if failed:
        raise typer.Exit(code=1)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.add_typer(weights_app, name="weights")
    app.add_typer(model_app, name="model")
    app.command("infer")(infer)
