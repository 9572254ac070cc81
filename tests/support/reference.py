"""IMDECEPTION.md's golden data (kept in tests/data) and its synthetic-weights rule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from tests.support import DATA
from training.models.registry import VARIANTS


def reference_dir() -> Path:
    """The golden data, copied from the project's reference material into tests/data."""
    return DATA


def published_layout() -> list[tuple[str, tuple[int, ...]]]:
    data = json.loads((reference_dir() / "ntire22_imdeception_state_dict.json").read_text())
    return [(t["name"], tuple(t["shape"])) for t in data["tensors"]]


def synthetic_checkpoint() -> dict[str, np.ndarray]:
    """The published IMDeception layout filled by IMDECEPTION.md's synthetic-weights rule."""
    return sin_weights(published_layout())


def sin_weights(layout: list[tuple[str, tuple[int, ...]]]) -> dict[str, np.ndarray]:
    """Tensor i of shape S holds a*sin(0.1*j + i), float64 then float32 (IMDECEPTION.md)."""
    out = {}
    for i, (name, shape) in enumerate(layout):
        j = np.arange(math.prod(shape), dtype=np.float64)
        a = 1.0 / math.sqrt(math.prod(shape[1:])) if len(shape) > 1 else 0.1
        out[name] = (a * np.sin(0.1 * j + i)).astype(np.float32).reshape(shape)
    return out


def _pairs(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    data = np.load(path)
    return {k[2:]: (data[k], data["y_" + k[2:]]) for k in data.files if k.startswith("x_")}


def golden() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return _pairs(reference_dir() / "imdeception_golden_synthetic.npz")


# The peers' published checkpoints (NTIRE 2022 ESR repository, model_zoo/), each with golden
# fixtures named after it (tests/data/generate_ntire22_peer_goldens.py); IMDeception's goldens are
# IMDECEPTION.md's, above. From the registry, so a new entry with a checkpoint needs its fixtures.
PEER_CHECKPOINTS = {v: spec.checkpoint for v, spec in VARIANTS.items()
                    if spec.checkpoint and spec.arch != "imdeception"}


# Fixture names start with the challenge that published the checkpoint: ntire22_..., ntire23_...
CHECKPOINT_PREFIX = {spec.checkpoint: "ntire" + (spec.challenge.report[-2:] if spec.challenge else "22")
                     for spec in VARIANTS.values() if spec.checkpoint}


def _prefix(file: str) -> str:
    return CHECKPOINT_PREFIX[file]


def _stem(file: str) -> str:
    return file.rsplit(".", 1)[0]


def peer_layout(file: str) -> list[tuple[str, tuple[int, ...]]]:
    data = json.loads((reference_dir() / f"{_prefix(file)}_{_stem(file)}_layout.json").read_text())
    return [(t["name"], tuple(t["shape"])) for t in data["tensors"]]


def peer_golden(file: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return _pairs(reference_dir() / f"{_prefix(file)}_{_stem(file)}_golden.npz")
