"""Mapping between the NTIRE 2022 ESR repository's IMDeception checkpoint (team19_imdeception.pth)
and ours.

The checkpoint stores each grouped 3x3 conv as four separate convs (``conv2d_block.0..3``); ours
are real ``groups=4`` convs, whose weight and bias are those four concatenated on dim 0. Every
other tensor is renamed one for one.
"""

from __future__ import annotations

from torch import nn

from training.weights.links import Link

GROUPS = 4
GBLOCK_NAMES = ("conv0", "conv1", "conv2", "conv3_shal")


def links(model: nn.Module) -> list[Link]:
    """Each parameter of ``model`` (an ``IMDeception``) and the published tensors that make it."""
    out: list[Link] = []

    def conv(ours: str, theirs: str) -> None:
        out.append(Link(f"{ours}.weight", (f"{theirs}.weight",)))
        out.append(Link(f"{ours}.bias", (f"{theirs}.bias",)))

    conv("head", "feat_conv0")
    for key, theirs in (("1", "self_attention1"), ("3", "self_attention2")):
        if key in model.attn:
            conv(f"attn.{key}.qkv", f"{theirs}.conv_phi_theta_g")
            conv(f"attn.{key}.out", f"{theirs}.conv_out")
    n = len(model.blocks)
    for i in range(n):
        pre = "block6_shal" if i == n - 1 else f"block{i + 1}"
        for j, gname in enumerate(GBLOCK_NAMES):
            parts = tuple(f"{pre}.{gname}.conv0.conv2d_block.{g}" for g in range(GROUPS))
            out.append(Link(f"blocks.{i}.g{j}.grouped.weight", tuple(f"{p}.weight" for p in parts)))
            out.append(Link(f"blocks.{i}.g{j}.grouped.bias", tuple(f"{p}.bias" for p in parts)))
            conv(f"blocks.{i}.g{j}.mix", f"{pre}.{gname}.conv1")
        conv(f"blocks.{i}.fuse", f"{pre}.conv_fuse0")
    conv("fuse1x1", "conv_fuse0")
    conv("fuse3x3", "conv_fuse1")
    conv("tail", "conv_out")
    return out
