"""IMDECEPTION.md's golden data (kept in tests/data) and its synthetic-weights rule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from tests.support import DATA


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


# The peers' published checkpoints (NTIRE 2022 ESR repository, model_zoo/) with golden fixtures.
PEER_CHECKPOINTS = {"imdn": "imdn_baseline.pth", "imdn_nb7": "team26_imdn_nb7.pth",
                    "rlfn": "team04_rlfn.pth", "efdn": "team05_efdn.pt"}


def _stem(file: str) -> str:
    return file.rsplit(".", 1)[0]


def peer_layout(file: str) -> list[tuple[str, tuple[int, ...]]]:
    data = json.loads((reference_dir() / f"ntire22_{_stem(file)}_layout.json").read_text())
    return [(t["name"], tuple(t["shape"])) for t in data["tensors"]]


def peer_golden(file: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return _pairs(reference_dir() / f"ntire22_{_stem(file)}_golden.npz")
