"""Import of the NTIRE 2022 ESR repository's published checkpoints, one architecture at a time.

IMDeception (team19_imdeception.pth) is mapped here: the checkpoint stores each grouped 3x3 conv
as four separate convs (``conv2d_block.0..3``); ours are real ``groups=4`` convs, whose weight and
bias are those four concatenated on dim 0. Its peers (IMDN, RLFN, EFDN) are renamed one for one
by ``training.weights.ntire22_peers``. Every import refuses a checkpoint whose tensors are not
exactly the published layout, naming each missing, unexpected or wrong-shaped tensor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from training.models.imdeception import IMDeception
from training.models.registry import create_model, get_variant, list_variants
from training.weights import ntire22_peers

GROUPS = 4
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


def _problems(tensors: Mapping[str, torch.Tensor], layout: Mapping[str, tuple[int, ...]]) -> list[str]:
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
    return problems


def import_checkpoint(ckpt: Mapping[str, object], model: IMDeception) -> dict[str, torch.Tensor]:
    """Our state dict from a published-layout checkpoint; refuses anything that does not match."""
    tensors = _strip_wrappers(ckpt)
    problems = _problems(tensors, dict(checkpoint_layout(model)))
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


def published_layout(model: nn.Module, arch: str) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the published checkpoint of ``model`` (an ``arch`` network)."""
    if arch == "imdeception":
        return dict(checkpoint_layout(model))
    ours = model.state_dict()
    return {theirs: tuple(ours[name].shape) for name, theirs in ntire22_peers.names(model, arch).items()}


def to_published(model: nn.Module, arch: str) -> dict[str, torch.Tensor]:
    """``model``'s parameters as its published checkpoint holds them (tests and tools)."""
    if arch == "imdeception":
        return export_checkpoint(model)
    return ntire22_peers.to_published(model, arch)


def import_published(ckpt: Mapping[str, object], arch: str) -> tuple[str, dict[str, torch.Tensor]]:
    """The registry variant of ``arch`` whose layout ``ckpt`` has, and our state dict for it.

    An architecture with several published structures (IMDN: 8 blocks, 7 blocks) is matched by
    layout; a checkpoint that matches none is refused against the closest one.
    """
    tensors = _strip_wrappers(ckpt)
    candidates = [v for v in list_variants(arch) if get_variant(v).ntire22_checkpoint]
    if not candidates:
        raise CheckpointMismatch(f"no published NTIRE 2022 checkpoint of {arch!r} is known")
    tried: list[tuple[int, str, list[str]]] = []
    for variant in candidates:
        model = create_model(variant)
        problems = _problems(tensors, published_layout(model, arch))
        if not problems:
            if arch == "imdeception":
                return variant, import_checkpoint(tensors, model)
            return variant, ntire22_peers.from_published(dict(tensors), model, arch)
        tried.append((sum(p.count(",") + 1 for p in problems), variant, problems))
    _, variant, problems = min(tried)
    raise CheckpointMismatch(f"checkpoint does not match the NTIRE 2022 {arch} layout ({variant}, "
                             f"{get_variant(variant).ntire22_checkpoint}): " + " | ".join(problems))


def import_file(src: Path, arch: str, dst: Path) -> tuple[str, int]:
    """Read the published checkpoint ``src`` of ``arch`` and write it to ``dst`` in the project's
    weights format, with its provenance; (variant, parameters). ``CheckpointMismatch`` names what
    does not match; an unreadable file is a ``CheckpointMismatch`` too."""
    from imdsr.contract import SCALE
    from imdsr.digest import file_sha256
    from training.weights.store import WeightsMeta, save_weights

    try:
        ckpt = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise CheckpointMismatch(f"{src} is not a readable PyTorch checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict):
        raise CheckpointMismatch(f"{src} holds a {type(ckpt).__name__}, not a state_dict")
    variant, state = import_published(ckpt, arch)
    spec = get_variant(variant)
    meta = WeightsMeta(variant, SCALE, f"ntire22:{src.name}:sha256={file_sha256(src)}",
                       {"origin": f"NTIRE 2022 Efficient SR challenge: {spec.description} (published)"})
    save_weights(dst, state, meta)
    return variant, sum(v.numel() for v in state.values())
