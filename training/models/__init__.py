"""The model family (IMDeception and its NTIRE 2022 peers) and the registry of named variants.

The registry is torch-free so that the ``imdsr`` command line (and the torch-less gateway image)
can list variants; ``IMDeception`` and ``create_model`` import torch when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from training.models.registry import (
    ARCHITECTURES,
    VARIANTS,
    Architecture,
    VariantSpec,
    create_model,
    get_architecture,
    get_variant,
    list_variants,
)

if TYPE_CHECKING:
    from training.models.imdeception import IMDeception

__all__ = ["ARCHITECTURES", "VARIANTS", "Architecture", "IMDeception", "VariantSpec", "create_model",
           "get_architecture", "get_variant", "list_variants"]


def __getattr__(name: str) -> Any:
    if name == "IMDeception":
        from training.models.imdeception import IMDeception

        return IMDeception
    raise AttributeError(name)
