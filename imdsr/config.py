"""The one way configuration files are read: strict pydantic models loaded from TOML.

A typo in a key is an error naming it, a value of the wrong type is an error naming the field, and
a loaded config is immutable. ``export/serving.py`` (serving knobs) and
``training/train/config.py`` (training recipes) build on this base and read their files with
``load_toml``; the environment is read through the views of ``imdsr/settings.py``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

M = TypeVar("M", bound="StrictModel")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def load_toml(path: str | Path, model: type[M], overrides: Mapping[str, Any] | None = None) -> M:
    """Read and validate ``path`` as ``model``; pydantic's ValidationError names what is wrong.

    Each value of ``overrides`` that is not None replaces the file's top-level key of its name
    (a command line's options over its config file: None is an option not given); an override
    the model has no field for is refused like a key of the file."""
    with Path(path).open("rb") as f:
        values = tomllib.load(f)
    values.update({key: value for key, value in (overrides or {}).items() if value is not None})
    return model.model_validate(values)
