"""The one picture pipeline: tiles through a model, stitched, alpha carried, then resized/cropped.

Used by the gateway (tiles on Triton over gRPC), ``imdsr infer`` (PyTorch in-process) and the gRPC
example (Triton, synchronous client): what runs the tiles is the ``infer`` parameter, the rest is
this module, so local and served results agree on every picture (alpha, 16-bit, grey, ICC).

Memory stays bounded by the tiles in flight: each tile is converted to float on its own, and its
result is rounded into the preallocated output as soon as it arrives.

Cancelling the task that runs ``upscale`` (a client that hung up, a cancelled job) stops it
sending tiles: the tiles not yet sent are cancelled before they reach ``infer`` and only those
already in ``infer`` may finish. ``on_tile`` is called once per tile placed, for progress.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from imdsr.contract import SCALE
from imdsr.imaging.codec import Picture
from imdsr.imaging.geometry import FinalSize
from imdsr.imaging.resampling import BICUBIC, LANCZOS, resize_image, resize_plane
from imdsr.imaging.tiling import ALIGN, Tile, TilePlan, TilingRule, place, plan_tiles, tile_input

# infer(batch NCHW float32 in [0, 1]) -> NCHW float32, x SCALE
TileInfer = Callable[[np.ndarray], Awaitable[np.ndarray]]
SyncTileInfer = Callable[[np.ndarray], np.ndarray]
# called once per tile placed in the output (job progress)
TileDone = Callable[[], None]


@dataclass(frozen=True)
class UpscaleResult:
    picture: Picture
    tiles: int


async def run_tiles(
    image: np.ndarray,
    plan: TilePlan,
    infer: TileInfer,
    in_flight: int,
    scale: int = SCALE,
    out: np.ndarray | None = None,
    on_tile: TileDone | None = None,
) -> np.ndarray:
    """Run every tile of ``plan`` with at most ``in_flight`` at once; stitch into ``out`` (default:
    a new array of the image's dtype; uint8/uint16 rounded, float32 clamped to [0, 1]).

    Tiles go one per call, several at once, so that Triton's dynamic batcher can batch tiles of
    this request with each other and with other requests'. On the first failure the remaining
    tiles are cancelled (TaskGroup) and that error propagates; so are they when the caller's task
    is cancelled, before any of them is sent.
    """
    h, w, c = image.shape
    output = np.empty((h * scale, w * scale, c), dtype=image.dtype) if out is None else out
    gate = asyncio.Semaphore(in_flight)

    async def one(tile: Tile) -> None:
        async with gate:
            batch = await asyncio.to_thread(tile_input, image, tile)
            result = await infer(batch)
            await asyncio.to_thread(place, output, tile, result, scale)
        if on_tile is not None:
            on_tile()

    try:
        async with asyncio.TaskGroup() as group:
            for tile in plan:
                group.create_task(one(tile))
    except BaseExceptionGroup as group_error:
        # Callers map single errors to HTTP statuses; the first failure is the one to report.
        raise group_error.exceptions[0] from None
    return output


def in_threads(infer: SyncTileInfer) -> TileInfer:
    """A blocking ``infer`` (PyTorch, a sync gRPC client) as the pipeline's async one."""

    async def run(batch: np.ndarray) -> np.ndarray:
        return await asyncio.to_thread(infer, batch)

    return run


def upscale_tiled(image: np.ndarray, infer: SyncTileInfer, scale: int, tile: int, context: int,
                  in_flight: int = 1, align: int = ALIGN) -> np.ndarray:
    """``run_tiles`` for synchronous callers (training evaluation, benchmarks)."""
    plan = plan_tiles(image.shape[0], image.shape[1], tile, context, align)
    return asyncio.run(run_tiles(image, plan, in_threads(infer), in_flight, scale))


class AlphaMode(StrEnum):
    """How the alpha plane gets to x4: through the network as a grey image (sharp cut-out and logo
    edges, as Real-ESRGAN does; twice the model work) or by bicubic interpolation (cheap, soft)."""

    MODEL = "model"
    BICUBIC = "bicubic"


async def _alpha_through_model(alpha: np.ndarray, plan: TilePlan, infer: TileInfer, in_flight: int,
                               out: np.ndarray, on_tile: TileDone | None) -> None:
    grey = np.repeat(alpha[..., None], 3, axis=2)  # input-sized: small next to the output
    result = await run_tiles(grey, plan, infer, in_flight, on_tile=on_tile)
    out[...] = result.mean(axis=2, dtype=np.float32).round().astype(out.dtype)


def _pad_to(picture: Picture, size: tuple[int, int]) -> Picture:
    """``picture`` mirrored at the bottom/right out to ``size`` (``TilingRule.padded``: the
    smallest window some networks can run, RLFN's and EFDN's pooling, and the window buckets);
    the output is cropped back. Mirrored (numpy's "symmetric"): the border costs least fidelity
    so (imdsr/imaging/tiling.py, "Window buckets")."""
    ph, pw = max(0, size[0] - picture.height), max(0, size[1] - picture.width)
    if not (ph or pw):
        return picture

    def pad(plane: np.ndarray) -> np.ndarray:
        return np.pad(plane, ((0, ph), (0, pw)) + ((0, 0),) * (plane.ndim - 2), mode="symmetric")

    return picture.with_planes(pad(picture.color), None if picture.alpha is None else pad(picture.alpha))


def tile_count(height: int, width: int, *, tile: int, rule: TilingRule, alpha_through_model: bool
               ) -> int:
    """The tiles ``upscale`` sends for one picture of this size (the total its progress counts)."""
    plan = plan_tiles(*rule.padded(height, width), tile, rule.context, rule.align)
    return len(plan) * (2 if alpha_through_model else 1)


async def upscale(
    picture: Picture,
    infer: TileInfer,
    *,
    tile: int,
    rule: TilingRule,
    in_flight: int,
    final: FinalSize | None = None,
    alpha_mode: AlphaMode = AlphaMode.MODEL,
    on_tile: TileDone | None = None,
) -> UpscaleResult:
    """x4 of ``picture`` through ``infer`` (tiles placed by the model's ``rule``), then to
    ``final`` (default: x4 as it is); ``on_tile`` after each tile (``tile_count`` in all)."""
    height, width = picture.height, picture.width
    original, picture = picture, _pad_to(picture, rule.padded(height, width))
    plan = plan_tiles(picture.height, picture.width, tile, rule.context, rule.align)
    size = (picture.height * SCALE, picture.width * SCALE)
    if picture.alpha is None:
        color, alpha = await run_tiles(picture.color, plan, infer, in_flight, on_tile=on_tile), None
    else:
        # Colour and alpha share one interleaved buffer: the encoder takes it as it is, with no
        # full-size copy to put the planes together.
        planes = np.empty((*size, 4), dtype=picture.color.dtype)
        color, alpha = planes[..., :3], planes[..., 3]
        await run_tiles(picture.color, plan, infer, in_flight, out=color, on_tile=on_tile)
        if alpha_mode is AlphaMode.MODEL:
            await _alpha_through_model(picture.alpha, plan, infer, in_flight, alpha, on_tile)
        else:
            alpha[...] = await asyncio.to_thread(resize_plane, picture.alpha, size, BICUBIC)
    if picture is not original:  # padded: keep the part that is the picture
        size = (height * SCALE, width * SCALE)
        color = np.ascontiguousarray(color[:size[0], :size[1]])
        alpha = None if alpha is None else np.ascontiguousarray(alpha[:size[0], :size[1]])
    if final is not None and final.resize != size:
        color = await asyncio.to_thread(resize_image, color, final.resize, LANCZOS)
        if alpha is not None:
            alpha = await asyncio.to_thread(resize_plane, alpha, final.resize, LANCZOS)
    if final is not None and final.crop is not None:
        top, left, h, w = final.crop
        color = np.ascontiguousarray(color[top:top + h, left:left + w])
        alpha = None if alpha is None else np.ascontiguousarray(alpha[top:top + h, left:left + w])
    return UpscaleResult(original.with_planes(color, alpha), len(plan))


def upscale_sync(
    picture: Picture,
    infer: SyncTileInfer,
    *,
    tile: int,
    rule: TilingRule,
    in_flight: int = 1,
    final: FinalSize | None = None,
    alpha_mode: AlphaMode = AlphaMode.MODEL,
) -> UpscaleResult:
    """``upscale`` for synchronous callers with a blocking ``infer``."""
    return asyncio.run(upscale(picture, in_threads(infer), tile=tile, rule=rule,
                               in_flight=in_flight, final=final, alpha_mode=alpha_mode))
