"""A small protobuf text-format writer for Triton's ``config.pbtxt``.

Messages are plain dicts (insertion order is output order); lists are repeated fields; enum values
are wrapped in ``Enum`` so they print bare; protobuf maps are lists of ``{"key", "value"}`` dicts.
The tests parse every rendered config with Triton's own ``ModelConfig`` schema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Enum:
    name: str


def _scalar(value: Any) -> str:
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string literal is a valid text-format string literal
    raise TypeError(f"cannot render {type(value).__name__} {value!r} in pbtxt")


def _field(name: str, value: Any, indent: int) -> list[str]:
    pad = "  " * indent
    if isinstance(value, Mapping):
        return [f"{pad}{name} {{", *render_lines(value, indent + 1), f"{pad}}}"]
    if isinstance(value, Sequence) and not isinstance(value, str):
        if all(isinstance(v, Mapping) for v in value):
            return [line for v in value for line in _field(name, v, indent)]
        return [f"{pad}{name}: [{', '.join(_scalar(v) for v in value)}]"]
    return [f"{pad}{name}: {_scalar(value)}"]


def render_lines(message: Mapping[str, Any], indent: int = 0) -> list[str]:
    lines: list[str] = []
    for name, value in message.items():
        if value is None:
            continue
        lines += _field(name, value, indent)
    return lines


def render(message: Mapping[str, Any], header: str = "") -> str:
    """Render ``message`` as text format; ``header`` lines become ``#`` comments on top."""
    comments = [f"# {line}".rstrip() for line in header.splitlines()]
    return "\n".join([*comments, *render_lines(message)]) + "\n"
