"""SRneXt ("Super Resolution Net-X"): FRL Team 05's NTIRE 2023 efficient-SR entry, as published
(26 layers of 35 channels, 15-tap strip convolutions, a lightweight pixel-shuffle tail).

The network, as its factsheet and public code describe it (written here from that description):

* the DF2K mean is taken off the input and put back on the output;
* a 3x3 head, then 26 pre-norm layers, each ``x + gate(norm1(x))`` then ``x + mlp(norm2(x))``
  with a channel LayerNorm (biased variance, eps 1e-5) in front of each branch;
* the "self gate": a depthwise 15x1 and a depthwise 1x15 convolution of the same input,
  multiplied, with the input added back; that times a 1x1 channel mixer of itself, with itself
  added back; then a 1x1 projection;
* the MLP: two "shift" 1x1 convolutions with Swish (x * sigmoid x) between them. A shift 1x1
  first moves each fifth of the channels one pixel (right, left, down, up, not at all; zero
  padding at the border), then mixes channels; the move is fixed, so it has no parameters;
* the body's output plus the head's (the long skip), a 3x3 conv to 3 x 16 channels and pixel
  shuffle.

Every operation is local, but the receptive field is wide: each layer reaches 7 px along each
axis with its strips and 2 px more with its shifts, so 26 layers reach about 236 px (LR) from a
pixel; the tiling rule's context is measured, not derived (docs/MODEL_ZOO.md).

Ranges: the published weights work on [0, 255]; this module works on [0, 1] like every model
here. The checkpoint importer folds the factor into the head's weights and the tail's weights
and bias (training/weights/ntire23.py), so the mean below is in [0, 1] units.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# DF2K's RGB mean (images 1-3450), the published code's constant.
DF2K_MEAN = (0.4690, 0.4490, 0.4036)


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of an NCHW tensor, with a per-channel affine."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight[:, None, None] \
            + self.bias[:, None, None]


def shift_fifths(x: torch.Tensor) -> torch.Tensor:
    """Move each fifth of the channels one pixel: the first fifth takes its right neighbour, the
    second its left, the third the one below, the fourth the one above; the last stays put."""
    fifth = x.shape[1] // 5
    p = F.pad(x, (1, 1, 1, 1))
    parts = (p[:, 0 * fifth:1 * fifth, 1:-1, 2:], p[:, 1 * fifth:2 * fifth, 1:-1, :-2],
             p[:, 2 * fifth:3 * fifth, 2:, 1:-1], p[:, 3 * fifth:4 * fifth, :-2, 1:-1],
             x[:, 4 * fifth:])
    return torch.cat(parts, dim=1)


class ShiftConv1x1(nn.Conv2d):
    """A fixed one-pixel shift of each fifth of the channels, then a 1x1 convolution."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        if in_channels % 5:
            raise ValueError(f"a shift 1x1 needs channels divisible by 5, got {in_channels}")
        super().__init__(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(shift_fifths(x))


class SelfGate(nn.Module):
    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.strip_h = nn.Conv2d(channels, channels, (kernel, 1), padding=(kernel // 2, 0),
                                 groups=channels)
        self.strip_w = nn.Conv2d(channels, channels, (1, kernel), padding=(0, kernel // 2),
                                 groups=channels)
        self.mix = nn.Conv2d(channels, channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x + self.strip_h(x) * self.strip_w(x)
        return self.proj(spatial + spatial * self.mix(spatial))


class Swish(nn.Module):
    """x * sigmoid(x); a module of its own so that complexity counters see it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class SRneXtLayer(nn.Module):
    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.norm1 = ChannelNorm(channels)
        self.gate = SelfGate(channels, kernel)
        self.norm2 = ChannelNorm(channels)
        self.fc1 = ShiftConv1x1(channels, 2 * channels)
        self.act = Swish()
        self.fc2 = ShiftConv1x1(2 * channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.gate(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class SRneXt(nn.Module):
    """Input and output are RGB in [0, 1], NCHW float32; the output is not clamped."""

    def __init__(self, channels: int = 35, layers: int = 26, kernel: int = 15, scale: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.register_buffer("mean", torch.tensor(DF2K_MEAN).view(1, 3, 1, 1), persistent=False)
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.layers = nn.Sequential(*(SRneXtLayer(channels, kernel) for _ in range(layers)))
        self.tail = nn.Conv2d(channels, 3 * scale * scale, 3, padding=1)

    @staticmethod
    def functional_conv_macs(x: torch.Tensor, y: torch.Tensor) -> int:
        """The published code shifts the mean with two fixed 1x1 convs (3 -> 3 channels) on the
        input and on the output; NTIRE 2023's counter counted them (training/summary.py)."""
        return 3 * x.numel() + 3 * y.numel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shallow = self.head(x - self.mean)
        deep = self.layers(shallow) + shallow
        return F.pixel_shuffle(self.tail(deep), self.scale) + self.mean
