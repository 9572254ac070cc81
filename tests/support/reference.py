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
    """Tensor i of shape S holds a*sin(0.1*j + i), float64 then float32 (IMDECEPTION.md)."""
    out = {}
    for i, (name, shape) in enumerate(published_layout()):
        j = np.arange(math.prod(shape), dtype=np.float64)
        a = 1.0 / math.sqrt(math.prod(shape[1:])) if len(shape) > 1 else 0.1
        out[name] = (a * np.sin(0.1 * j + i)).astype(np.float32).reshape(shape)
    return out


def golden() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    data = np.load(reference_dir() / "imdeception_golden_synthetic.npz")
    return {k[2:]: (data[k], data["y_" + k[2:]]) for k in data.files if k.startswith("x_")}
