"""The final size of an upscaled picture: x4, ``outscale``, or a target ``width``/``height``.

Target sizes follow imgproxy's meanings under CSS-like names: ``inside`` fits the picture in the
box keeping its aspect ratio; ``cover`` fills the box keeping the aspect ratio and crops the
overflow, centred; ``fill`` stretches to the box exactly. One side alone keeps the aspect ratio.
The network always runs x4 first; the result is then resampled (Lanczos) and, for ``cover``,
cropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from imdsr.contract import SCALE


class Fit(StrEnum):
    INSIDE = "inside"
    COVER = "cover"
    FILL = "fill"


@dataclass(frozen=True)
class FinalSize:
    """Resize the x4 result to ``resize`` (height, width), then keep ``crop`` (top, left, h, w)."""

    resize: tuple[int, int]
    crop: tuple[int, int, int, int] | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of what is sent back."""
        return (self.crop[2], self.crop[3]) if self.crop else self.resize

    @property
    def pixels(self) -> int:
        h, w = self.size
        return h * w


def _scaled(n: int, factor: float) -> int:
    return max(1, round(n * factor))


def final_size(height: int, width: int, *, outscale: float | None = None, target_width: int | None = None,
               target_height: int | None = None, fit: Fit = Fit.INSIDE) -> FinalSize:
    """Where a ``height`` x ``width`` input ends up (see the module docstring)."""
    if outscale is not None and (target_width or target_height):
        raise ValueError("give outscale or a target width/height, not both")
    if target_width is None and target_height is None:
        factor = SCALE if outscale is None else outscale
        return FinalSize((_scaled(height, factor), _scaled(width, factor)))
    if target_width is None or target_height is None:
        factor = target_width / width if target_width is not None else target_height / height  # type: ignore[operator]
        return FinalSize((target_height or _scaled(height, factor), target_width or _scaled(width, factor)))
    if fit is Fit.FILL:
        return FinalSize((target_height, target_width))
    ratio_w, ratio_h = target_width / width, target_height / height
    if fit is Fit.INSIDE:
        factor = min(ratio_w, ratio_h)
        return FinalSize((_scaled(height, factor), _scaled(width, factor)))
    factor = max(ratio_w, ratio_h)  # cover: the box is filled, the overflow cropped, centred
    rh, rw = max(target_height, _scaled(height, factor)), max(target_width, _scaled(width, factor))
    return FinalSize((rh, rw), ((rh - target_height) // 2, (rw - target_width) // 2, target_height,
                                target_width))
