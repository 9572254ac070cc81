"""The one way configuration files are read: strict pydantic models loaded from TOML.

A typo in a key is an error naming it, a value of the wrong type is an error naming the field, and
a loaded config is immutable. ``export/serving.py`` (serving knobs) and
``training/train/config.py`` (training recipes) build on this base; the gateway's environment
settings use pydantic-settings with the same field types.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

M = TypeVar("M", bound="StrictModel")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def load_toml(path: str | Path, model: type[M]) -> M:
    """Read and validate ``path`` as ``model``; pydantic's ValidationError names what is wrong."""
    with Path(path).open("rb") as f:
        return model.model_validate(tomllib.load(f))
