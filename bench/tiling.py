"""`imdsr bench tiling`: how far tiled inference is from whole-image inference, and what it costs.

Torch-free: it takes any ``infer(NCHW float32) -> NCHW float32``; the command builds one from the
PyTorch model (tests and benchmarks may use torch, the gateway never does).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from imdsr.imaging.pipeline import upscale_tiled
from imdsr.imaging.tiling import plan_tiles

Infer = Callable[[np.ndarray], np.ndarray]

CANDIDATES: tuple[tuple[int, int], ...] = (
    (64, 0), (128, 32), (192, 32), (256, 32), (384, 32), (192, 64), (256, 64),
)


@dataclass(frozen=True)
class TilingRow:
    image: str
    height: int
    width: int
    tile: int
    context: int
    tiles: int
    overhead: float
    max_abs: float       # float output, clamped to [0, 1]
    max_levels_8bit: int
    seconds: float
    whole_seconds: float


def whole_image(image: np.ndarray, infer: Infer) -> np.ndarray:
    """Whole-image inference of an HWC float image in [0, 1], clamped (the reference)."""
    x = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)
    return np.clip(infer(x)[0].transpose(1, 2, 0), 0.0, 1.0)


def to_8bit(image: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def compare(
    name: str,
    image: np.ndarray,
    infer: Infer,
    scale: int,
    candidates: Iterable[tuple[int, int]] = CANDIDATES,
) -> list[TilingRow]:
    """One row per (tile, context): difference from whole-image inference, overhead, time.

    ``image`` is HWC uint8; the 8-bit difference is what a client sees, the float one shows how
    close the tiles are before rounding.
    """
    h, w = image.shape[:2]
    as_float = image.astype(np.float32) / 255.0
    whole_image(as_float[:64, :64], infer)  # warm-up: the first call pays for allocator set-up
    start = time.perf_counter()
    reference = whole_image(as_float, infer)
    whole_seconds = time.perf_counter() - start
    reference_8 = to_8bit(reference)
    rows = []
    for tile, context in candidates:
        plan = plan_tiles(h, w, tile, context)
        start = time.perf_counter()
        tiled = upscale_tiled(as_float, infer, scale, tile, context)
        seconds = time.perf_counter() - start
        levels = np.abs(to_8bit(tiled).astype(np.int16) - reference_8).max()
        rows.append(TilingRow(
            name, h, w, tile, context, len(plan), plan.overhead,
            float(np.abs(tiled - reference).max()), int(levels), seconds, whole_seconds,
        ))
    return rows


def markdown(rows: list[TilingRow]) -> str:
    lines = [
        "| image (LR HxW) | tile | context | tiles | overhead | max abs diff | max 8-bit levels "
        "| time tiled / whole |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.image} {r.height}x{r.width} | {r.tile} | {r.context} | {r.tiles} "
            f"| {r.overhead:.2f} | {r.max_abs:.1e} | {r.max_levels_8bit} "
            f"| {r.seconds:.2f} s / {r.whole_seconds:.2f} s |"
        )
    return "\n".join(lines)
