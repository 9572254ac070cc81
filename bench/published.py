"""The bare-model baseline of ``imdsr bench service``: the published NTIRE 2022 architecture.

The published code (NTIRE 2022 ESR repository, ``team19_imdeception.py``; read, not copied)
computes the same function as ours in another form:

* each grouped 3x3 conv as four separate convs on channel chunks, concatenated
  (``conv2d_block.0..3``); ours is one ``groups=4`` conv with the same weights;
* the block attention pads the projection to ``(H // 32 + 1) * 32`` rows and columns, a whole
  extra region even when H is a multiple of 32 (zero tokens in regions of their own, so the
  result is the same), and lays tokens out through two pixel-unshuffles and permutes.

``published_architecture`` rebuilds that form around any of our models' weights, so the baseline is
what a user exporting the published model to ONNX runs; a test checks it computes what ours does.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from training.models.imdeception import BlockNonLocalAttention


class SplitConvs(nn.Module):
    """A grouped conv as the published code computes it: one conv per group, concatenated."""

    def __init__(self, grouped: nn.Conv2d) -> None:
        super().__init__()
        g = grouped.groups
        cin, cout = grouped.in_channels // g, grouped.out_channels // g
        self.convs = nn.ModuleList()
        for i in range(g):
            conv = nn.Conv2d(cin, cout, grouped.kernel_size, grouped.stride, grouped.padding,
                             bias=grouped.bias is not None)
            conv.weight.data.copy_(grouped.weight.data[i * cout:(i + 1) * cout])
            if grouped.bias is not None:
                conv.bias.data.copy_(grouped.bias.data[i * cout:(i + 1) * cout])
            self.convs.append(conv)
        self.cin = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.cin, dim=1)
        return torch.cat([conv(p) for conv, p in zip(self.convs, parts, strict=True)], dim=1)


class PublishedAttention(nn.Module):
    """Our block attention's weights, computed the published way (padding, token layout)."""

    def __init__(self, ours: BlockNonLocalAttention) -> None:
        super().__init__()
        self.qkv, self.out = ours.qkv, ours.out
        self.patch, self.region, self.q = ours.patch, ours.region, ours.q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, k = self.patch, self.region // self.patch  # patch side; patches per region side
        t = self.qkv(x)
        _, _, h, w = t.shape
        hp = (h // self.region + 1) * self.region
        wp = (w // self.region + 1) * self.region
        t = F.pixel_unshuffle(F.pad(t, (0, wp - w, 0, hp - h)), p)
        _, c3, hl, wl = t.shape
        d = c3 // 3
        blocks = F.pixel_unshuffle(t, k).permute(0, 2, 3, 1).contiguous().view(-1, c3, k, k)
        nb = blocks.shape[0]
        tokens = blocks.permute(0, 2, 3, 1).contiguous().view(nb, -1, c3)
        query, key, value = torch.split(tokens, (d, d, d), 2)
        attn = torch.softmax(torch.bmm(query, key.transpose(2, 1)), dim=2)
        y = torch.bmm(attn, value).view(nb, k, k, d).permute(0, 3, 1, 2)
        y = y.contiguous().view(-1, hl // k, wl // k, d * k * k).permute(0, 3, 1, 2)
        y = F.pixel_shuffle(F.pixel_shuffle(y, k), p)[:, :, :h, :w]
        return x + self.out(y)


def published_architecture(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in the published form: grouped convs split, attention as published."""
    out = copy.deepcopy(model).eval()
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d) and child.groups > 1:
                setattr(parent, name, SplitConvs(child))
            elif isinstance(child, BlockNonLocalAttention):
                setattr(parent, name, PublishedAttention(child))
    return out
