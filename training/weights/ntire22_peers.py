"""Mapping between the NTIRE 2022 ESR repository's checkpoints of IMDeception's peers and ours.

IMDN (the challenge baseline and xilinxSR's 7-block entry), RLFN (ByteESR) and EFDN (NEESR)
keep their published tensors one for one; only the names differ (ours are the project's own).
RLFN and EFDN were published for inputs and outputs in [0, 255]; ours take and give [0, 1]
like every model here, so the import folds the range into the first conv's weights and the last
conv's weights and bias (exact: a conv is linear in its weights, and zero padding stays zero).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

# Published input/output range per architecture.
INPUT_RANGE = {"imdn": 1.0, "rlfn": 255.0, "efdn": 255.0}


def _imdn(model: nn.Module) -> Iterator[tuple[str, str]]:
    yield "head", "model.0"
    n = len(model.blocks)
    for i in range(n):
        for j in range(3):
            yield f"blocks.{i}.steps.{j}", f"model.1.sub.{i}.conv{j + 1}.0"
        yield f"blocks.{i}.last", f"model.1.sub.{i}.conv4"
        yield f"blocks.{i}.fuse", f"model.1.sub.{i}.conv1x1"
    yield "body_out", f"model.1.sub.{n}"
    yield "tail", "model.2"


def _rfdn_layout(model: nn.Module, block: list[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """RLFN's and EFDN's checkpoints share RFDN's layout around their blocks (``fea_conv``,
    ``B1..Bn``, ``LR_conv``, ``upsampler.0``); ``block`` maps one block's convs, ours -> theirs."""
    yield "head", "fea_conv"
    for i in range(len(model.blocks)):
        for ours, theirs in block:
            yield f"blocks.{i}.{ours}", f"B{i + 1}.{theirs}"
    yield "body_out", "LR_conv"
    yield "tail", "upsampler.0"


_RLFN_BLOCK = [
    *((f"convs.{j}", f"c{j + 1}_r") for j in range(3)),
    ("fuse", "c5"),
    *((f"attention.{a}", f"esa.{b}") for a, b in (
        ("reduce", "conv1"), ("skip", "conv_f"), ("down", "conv2"), ("coarse", "conv3"),
        ("expand", "conv4"))),
]
_EFDN_BLOCK = [
    *((name, f"c{j + 1}_{kind}") for j in range(3)
      for name, kind in ((f"distil.{j}", "d"), (f"refine.{j}", "r.conv3x3"))),
    ("last", "c4.conv3x3"),
    ("fuse", "c5"),
    *((f"attention.{a}", f"esa.{b}") for a, b in (
        ("reduce", "conv1"), ("skip", "conv_f"), ("branches.0", "conv_2"), ("branches.1", "conv_3"),
        ("merge", "conv_23"), ("expand", "conv4"))),
]


def _rlfn(model: nn.Module) -> Iterator[tuple[str, str]]:
    return _rfdn_layout(model, _RLFN_BLOCK)


def _efdn(model: nn.Module) -> Iterator[tuple[str, str]]:
    return _rfdn_layout(model, _EFDN_BLOCK)


_CONVS = {"imdn": _imdn, "rlfn": _rlfn, "efdn": _efdn}


def names(model: nn.Module, arch: str) -> dict[str, str]:
    """Our parameter name -> the published one, for every parameter of ``model``."""
    return {f"{ours}.{p}": f"{theirs}.{p}" for ours, theirs in _CONVS[arch](model)
            for p in ("weight", "bias")}


def _range_gains(arch: str) -> dict[str, float]:
    r = INPUT_RANGE[arch]
    return {} if r == 1.0 else {"head.weight": r, "tail.weight": 1.0 / r, "tail.bias": 1.0 / r}


def from_published(tensors: dict[str, torch.Tensor], model: nn.Module, arch: str
                   ) -> dict[str, torch.Tensor]:
    """Our state dict from published tensors already checked against ``names``."""
    gains = _range_gains(arch)
    return {ours: (tensors[theirs].float() * gains.get(ours, 1.0)).contiguous()
            for ours, theirs in names(model, arch).items()}


def to_published(model: nn.Module, arch: str) -> dict[str, torch.Tensor]:
    """The inverse: ``model``'s parameters as the published checkpoint holds them."""
    gains = _range_gains(arch)
    ours = model.state_dict()
    return {theirs: ours[name] / gains.get(name, 1.0) for name, theirs in names(model, arch).items()}
