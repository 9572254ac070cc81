"""Mapping between the published NTIRE 2022 checkpoint (team19_imdeception.pth) and our modules.

The checkpoint stores each grouped 3x3 conv as four separate convs (``conv2d_block.0..3``);
ours are real ``groups=4`` convs, whose weight and bias are those four concatenated on dim 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from training.models.imdeception import IMDeception

GROUPS = 4
# The variant whose structure the published checkpoint has (core 16 + NLA, 316,552 parameters).
PUBLISHED_VARIANT = "c16nla"
GBLOCK_NAMES = ("conv0", "conv1", "conv2", "conv3_shal")


class CheckpointMismatch(ValueError):
    """The checkpoint does not have the published layout."""


@dataclass(frozen=True)
class Link:
    """One parameter of ours and the checkpoint tensors (in order) concatenated to make it."""

    ours: str
    theirs: tuple[str, ...]


def _links(model: IMDeception) -> list[Link]:
    links: list[Link] = []

    def conv(ours: str, theirs: str) -> None:
        links.append(Link(f"{ours}.weight", (f"{theirs}.weight",)))
        links.append(Link(f"{ours}.bias", (f"{theirs}.bias",)))

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
            links.append(Link(f"blocks.{i}.g{j}.grouped.weight", tuple(f"{p}.weight" for p in parts)))
            links.append(Link(f"blocks.{i}.g{j}.grouped.bias", tuple(f"{p}.bias" for p in parts)))
            conv(f"blocks.{i}.g{j}.mix", f"{pre}.{gname}.conv1")
        conv(f"blocks.{i}.fuse", f"{pre}.conv_fuse0")
    conv("fuse1x1", "conv_fuse0")
    conv("fuse3x3", "conv_fuse1")
    conv("tail", "conv_out")
    return links


def checkpoint_layout(model: IMDeception) -> list[tuple[str, tuple[int, ...]]]:
    """The published checkpoint's tensor names and shapes, in its own order, for ``model``."""
    ours = dict(model.state_dict())
    layout: dict[str, tuple[int, ...]] = {}
    for link in _links(model):
        shape = tuple(ours[link.ours].shape)
        part = (shape[0] // len(link.theirs),) + shape[1:]
        for name in link.theirs:
            layout[name] = part
    # The checkpoint lists each group's weight then its bias; rebuild that interleaving.
    order: list[str] = []
    for name in layout:
        if ".conv2d_block." in name:
            stem = name.rsplit(".", 1)[0]
            for suffix in ("weight", "bias"):
                full = f"{stem}.{suffix}"
                if full not in order:
                    order.append(full)
        else:
            order.append(name)
    return [(name, layout[name]) for name in order]


def _strip_wrappers(ckpt: Mapping[str, object]) -> Mapping[str, torch.Tensor]:
    for key in ("params_ema", "params", "state_dict", "model"):
        inner = ckpt.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            ckpt = inner
            break
    if ckpt and all(k.startswith("module.") for k in ckpt):  # saved from DataParallel
        ckpt = {k[len("module."):]: v for k, v in ckpt.items()}
    return ckpt  # type: ignore[return-value]


def import_checkpoint(ckpt: Mapping[str, object], model: IMDeception) -> dict[str, torch.Tensor]:
    """Our state dict from a published-layout checkpoint; refuses anything that does not match."""
    tensors = _strip_wrappers(ckpt)
    layout = dict(checkpoint_layout(model))
    missing = [n for n in layout if n not in tensors]
    extra = [n for n in tensors if n not in layout]
    wrong = [
        f"{n}: expected {list(layout[n])}, got {list(tensors[n].shape)}"
        for n in layout
        if n in tensors and tuple(tensors[n].shape) != layout[n]
    ]
    problems = []
    if missing:
        problems.append("missing tensors: " + ", ".join(missing))
    if extra:
        problems.append("unexpected tensors: " + ", ".join(extra))
    if wrong:
        problems.append("wrong shapes: " + "; ".join(wrong))
    if problems:
        raise CheckpointMismatch("checkpoint does not match the NTIRE 2022 IMDeception layout: "
                                 + " | ".join(problems))
    return {
        link.ours: torch.cat([tensors[n].float() for n in link.theirs], dim=0).contiguous()
        for link in _links(model)
    }


def export_checkpoint(model: IMDeception) -> dict[str, torch.Tensor]:
    """The inverse mapping: our parameters in the published layout (used by tests and tools)."""
    ours = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for link in _links(model):
        for name, part in zip(link.theirs, torch.chunk(ours[link.ours], len(link.theirs), dim=0),
                              strict=True):
            out[name] = part.clone()
    return {name: out[name] for name, _ in checkpoint_layout(model)}
