"""Mapping between the NTIRE 2022 ESR repository's checkpoints of IMDeception's peers and ours.

IMDN (the challenge baseline and xilinxSR's 7-block entry), RLFN (ByteESR) and EFDN (NEESR)
keep their published tensors one for one; only the names differ (ours are the project's own).
Their published input/output range is their registry entry's (``published_range``): the importer
folds it (training/weights/ntire22.py).
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn

from training.weights.links import Link, renamed


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


def imdn_links(model: nn.Module) -> list[Link]:
    return renamed(_imdn(model))


def rlfn_links(model: nn.Module) -> list[Link]:
    return renamed(_rfdn_layout(model, _RLFN_BLOCK))


def efdn_links(model: nn.Module) -> list[Link]:
    return renamed(_rfdn_layout(model, _EFDN_BLOCK))
