"""IMDN as the NTIRE 2022 ESR challenge's baseline (Hui et al., ACM MM 2019; the AIM 2019 form).

The baseline's information multi-distillation block has no contrast-aware channel attention:
three 3x3 conv + LeakyReLU steps each split off a quarter of the channels, a last 3x3 conv
distils the rest, a 1x1 conv fuses the four quarters and the block adds its input back. Every
operation is local, so tiles with enough context reproduce whole-image inference.
"""

from __future__ import annotations

import torch
from torch import nn

from training.models.frame import SkipFrame, conv3x3


class IMDBlock(nn.Module):
    def __init__(self, channels: int, slope: float = 0.05) -> None:
        super().__init__()
        self.kept = channels // 4
        self.rest = rest = channels - self.kept
        self.steps = nn.ModuleList([conv3x3(channels, channels), conv3x3(rest, channels),
                                    conv3x3(rest, channels)])
        self.last = conv3x3(rest, self.kept)
        self.fuse = nn.Conv2d(4 * self.kept, channels, 1)
        self.act = nn.LeakyReLU(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept, rest = [], x
        for step in self.steps:
            k, rest = torch.split(self.act(step(rest)), [self.kept, self.rest], dim=1)
            kept.append(k)
        kept.append(self.last(rest))
        return x + self.fuse(torch.cat(kept, dim=1))


class IMDN(SkipFrame):
    def __init__(self, channels: int = 64, blocks: int = 8, scale: int = 4, slope: float = 0.05) -> None:
        super().__init__(channels, [IMDBlock(channels, slope) for _ in range(blocks)], scale)
