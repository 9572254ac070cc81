"""RLFN (Kong et al., "Residual Local Feature Network", CVPRW 2022): ByteESR's NTIRE 2022 entry,
the runtime track's winner, in its published "cut" form (46 channels, 48 inside the blocks).

Each block: three 3x3 conv + LeakyReLU with the block's input added back, a 1x1 conv, then
enhanced spatial attention (ESA). ESA computes its gate on coarse features: a 1x1 reduction, a
stride-2 3x3 conv (no padding), a 7x7 max pool with stride 3, a 3x3 conv, and bilinear
upsampling back to the input's size. The gate at a pixel thus depends on a wide neighbourhood,
and the bilinear step's sampling grid on the size of whatever the network is given: tiles can
approach whole-image inference but not reproduce it bit for bit (measured in docs/MODEL_ZOO.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.models.frame import SkipFrame, conv3x3


class RLFNAttention(nn.Module):
    """RLFN's ESA: a sigmoid gate from strided, pooled features."""

    def __init__(self, channels: int, inner: int = 16) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, inner, 1)
        self.skip = nn.Conv2d(inner, inner, 1)
        self.down = nn.Conv2d(inner, inner, 3, stride=2)
        self.coarse = conv3x3(inner, inner)
        self.expand = nn.Conv2d(inner, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(x)
        coarse = self.coarse(F.max_pool2d(self.down(reduced), kernel_size=7, stride=3))
        coarse = F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.expand(coarse + self.skip(reduced)))


class RLFB(nn.Module):
    """Residual local feature block."""

    def __init__(self, channels: int, inner: int, attention: int = 16, slope: float = 0.05) -> None:
        super().__init__()
        self.convs = nn.ModuleList([conv3x3(channels, inner), conv3x3(inner, inner),
                                    conv3x3(inner, channels)])
        self.act = nn.LeakyReLU(slope)
        self.fuse = nn.Conv2d(channels, channels, 1)
        self.attention = RLFNAttention(channels, attention)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for conv in self.convs:
            y = self.act(conv(y))
        return self.attention(self.fuse(y + x))


class RLFN(SkipFrame):
    def __init__(self, channels: int = 46, inner: int = 48, blocks: int = 4, scale: int = 4) -> None:
        super().__init__(channels, [RLFB(channels, inner) for _ in range(blocks)], scale)
