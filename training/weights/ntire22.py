"""Import of the published NTIRE efficient-SR checkpoints (the NTIRE 2022 ESR repository's, and
SRneXt's from NTIRE 2023), for any architecture whose registry entry names its links
(``Architecture.checkpoint_links``).

A link (``training.weights.links``) says which published tensors make one of our parameters: one,
renamed (IMDN, RLFN, EFDN: ``training.weights.ntire22_peers``; SRneXt:
``training.weights.ntire23_srnext``), or several concatenated on dim 0 (IMDeception's grouped
convs, stored as one conv per group: ``training.weights.ntire22_imdeception``). The entry's
``published_range`` is folded into the first and last convs. Every import refuses a checkpoint
whose tensors are not exactly the published layout, naming each missing, unexpected or
wrong-shaped tensor.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from training.models.registry import create_model, get_architecture, get_variant, list_variants, resolve
from training.weights.links import Link


class CheckpointMismatch(ValueError):
    """The checkpoint does not have the published layout."""


def _links(model: nn.Module, arch: str) -> list[Link]:
    path = get_architecture(arch).checkpoint_links
    if path is None:
        raise CheckpointMismatch(f"no published checkpoint of {arch!r} is known")
    return list(resolve(path)(model))


def _gains(arch: str) -> dict[str, float]:
    """Ours = published x gain: a [0, 255] network takes and gives [0, 1] once its first conv's
    weights are scaled up and its last conv's weights and bias down (a conv is linear in its
    input and its weights, and zero padding stays zero)."""
    r = get_architecture(arch).published_range
    return {} if r == 1.0 else {"head.weight": r, "tail.weight": 1.0 / r, "tail.bias": 1.0 / r}


def _checkpoint_order(names: list[str]) -> list[str]:
    """A state dict lists each module's tensors together (weight, then bias): group the names by
    module, modules in order of first appearance (IMDeception's four group weights come before
    their biases in our links, but each group's weight and bias sit together in the file)."""
    by_module: dict[str, list[str]] = {}
    for name in names:
        by_module.setdefault(name.rpartition(".")[0] or name, []).append(name)
    return [name for group in by_module.values() for name in group]


def published_layout(model: nn.Module, arch: str) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the published checkpoint of ``model`` (an ``arch`` network), in the
    checkpoint's own order."""
    ours = model.state_dict()
    layout: dict[str, tuple[int, ...]] = {}
    for link in _links(model, arch):
        shape = tuple(ours[link.ours].shape)
        part = (shape[0] // len(link.theirs),) + shape[1:]
        for name in link.theirs:
            layout[name] = part
    return {name: layout[name] for name in _checkpoint_order(list(layout))}


def to_published(model: nn.Module, arch: str) -> dict[str, torch.Tensor]:
    """``model``'s parameters as its published checkpoint holds them (tests and tools)."""
    ours, gains = model.state_dict(), _gains(arch)
    out: dict[str, torch.Tensor] = {}
    for link in _links(model, arch):
        whole = ours[link.ours] / gains.get(link.ours, 1.0)
        for name, part in zip(link.theirs, torch.chunk(whole, len(link.theirs), dim=0), strict=True):
            out[name] = part.clone()
    return {name: out[name] for name in _checkpoint_order(list(out))}


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


def from_published(ckpt: Mapping[str, object], model: nn.Module, arch: str) -> dict[str, torch.Tensor]:
    """Our state dict for ``model`` from a published-layout checkpoint; refuses anything that
    does not match."""
    tensors = _strip_wrappers(ckpt)
    problems = _problems(tensors, published_layout(model, arch))
    if problems:
        raise CheckpointMismatch(f"checkpoint does not match the NTIRE 2022 {arch} layout: "
                                 + " | ".join(problems))
    gains = _gains(arch)
    return {
        link.ours: (torch.cat([tensors[n].float() for n in link.theirs], dim=0)
                    * gains.get(link.ours, 1.0)).contiguous()
        for link in _links(model, arch)
    }


def import_published(ckpt: Mapping[str, object], arch: str) -> tuple[str, dict[str, torch.Tensor]]:
    """The registry variant of ``arch`` whose layout ``ckpt`` has, and our state dict for it.

    An architecture with several published structures (IMDN: 8 blocks, 7 blocks) is matched by
    layout; a checkpoint that matches none is refused against the closest one.
    """
    tensors = _strip_wrappers(ckpt)
    candidates = [v for v in list_variants(arch) if get_variant(v).checkpoint]
    if not candidates:
        raise CheckpointMismatch(f"no published checkpoint of {arch!r} is known")
    tried: list[tuple[int, str, list[str]]] = []
    for variant in candidates:
        model = create_model(variant)
        problems = _problems(tensors, published_layout(model, arch))
        if not problems:
            return variant, from_published(tensors, model, arch)
        tried.append((sum(p.count(",") + 1 for p in problems), variant, problems))
    _, variant, problems = min(tried)
    raise CheckpointMismatch(f"checkpoint does not match the published {arch} layout ({variant}, "
                             f"{get_variant(variant).checkpoint}): " + " | ".join(problems))


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
    report = spec.challenge.report if spec.challenge else "NTIRE 2022"  # "NTIRE 2023" -> "ntire23"
    meta = WeightsMeta(variant, SCALE, f"ntire{report[-2:]}:{src.name}:sha256={file_sha256(src)}",
                       {"origin": f"{report} Efficient SR challenge: {spec.description} (published)"})
    save_weights(dst, state, meta)
    return variant, sum(v.numel() for v in state.values())
