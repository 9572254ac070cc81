"""The one tiler: cut an image into overlapping tiles and stitch the cores of their results.

Numpy only. ``imdsr/imaging/pipeline.py`` runs the tiles through a model for every caller (the
gateway over gRPC, ``imdsr infer`` on PyTorch, the gRPC example).

Why the tiles sit where they do: IMDeception's block non-local attention works on a fixed 32-pixel
grid anchored at the top-left of whatever it is given, zero-padded at the bottom/right. A tile
therefore reproduces whole-image inference only if

* every window starts on a multiple of ``align`` (32) in image coordinates, so the tile's
  attention regions are exactly the image's regions;
* a window that reaches the bottom/right border ends exactly at the border, so the convolutions'
  zero padding and the attention's region padding there match the whole image;
* every core (the part of the output a tile owns) has ``context`` pixels of real image around it
  wherever it is not at the border, enough to cover the convolutions' reach and the regions the
  attention pulls in (measured in docs/PERFORMANCE.md, "Tiling").

Other architectures have other rules (``TilingRule``, one per architecture in the model registry,
published by each served model's config.pbtxt): IMDN is local (context only), RLFN's and EFDN's
attention gates are resampled to the size of the window, so only whole-image inference is exact
for them and they run whole up to ``whole_up_to`` pixels a side.

Interior windows are all ``tile + 2 * context`` square, so Triton's dynamic batcher can batch them
across tiles and across requests; windows at the bottom/right border end at the border and are
smaller.

Window buckets: every new window shape costs the serving runtime compiled kernels and buffers that
it keeps (a Triton stub grew 298 -> 601 MiB over 200 random shapes, and was still growing; over
200 windows of 25 shapes it levelled at 343 MiB: docs/RELIABILITY.md). So the picture pipeline
pads each side of an image up to a multiple of the rule's ``bucket`` (``TilingRule.padded``,
mirrored at the bottom/right) before it plans the tiles, and crops the result back. The padding
depends on the image alone, never on the tile, so tiles still reproduce whole-image inference
(of the padded image) exactly; with the default tile (256, a multiple of the 64-px bucket) every
window side is a multiple of 64 up to the window: 25 shapes for c16nla's 320-px windows.
Mirroring, not repeating the edge pixel: over 30 BSD100 images (LR 120x80, padded to 128x128)
c16nla lost 0.0017 dB Y-PSNR mirrored (worst image -0.014), 0.024 dB edge-repeated (worst -0.16),
0.16 dB zero-padded (docs/PERFORMANCE.md, "Window buckets").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

ALIGN = 32          # IMDeception's attention region, in LR pixels
DEFAULT_TILE = 256  # core size of interior tiles (chosen by `imdsr bench tiling`, see PERFORMANCE)
DEFAULT_CONTEXT = 32
# Window sides snap up to multiples of this (LR px): see "Window buckets" above. 64 rather than 32:
# 25 window shapes instead of 100 at the 320-px window, for the same fidelity (BSD100: -0.0016 dB
# at 32, -0.0017 dB at 64), at up to 63 px of padding per side.
DEFAULT_BUCKET = 64


@dataclass(frozen=True)
class TilingRule:
    """How a model's tiles must sit to match whole-image inference (chosen by measurement).

    ``context`` and ``align`` as above; ``min_side``: the smallest window the network can run
    (smaller images are padded to it); ``whole_up_to``: images whose sides all fit run as one
    window (0: the served window limit decides, as for any model); ``bucket``: image sides are
    padded up to a multiple of it before tiling (0: not at all), see "Window buckets" above.
    """

    context: int = DEFAULT_CONTEXT
    align: int = ALIGN
    min_side: int = 1
    whole_up_to: int = 0
    bucket: int = DEFAULT_BUCKET

    def __post_init__(self) -> None:
        if (self.align < 1 or self.context < 0 or self.context % self.align or self.min_side < 1
                or self.bucket < 0):
            raise ValueError(f"invalid tiling rule {self}")

    def padded_side(self, n: int) -> int:
        """The side an image side of ``n`` px is padded to before tiling: at least ``min_side``,
        rounded up to ``bucket``, but never past ``whole_up_to`` for a side that runs whole."""
        side = max(n, self.min_side)
        if not self.bucket:
            return side
        up = -(-side // self.bucket) * self.bucket
        if self.whole_up_to and side <= self.whole_up_to:
            up = min(up, self.whole_up_to)
        return up

    def padded(self, height: int, width: int) -> tuple[int, int]:
        """``padded_side`` of both sides: the image the network actually sees."""
        return self.padded_side(height), self.padded_side(width)

    def tile(self, requested: int) -> int:
        """``requested`` rounded down to a multiple of ``align`` (at least one ``align``)."""
        return max(self.align, requested // self.align * self.align)

    def one_window(self, height: int, width: int) -> int:
        """The tile that makes one window of the whole (padded) image: its longer padded side
        rounded up to ``align``, so the tile stays a valid one for this rule."""
        side = max(self.padded(height, width))
        return side + (-side) % self.align

    def whole_tile(self, height: int, width: int) -> int | None:
        """``one_window`` where this rule runs the image whole, else None."""
        if self.whole_up_to and max(height, width) <= self.whole_up_to:
            return self.one_window(height, width)
        return None


@dataclass(frozen=True)
class Span:
    """One axis of a tile: the window read from the input and the core it owns, half-open."""

    start: int
    stop: int
    core_start: int
    core_stop: int


@dataclass(frozen=True)
class Tile:
    """A window of the low-resolution image and the core of it whose output the tile owns."""

    y: Span
    x: Span

    @property
    def shape(self) -> tuple[int, int]:
        return self.y.stop - self.y.start, self.x.stop - self.x.start

    @property
    def pixels(self) -> int:
        h, w = self.shape
        return h * w


@dataclass(frozen=True)
class TilePlan:
    height: int
    width: int
    tile: int
    context: int
    tiles: tuple[Tile, ...]

    def __len__(self) -> int:
        return len(self.tiles)

    def __iter__(self) -> Iterator[Tile]:
        return iter(self.tiles)

    @property
    def computed_pixels(self) -> int:
        return sum(t.pixels for t in self.tiles)

    @property
    def overhead(self) -> float:
        """Pixels the network computes per image pixel (1.0 = no overlap)."""
        return self.computed_pixels / (self.height * self.width)

    @property
    def shapes(self) -> set[tuple[int, int]]:
        return {t.shape for t in self.tiles}


def _check(tile: int, context: int, align: int) -> None:
    if tile <= 0 or tile % align:
        raise ValueError(f"tile {tile} must be a positive multiple of {align}")
    if context < 0 or context % align:
        raise ValueError(f"context {context} must be a non-negative multiple of {align}")


def plan_axis(n: int, tile: int, context: int, align: int = ALIGN) -> list[Span]:
    """Spans along one axis of length ``n``; see the module docstring for the rules."""
    _check(tile, context, align)
    if n <= 0:
        raise ValueError(f"axis length {n} must be positive")
    size = tile + 2 * context
    if n <= size:
        # One window covers the axis: exactly whole-image inference along it.
        return [Span(0, n, 0, n)]
    spans: list[Span] = []
    core_start = 0
    while True:
        start = max(0, core_start - context)
        # The first window has no context to give at the top/left, so its core takes that room.
        core_stop = start + size - context
        if core_stop + context >= n:
            # This window reaches the border: end it there and own the rest. It is smaller than
            # the interior ones (never larger), so the border costs no extra compute.
            spans.append(Span(start, n, core_start, n))
            return spans
        spans.append(Span(start, start + size, core_start, core_stop))
        core_start = core_stop


def plan_tiles(
    height: int,
    width: int,
    tile: int = DEFAULT_TILE,
    context: int = DEFAULT_CONTEXT,
    align: int = ALIGN,
) -> TilePlan:
    """Tiles covering a ``height`` x ``width`` image, in row-major order."""
    rows = plan_axis(height, tile, context, align)
    cols = plan_axis(width, tile, context, align)
    return TilePlan(height, width, tile, context, tuple(Tile(y, x) for y in rows for x in cols))


def max_value(dtype: np.dtype) -> float:
    """Full-scale value of an image dtype: 255 for uint8, 65535 for uint16, 1.0 for floats."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    if dtype.kind == "f":
        return 1.0
    raise TypeError(f"unsupported image dtype {dtype}")


def tile_input(image: np.ndarray, tile: Tile) -> np.ndarray:
    """The network input for ``tile``: float32 NCHW [1, C, h, w] in [0, 1] from an HWC image.

    Converting per tile keeps memory bounded by the tiles in flight, not by a float copy of the
    whole image.
    """
    window = image[tile.y.start:tile.y.stop, tile.x.start:tile.x.stop]
    out = window.astype(np.float32)
    if image.dtype != np.float32 or max_value(image.dtype) != 1.0:
        out *= np.float32(1.0 / max_value(image.dtype))
    return np.ascontiguousarray(out.transpose(2, 0, 1)[None])


def place(output: np.ndarray, tile: Tile, result: np.ndarray, scale: int) -> None:
    """Write the core of ``result`` ([C, s*h, s*w] or [1, C, s*h, s*w]) into ``output``.

    ``output`` is HWC of the final dtype. A float ``result`` is clamped to [0, 1] and rounded here,
    so the full-resolution float result never exists in memory; a UINT8 ``result`` (the model's
    ``output_u8``, already clamped and rounded the same way) is copied as it is.
    """
    if result.ndim == 4:
        result = result[0]
    y, x = tile.y, tile.x
    core = result[
        :,
        (y.core_start - y.start) * scale:(y.core_stop - y.start) * scale,
        (x.core_start - x.start) * scale:(x.core_stop - x.start) * scale,
    ].transpose(1, 2, 0)
    target = output[y.core_start * scale:y.core_stop * scale, x.core_start * scale:x.core_stop * scale]
    if result.dtype == np.uint8:
        if output.dtype != np.uint8:
            raise TypeError(f"an 8-bit result cannot fill a {output.dtype} image")
        target[...] = core
        return
    top = max_value(output.dtype)
    values = np.clip(core, 0.0, 1.0)
    if top != 1.0:
        values = np.rint(values * np.float32(top))
    target[...] = values.astype(output.dtype, copy=False)
