"""The project's weights format: one safetensors file whose metadata names what it holds.

Metadata keys (all strings, as safetensors requires): ``format``, ``variant``, ``scale``,
``source`` and ``training`` (a JSON summary: data, steps, wall time, metrics).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from imdsr.contract import SCALE

FORMAT = "imdsr-weights/1"
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "weights_shipped"


class WeightsError(ValueError):
    """A weights file that does not match what was asked for."""


class WeightsSpecError(WeightsError):
    """An ``ARCH=PATH`` / ``VARIANT=PATH`` option that names no known model."""


@dataclass
class WeightsMeta:
    variant: str
    scale: int
    source: str
    training: dict[str, Any] = field(default_factory=dict)

    def to_strings(self) -> dict[str, str]:
        return {
            "format": FORMAT,
            "variant": self.variant,
            "scale": str(self.scale),
            "source": self.source,
            "training": json.dumps(self.training, sort_keys=True),
        }

    @classmethod
    def from_strings(cls, md: dict[str, str] | None, path: Path) -> WeightsMeta:
        md = md or {}
        if md.get("format") != FORMAT:
            raise WeightsError(f"{path}: not an imdsr weights file (metadata format={md.get('format')!r})")
        training = json.loads(md.get("training", "{}"))
        return cls(md["variant"], int(md["scale"]), md.get("source", ""), training)


def save_weights(path: str | Path, state: dict[str, torch.Tensor], meta: WeightsMeta) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()},
              str(path), metadata=meta.to_strings())
    return path


def read_meta(path: str | Path) -> WeightsMeta:
    path = Path(path)
    with safe_open(str(path), framework="pt") as f:
        return WeightsMeta.from_strings(f.metadata(), path)


def shipped_weights(variant: str) -> Path:
    """The weights committed with the project for ``variant`` (raises if none ship)."""
    from training.models.registry import triton_name

    # Named as Triton serves it: imdeception_c16nla_x4, rlfn_x4, ...
    path = SHIPPED_DIR / f"{triton_name(variant)}_x4.safetensors"
    if not path.exists():
        shipped = sorted(p.name for p in SHIPPED_DIR.glob("*.safetensors"))
        raise WeightsError(f"no shipped weights for {variant!r} (shipped: {shipped}); pass --weights")
    return path


def shipped_variants() -> list[str]:
    """Variants whose weights ship with the project, in registry order."""
    from training.models.registry import list_variants

    found = []
    for v in list_variants():
        try:
            shipped_weights(v)
        except WeightsError:
            continue
        found.append(v)
    return found


def load_model(variant: str, weights: str | Path | None = None, scale: int = SCALE
               ) -> tuple[nn.Module, WeightsMeta]:
    """A ``variant`` model in eval mode with ``weights`` (default: the shipped ones) loaded."""
    from training.models.registry import create_model

    model = create_model(variant, scale=scale)
    meta = load_into(model, weights or shipped_weights(variant), variant, scale)
    return model.eval(), meta


def load_into(model: nn.Module, path: str | Path, variant: str, scale: int) -> WeightsMeta:
    """Load ``path`` into ``model`` after checking the file is for ``variant`` at ``scale``."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights file not found: {path}")
    meta = read_meta(path)
    if meta.variant != variant:
        raise WeightsError(f"{path} holds variant {meta.variant!r}, not {variant!r}")
    if meta.scale != scale:
        raise WeightsError(f"{path} is for x{meta.scale}, not x{scale}")
    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise WeightsError(f"{path}: missing {missing}, unexpected {unexpected}")
    return meta


def parse_weights_spec(item: str) -> tuple[str, Path]:
    """``ARCH=PATH`` or ``VARIANT=PATH`` -> (variant, path), checked against the file's metadata
    (``imdsr export repo --weights``, ``imdsr bench zoo``, ``imdsr eval --weights``)."""
    from training.models.registry import ARCHITECTURES, VARIANTS

    key, sep, raw = item.partition("=")
    if not sep or not raw:
        raise WeightsSpecError(f"wants ARCH=PATH or VARIANT=PATH, got {item!r}")
    if key not in ARCHITECTURES and key not in VARIANTS:
        raise WeightsSpecError(f"{item!r}: {key!r} is neither an architecture "
                               f"({', '.join(ARCHITECTURES)}) nor a variant ({', '.join(VARIANTS)})")
    path = Path(raw)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        variant = read_meta(path).variant
    except Exception as exc:  # noqa: BLE001 - an unreadable file, one message
        raise WeightsError(f"{path} is not an imdsr weights file: {exc}") from exc
    if variant not in VARIANTS or (variant != key and VARIANTS[variant].arch != key):
        raise WeightsError(f"{path} holds variant {variant!r}, not {key!r}")
    return variant, path
