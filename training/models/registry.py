"""Registry of named IMDeception variants, in the style of timm/torchvision: name -> spec -> module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.models.imdeception import IMDeception


@dataclass(frozen=True)
class VariantSpec:
    name: str
    core: int
    nla: bool
    description: str
    # What the paper's Table 2 reports for this core, where it reports it (params only; see
    # `imdsr model summary` for the counts of the structure built here).
    paper_params: int | None = None


VARIANTS: dict[str, VariantSpec] = {
    spec.name: spec
    for spec in (
        VariantSpec("c16nla", 16, True, "core 16 + two NLA blocks: the NTIRE 2022 entry", 316_552),
        VariantSpec("c12", 12, False, "core 12, no attention", 198_000),
        VariantSpec("c8", 8, False, "core 8, no attention", 113_000),
        VariantSpec("c4nla", 4, True, "core 4 + two NLA blocks", 57_000),
        VariantSpec("c4", 4, False, "core 4, no attention: the smallest"),
    )
}


def list_variants() -> list[str]:
    return list(VARIANTS)


def get_variant(name: str) -> VariantSpec:
    try:
        return VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}") from None


def create_model(name: str, scale: int = 4) -> IMDeception:
    from training.models.imdeception import IMDeception  # torch, only when a model is built

    spec = get_variant(name)
    return IMDeception(core=spec.core, nla=spec.nla, scale=scale)
