"""The window sides a served model accepts, and which tiles fit them: one rule for every target.

A *tile* is the core of the output a piece of work owns; its *window* is the tile plus ``context``
pixels on each side, which is what goes over the wire. The tiler (``plan_tiles``) never sends a
window larger than ``tile + 2 * context``, nor smaller than the image when the image fits in one
window, so a model accepts every request of a tile exactly when

    1 <= window side <= max_side  and  tile + 2 * context <= max_side.

The same ``WindowLimits`` shapes the TensorRT profiles (``export/trt_plan.py``), is written into
each model's ``config.pbtxt`` (parameter ``imdsr_max_window``) and is read back from Triton by the
gateway, so engine and gateway cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from imdsr.imaging.tiling import ALIGN


class TileTooLargeError(ValueError):
    """A tile whose windows the model would reject."""


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

    def check_tile(self, tile: int, context: int) -> None:
        """Raise ``TileTooLargeError`` naming the limit unless windows of ``tile`` fit."""
        window = tile + 2 * context
        if window > self.max_side:
            raise TileTooLargeError(
                f"tile {tile} needs windows of {window} px ({tile} + 2 x {context} context); this "
                f"model accepts windows up to {self.max_side} px, so tile must be at most "
                f"{self.largest_tile(context)}")
