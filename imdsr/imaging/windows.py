"""The window sides a served model accepts, and which tiles fit them: one rule for every target.

A *tile* is the core of the output a piece of work owns; its *window* is the tile plus ``context``
pixels on each side, which is what goes over the wire. The tiler (``plan_tiles``) never sends a
window larger than ``tile + 2 * context``, nor smaller than the image when the image fits in one
window, so a model accepts every request of a tile exactly when

    1 <= window side <= max_side  and  tile + 2 * context <= max_side.

(The image is the one padded to the rule's buckets, ``TilingRule.padded``: its windows are what
goes over the wire, so a whole image must fit once padded.)

The same ``WindowLimits`` shapes the TensorRT profiles (``export/trt_plan.py``), is written into
each model's ``config.pbtxt`` (parameter ``imdsr_max_window``) and is read back from Triton by the
gateway, so engine and gateway cannot drift apart. ``choose_tile`` is the one tile choice over
them, for the gateway, ``imdsr infer`` and the gRPC example alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from imdsr.imaging.tiling import ALIGN, DEFAULT_TILE, TilingRule

# A requested tile of 0: the whole image in one window (``imdsr infer --tile 0``).
WHOLE_IMAGE = 0


class TileTooLargeError(ValueError):
    """A tile whose windows the model would reject; ``largest`` is the largest tile that fits."""

    def __init__(self, message: str, largest: int) -> None:
        super().__init__(message)
        self.largest = largest


class WindowTooSmallError(ValueError):
    """A model whose largest window cannot hold the context around even the smallest tile."""


@dataclass(frozen=True)
class WindowLimits:
    """Window sides (low-resolution pixels) a model accepts: ``min_side`` .. ``max_side``."""

    max_side: int
    # 1: whole images smaller than a window (a 21x26 icon) go to the model as they are.
    min_side: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.min_side <= self.max_side:
            raise ValueError(f"window limits {self.min_side}..{self.max_side} are empty")

    def admits(self, height: int, width: int) -> bool:
        return all(self.min_side <= side <= self.max_side for side in (height, width))

    def largest_tile(self, context: int, align: int = ALIGN) -> int:
        """The largest ``align``-multiple tile whose window fits; 0 when none does."""
        return max(0, (self.max_side - 2 * context) // align * align)

    def check_tile(self, tile: int, context: int, align: int = ALIGN) -> None:
        """Raise ``TileTooLargeError`` naming the limit unless windows of ``tile`` fit."""
        window = tile + 2 * context
        if window > self.max_side:
            largest = self.largest_tile(context, align)
            raise TileTooLargeError(
                f"tile {tile} needs windows of {window} px ({tile} + 2 x {context} context); this "
                f"model accepts windows up to {self.max_side} px, so tile must be at most "
                f"{largest}", largest)


def choose_tile(rule: TilingRule, limits: WindowLimits | None, height: int, width: int,
                requested: int | None = None, default: int = DEFAULT_TILE) -> int:
    """The tile core to plan a ``height`` x ``width`` image with, for a model of ``rule`` and
    ``limits`` (None: a model that publishes none, as ONNX Runtime and PyTorch take any size):

    * one window of the whole image where the rule runs it whole (RLFN's and EFDN's attention is
      exact only so) and the model takes a window that large, or where ``requested`` is
      ``WHOLE_IMAGE``;
    * else ``requested`` rounded down to the rule's alignment, if its windows fit the model
      (``TileTooLargeError`` naming the largest tile that does, otherwise);
    * else ``default`` rounded the same way and shrunk to what the model accepts
      (``WindowTooSmallError`` when the context alone fills its largest window).
    """
    # The network sees the image padded to the rule's buckets: that is the one window's size.
    side = max(rule.padded(height, width))
    too_wide = limits is not None and side > limits.max_side
    whole = rule.whole_tile(height, width)
    if whole is not None and not too_wide:
        return whole
    if requested == WHOLE_IMAGE:
        if limits is not None and too_wide:
            raise TileTooLargeError(
                f"the whole {width}x{height} image needs a window of {side} px; this "
                f"model accepts windows up to {limits.max_side} px",
                limits.largest_tile(rule.context, rule.align))
        return rule.one_window(height, width)
    if limits is None:
        return rule.tile(requested or default)
    if requested is not None:
        tile = rule.tile(requested)
        limits.check_tile(tile, rule.context, rule.align)
        return tile
    largest = limits.largest_tile(rule.context, rule.align)
    if largest == 0:
        raise WindowTooSmallError(f"the model accepts windows up to {limits.max_side} px, too "
                                  f"small for its context of {rule.context} px")
    return rule.tile(min(default, largest))
