"""EFDN as NEESR's NTIRE 2022 entry (team 05), in its re-parameterised inference form.

Trained with edge-oriented convolution blocks that collapse, after training, into the plain 3x3
convs built here. Each block is a residual feature distillation block without the outer skip:
three (1x1 distil, 3x3 refine) steps, a last 3x3 distil, a 1x1 fuse of the four 10-channel
parts, then NEESR's enhanced spatial attention: 1x1 reduction to a quarter of the channels, a 7x7
max pool with stride 7 (padding 1), two parallel 3x3 conv + ReLU branches fused by a 3x3 conv,
bilinear upsampling back to the input's size, and a sigmoid gate. As in RLFN, the gate depends
on a wide neighbourhood and on the size of the input (docs/MODEL_ZOO.md has the tiling seams).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.models.frame import SkipFrame, conv3x3


class EFDNAttention(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = channels // 4
        self.reduce = nn.Conv2d(channels, inner, 1)
        self.skip = nn.Conv2d(inner, inner, 1)
        self.branches = nn.ModuleList([conv3x3(inner, inner), conv3x3(inner, inner)])
        self.merge = conv3x3(2 * inner, inner)
        self.expand = nn.Conv2d(inner, channels, 1)
        self.act = nn.ReLU()  # a module, so that complexity counters see it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(x)
        pooled = F.max_pool2d(reduced, kernel_size=7, stride=7, padding=1)
        coarse = self.merge(torch.cat([self.act(b(pooled)) for b in self.branches], dim=1))
        coarse = F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.expand(coarse + self.skip(reduced)))


class DistillBlock(nn.Module):
    def __init__(self, channels: int, distilled: int = 10, slope: float = 0.05) -> None:
        super().__init__()
        self.distil = nn.ModuleList([nn.Conv2d(channels, distilled, 1) for _ in range(3)])
        self.refine = nn.ModuleList([conv3x3(channels, channels) for _ in range(3)])
        self.last = conv3x3(channels, distilled)
        self.fuse = nn.Conv2d(4 * distilled, channels, 1)
        self.act = nn.LeakyReLU(slope)
        self.attention = EFDNAttention(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts, y = [], x
        for distil, refine in zip(self.distil, self.refine, strict=True):
            parts.append(self.act(distil(y)))
            y = self.act(refine(y))
        parts.append(self.act(self.last(y)))
        return self.attention(self.fuse(torch.cat(parts, dim=1)))


class EFDN(SkipFrame):
    def __init__(self, channels: int = 42, distilled: int = 10, blocks: int = 4, scale: int = 4) -> None:
        super().__init__(channels, [DistillBlock(channels, distilled) for _ in range(blocks)], scale)
