"""``imdsr weights``, ``imdsr infer`` and ``imdsr model``: the model family and its weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from training.models.registry import VARIANTS, list_variants

weights_app = typer.Typer(help="Weights files: import the published checkpoint, inspect.",
                          no_args_is_help=True)
model_app = typer.Typer(help="The IMDeception model family.", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def _check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise typer.BadParameter(f"unknown variant {variant!r}; known: {', '.join(list_variants())}")
    return variant


@weights_app.command("import-ntire22")
def import_ntire22(
    src: Annotated[Path, typer.Argument(help="team19_imdeception.pth (a plain PyTorch state_dict)")],
    dst: Annotated[Path, typer.Argument(help="output .safetensors file")],
) -> None:
    """Convert the published NTIRE 2022 checkpoint into the project's weights format."""
    import torch

    from training.models import create_model
    from training.weights.ntire22 import CheckpointMismatch, import_checkpoint
    from training.weights.store import WeightsMeta, file_sha256, save_weights

    if not src.is_file():
        raise _fail(f"checkpoint not found: {src}")
    try:
        ckpt = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise _fail(f"{src} is not a readable PyTorch checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict):
        raise _fail(f"{src} holds a {type(ckpt).__name__}, not a state_dict")
    model = create_model("c16nla")
    try:
        state = import_checkpoint(ckpt, model)
    except CheckpointMismatch as exc:
        raise _fail(str(exc)) from exc
    meta = WeightsMeta("c16nla", 4, f"ntire22:{src.name}:sha256={file_sha256(src)}",
                       {"origin": "NTIRE 2022 Efficient SR challenge, team19 (published)"})
    save_weights(dst, state, meta)
    typer.echo(f"wrote {dst} (variant c16nla, x4, {sum(v.numel() for v in state.values()):,} params)")


@weights_app.command("info")
def weights_info(path: Path) -> None:
    """Print a weights file's metadata."""
    from training.weights.store import WeightsError, read_meta

    try:
        meta = read_meta(path)
    except (WeightsError, OSError, Exception) as exc:  # noqa: BLE001
        raise _fail(f"cannot read {path}: {exc}") from exc
    typer.echo(f"variant={meta.variant} scale={meta.scale} source={meta.source}")
    for key, value in meta.training.items():
        typer.echo(f"  {key}: {value}")


@model_app.command("summary")
def summary(
    height: int = 256,
    width: int = 256,
) -> None:
    """Parameters, FLOPs, activations and conv layers of every variant, next to the paper's."""
    from training.models import create_model
    from training.summary import measure

    typer.echo(f"Input {height}x{width} (LR), x4. FLOPs = conv MACs + one per activated element "
               "(NTIRE 2022 convention); Acts = elements of all conv outputs.")
    header = (f"{'variant':8} {'params':>9} {'paper':>9} {'FLOPs[G]':>9} {'Acts[M]':>8} "
              f"{'attnMAC[G]':>10} {'#conv':>6}")
    typer.echo(header)
    typer.echo("-" * len(header))
    for name, spec in VARIANTS.items():
        c = measure(create_model(name), height, width)
        paper = f"{spec.paper_params:,}" if spec.paper_params else "-"
        typer.echo(f"{name:8} {c.params:>9,} {paper:>9} {c.flops / 1e9:>9.2f} "
                   f"{c.conv_output_elems / 1e6:>8.1f} {c.attention_macs / 1e9:>10.3f} {c.n_conv:>6}")
    typer.echo(
        "\nNotes: c16nla matches the published 316,552 parameters exactly. The paper's smaller "
        "cores (12, 8, 4) report 198K, 113K and 57K parameters with attention; scaling C in the "
        "published structure gives fewer (c12/c8 here have no attention; c4nla has 25,918), so "
        "the paper's small models must have differed in more than C. #conv counts a grouped "
        "conv once (the published checkpoint stores it as 4 convs: 134 layers for c16nla). "
        "The paper's FLOPs/activation columns are not reproduced here: the paper text is not "
        "available on this machine."
    )


def infer(
    inputs: Annotated[list[Path], typer.Argument(help="image files (any size, any format Pillow reads)")],
    outdir: Annotated[Path, typer.Option("-o", "--outdir", help="folder for the x4 PNGs")],
    variant: Annotated[str, typer.Option(help="model variant")] = "c16nla",
    weights: Annotated[Path | None, typer.Option(help="weights file (default: shipped)")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N]")] = "auto",
    tile: Annotated[int, typer.Option(help="tile core in LR px (multiple of 32); 0 = whole image")] = 256,
) -> None:
    """Upscale image files locally with PyTorch (no server). 8-bit RGB in and out."""
    from PIL import Image, UnidentifiedImageError

    from training.infer import load_on, output_path, pick_device, read_rgb8, upscale_array
    from training.weights.store import WeightsError

    _check_variant(variant)
    if tile < 0 or tile % 32:
        raise typer.BadParameter(f"--tile {tile} must be 0 or a positive multiple of 32")
    try:
        dev = pick_device(device)
        model = load_on(variant, weights, dev)
    except (WeightsError, RuntimeError) as exc:
        raise _fail(str(exc)) from exc
    outdir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for src in inputs:
        try:
            rgb = read_rgb8(src)
        except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
            typer.secho(f"skip {src}: not a readable image ({exc})", fg=typer.colors.YELLOW, err=True)
            failed += 1
            continue
        out = upscale_array(model, rgb, dev, tile=tile)
        dst = output_path(src, outdir, model.scale)
        Image.fromarray(out).save(dst)
        typer.echo(f"{src} {rgb.shape[1]}x{rgb.shape[0]} -> {dst} {out.shape[1]}x{out.shape[0]}")
    if failed:
        raise typer.Exit(code=1)


def bench_model(
    variant: Annotated[list[str], typer.Option(help="Variants (repeatable).")] = ["c16nla", "c4"],  # noqa: B006
    batch: Annotated[list[int], typer.Option(help="Batch sizes (repeatable).")] = [1, 8],  # noqa: B006
    size: Annotated[int, typer.Option(help="LR tile side in pixels.")] = 256,
    device: Annotated[str, typer.Option(help="cuda or cpu (default: cuda where present).")] = "",
    seconds: Annotated[float, typer.Option(help="Timing per setting, seconds.")] = 1.0,
) -> None:
    """Model speed per precision (fp32, TF32, bf16, fp16 on CUDA): ms, Mpx/s, speed-up, error."""
    import torch

    from training.model_bench import bench_model as run
    from training.model_bench import format_rows

    for v in variant:
        _check_variant(v)
    if size < 8 or any(b < 1 for b in batch):
        raise _fail("--size must be at least 8 and every --batch at least 1")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise _fail("--device cuda: torch sees no GPU on this machine")
    name = (torch.cuda.get_device_name(dev) if dev.type == "cuda"
            else f"CPU, {torch.get_num_threads()} threads")
    typer.echo(format_rows(run(variant, dev, batch, size, seconds), size, name))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    bench_app.command("model")(bench_model)
    app.add_typer(weights_app, name="weights")
    app.add_typer(model_app, name="model")
    app.command("infer")(infer)
