"""IMDeception (Ayazoglu, CVPRW 2022), built exactly as ../shared/reference/IMDECEPTION.md says.

Pure ``nn.Module``s: no I/O, no weight loading. Names of submodules are the project's own;
``training.weights.ntire22_imdeception`` maps the published checkpoint onto them. What NTIRE's
complexity counter cannot see from module hooks (functional activations, the attention's matrix
products) each module declares for ``training/summary.py``: ``activated_convs``, ``matmul_macs``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.05


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LRELU_SLOPE)


class Gblock(nn.Module):
    """Grouped 3x3 conv (4 groups) -> ReLU -> 1x1 conv that mixes the groups."""

    def __init__(self, in_ch: int, out_ch: int, groups: int = 4) -> None:
        super().__init__()
        self.grouped = nn.Conv2d(in_ch, out_ch, 3, padding=1, groups=groups)
        self.mix = nn.Conv2d(out_ch, out_ch, 1)

    def activated_convs(self) -> tuple[nn.Conv2d, ...]:
        """ReLU on the grouped conv's output here; LeakyReLU on the mix's, in the GIDB."""
        return (self.grouped, self.mix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(F.relu(self.grouped(x)))


class GIDB(nn.Module):
    """Grouped information distilling block: three distil/refine steps, a last distil, a 1x1 fuse."""

    def __init__(self, in_ch: int, out_ch: int, deep: int, core: int) -> None:
        super().__init__()
        self.core = core
        self.deep = deep
        self.g0 = Gblock(in_ch, core + deep)
        self.g1 = Gblock(deep, core + deep)
        self.g2 = Gblock(deep, core + deep)
        self.g3 = Gblock(deep, core)
        self.fuse = nn.Conv2d(4 * core + in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d0, r0 = torch.split(lrelu(self.g0(x)), [self.core, self.deep], dim=1)
        d1, r1 = torch.split(lrelu(self.g1(r0)), [self.core, self.deep], dim=1)
        d2, r2 = torch.split(lrelu(self.g2(r1)), [self.core, self.deep], dim=1)
        d3 = lrelu(self.g3(r2))
        return self.fuse(torch.cat([d0, d1, d2, d3, x], dim=1))


class BlockNonLocalAttention(nn.Module):
    """Attention among the 4x4-pixel patches of each 32x32 region (64 tokens a region).

    Regions sit on a grid anchored at the top-left; the 1x1 projection's output is zero-padded at
    the bottom/right to whole regions, and padded positions still count as tokens.
    """

    def __init__(self, ch: int, patch: int = 4, region: int = 32, reduction: int = 4) -> None:
        super().__init__()
        if ch % reduction:
            raise ValueError(f"channels {ch} not divisible by reduction {reduction}")
        self.q = ch // reduction
        self.patch = patch
        self.region = region
        self.qkv = nn.Conv2d(ch, 3 * self.q, 1)
        self.out = nn.Conv2d(self.q, ch, 1)

    def matmul_macs(self, x: torch.Tensor) -> int:
        """Multiply-accumulates of Q K^T and A V for input ``x``, padded regions included."""
        n, _, h, w = x.shape
        regions = n * -(-h // self.region) * -(-w // self.region)
        tokens = (self.region // self.patch) ** 2
        return 2 * regions * tokens * tokens * self.q * self.patch * self.patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        r, p = self.region, self.patch
        t = self.qkv(x)
        pad_h = (r - h % r) % r
        pad_w = (r - w % r) % r
        t = F.pad(t, (0, pad_w, 0, pad_h))
        hp, wp = h + pad_h, w + pad_w
        # Token vectors in pixel_unshuffle order: channel-major, then row, then column.
        t = F.pixel_unshuffle(t, p)  # n, 3q*p*p, hp/p, wp/p
        d = self.q * p * p
        k = r // p  # tokens per region side
        nh, nw = hp // r, wp // r
        t = t.reshape(n, 3, d, nh, k, nw, k).permute(1, 0, 3, 5, 4, 6, 2)
        t = t.reshape(3, n * nh * nw, k * k, d)
        query, key, value = t[0], t[1], t[2]
        attn = torch.softmax(query @ key.transpose(1, 2), dim=-1)  # no scaling, as published
        y = attn @ value  # regions, k*k, d
        y = y.reshape(n, nh, nw, k, k, d).permute(0, 5, 1, 3, 2, 4).reshape(n, d, nh * k, nw * k)
        y = F.pixel_shuffle(y, p)[:, :, :h, :w]
        return x + self.out(y)


class IMDeception(nn.Module):
    """The whole network: head, six GIDBs (two followed by NLA), fuse, x``scale`` tail.

    Input and output are RGB in [0, 1], NCHW float32; the output is not clamped.
    """

    def __init__(self, core: int = 16, nla: bool = True, scale: int = 4) -> None:
        super().__init__()
        if core % 4:
            raise ValueError(f"core {core} must be a multiple of 4 (4-group convolutions)")
        c = core
        self.core, self.nla, self.scale = core, nla, scale
        self.head = nn.Conv2d(3, 4 * c, 3, padding=1)
        self.blocks = nn.ModuleList(
            [GIDB(4 * c, 4 * c, 3 * c, c)]
            + [GIDB(3 * c, 4 * c, 3 * c, c) for _ in range(4)]
            + [GIDB(3 * c, c, 2 * c, c)]
        )
        # NLA1 follows block 2, NLA2 block 4 (indices 1 and 3).
        self.attn = nn.ModuleDict(
            {"1": BlockNonLocalAttention(3 * c), "3": BlockNonLocalAttention(3 * c)} if nla else {}
        )
        self.fuse1x1 = nn.Conv2d(6 * c, 4 * c, 1)
        self.fuse3x3 = nn.Conv2d(4 * c, 4 * c, 3, padding=1)
        self.tail = nn.Conv2d(4 * c, 3 * scale * scale, 3, padding=1)

    @property
    def residual_out(self) -> nn.Conv2d:
        """The conv whose zeroing makes the network head -> tail only (training's bicubic start):
        ``lrelu(fuse3x3(.)) + f0`` is then ``f0``."""
        return self.fuse3x3

    def activated_convs(self) -> tuple[nn.Conv2d, ...]:
        """The fuses, each followed by a LeakyReLU in ``forward``."""
        return (self.fuse1x1, self.fuse3x3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.core
        f0 = self.head(x)
        distilled = []
        rest = f0
        for i, block in enumerate(self.blocks):
            out = block(rest)
            if i == len(self.blocks) - 1:
                distilled.append(out)
                break
            d, rest = torch.split(out, [c, 3 * c], dim=1)
            distilled.append(d)
            if str(i) in self.attn:
                rest = self.attn[str(i)](rest)
        g = lrelu(self.fuse1x1(torch.cat(distilled, dim=1)))
        g = lrelu(self.fuse3x3(g)) + f0
        return F.pixel_shuffle(self.tail(g), self.scale)
