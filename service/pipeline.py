"""Upscale a decoded picture: colour through tiles on Triton, alpha resized, optional outscale.

Memory stays bounded by the tiles in flight: each tile is converted to float on its own, and its
result is rounded into the preallocated output as soon as it arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from imdsr.contract import SCALE
from imdsr.imaging.tiling import Tile, TilePlan, place, plan_tiles, tile_input
from service.codec import Picture
from service.resampling import BICUBIC, LANCZOS, outscale_size, resize_image, resize_plane

# infer(batch NCHW float32) -> NCHW float32, x SCALE
TileInfer = Callable[[np.ndarray], Awaitable[np.ndarray]]


@dataclass(frozen=True)
class UpscaleResult:
    picture: Picture
    tiles: int


async def run_tiles(
    image: np.ndarray,
    plan: TilePlan,
    infer: TileInfer,
    in_flight: int,
) -> np.ndarray:
    """Run every tile of ``plan`` with at most ``in_flight`` at once; stitch into a new array.

    Tiles go one per call, several at once, so that Triton's dynamic batcher can batch tiles of
    this request with each other and with other requests'. On the first failure the remaining
    tiles are cancelled (TaskGroup) and the error propagates.
    """
    h, w, c = image.shape
    output = np.empty((h * SCALE, w * SCALE, c), dtype=image.dtype)
    gate = asyncio.Semaphore(in_flight)

    async def one(tile: Tile) -> None:
        async with gate:
            batch = await asyncio.to_thread(tile_input, image, tile)
            result = await infer(batch)
            await asyncio.to_thread(place, output, tile, result, SCALE)

    try:
        async with asyncio.TaskGroup() as group:
            for tile in plan:
                group.create_task(one(tile))
    except BaseExceptionGroup as group_error:
        # Callers map single errors to HTTP statuses; the first failure is the one to report.
        raise group_error.exceptions[0] from None
    return output


async def upscale(
    picture: Picture,
    infer: TileInfer,
    *,
    tile: int,
    context: int,
    in_flight: int,
    outscale: float | None = None,
) -> UpscaleResult:
    plan = plan_tiles(picture.height, picture.width, tile, context)
    color = await run_tiles(picture.color, plan, infer, in_flight)
    size = (picture.height * SCALE, picture.width * SCALE)
    alpha = picture.alpha
    if alpha is not None:
        # Alpha is not an image the network knows; a smooth interpolation suits masks best.
        alpha = await asyncio.to_thread(resize_plane, alpha, size, BICUBIC)
    if outscale is not None and outscale != SCALE:
        final = outscale_size(picture.height, picture.width, outscale)
        color = await asyncio.to_thread(resize_image, color, final, LANCZOS)
        if alpha is not None:
            alpha = await asyncio.to_thread(resize_plane, alpha, final, LANCZOS)
    return UpscaleResult(picture.with_planes(color, alpha), len(plan))
