"""Mapping between SRneXt's published checkpoint (FRL Team 05, NTIRE 2023 ESR: repository
``Zhang9317112/NTIRE2023_ESR``, ``model_zoo/team05_exnet.pth``, its tensors under ``params``) and
ours. Tensors map one for one; only the names differ. The DF2K mean shift is no tensor there
(fixed convs built at run time) nor here (a constant), and the published [0, 255] range is folded
by the importer (registry entry ``published_range``; training/weights/ntire22.py).
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn

from training.weights.links import Link, renamed

# One layer's modules, ours -> theirs ("sg": the self gate, "mlp": the shift-conv MLP), in the
# checkpoint's order (each branch's tensors before its norm's).
_LAYER = (("gate.strip_h", "sg.h_mixer"), ("gate.strip_w", "sg.w_mixer"), ("gate.mix", "sg.c_mixer"),
          ("gate.proj", "sg.proj"), ("norm1", "norm1"), ("fc1", "mlp.fc1"), ("fc2", "mlp.fc2"),
          ("norm2", "norm2"))


def _modules(model: nn.Module) -> Iterator[tuple[str, str]]:
    yield "head", "head.0"
    for i in range(len(model.layers)):
        for ours, theirs in _LAYER:
            yield f"layers.{i}.{ours}", f"body.{i}.{theirs}"
    yield "tail", "tail.0"


def links(model: nn.Module) -> list[Link]:
    return renamed(_modules(model))
