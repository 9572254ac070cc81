"""The frame the NTIRE 2022 efficient-SR peers share: shallow conv, a chain of blocks, a 3x3 conv
added back to the shallow features (the long skip), then a 3x3 conv and pixel shuffle.

IMDN, RLFN and EFDN differ only in their blocks, so each is this frame around its own block list.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, padding=1)


class SkipFrame(nn.Module):
    """``x -> head -> blocks -> body_out (+ head's features) -> tail -> pixel_shuffle``.

    Input and output are RGB in [0, 1], NCHW float32; the output is not clamped.
    """

    def __init__(self, channels: int, blocks: list[nn.Module], scale: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.head = conv3x3(3, channels)
        self.blocks = nn.Sequential(*blocks)
        self.body_out = conv3x3(channels, channels)
        self.tail = conv3x3(channels, 3 * scale * scale)

    @property
    def residual_out(self) -> nn.Conv2d:
        """The conv whose zeroing makes the network head -> tail only (training's bicubic start)."""
        return self.body_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shallow = self.head(x)
        deep = self.body_out(self.blocks(shallow)) + shallow
        return F.pixel_shuffle(self.tail(deep), self.scale)
