"""What a published checkpoint's import is made of: links from our parameters to its tensors.

A link says which published tensors make one of our parameters: one, renamed (IMDN, RLFN, EFDN,
SRneXt), or several concatenated on dim 0 (IMDeception's grouped convs, stored as one conv per
group). Each architecture's mapping module gives a model's links; ``training.weights.ntire22``
checks a checkpoint against them and converts it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Link:
    """One parameter of ours and the checkpoint tensors (in order) concatenated to make it."""

    ours: str
    theirs: tuple[str, ...]


def renamed(modules: Iterable[tuple[str, str]]) -> list[Link]:
    """One link per weight and bias of each (our module, their module) pair."""
    return [Link(f"{ours}.{p}", (f"{theirs}.{p}",)) for ours, theirs in modules for p in ("weight", "bias")]
