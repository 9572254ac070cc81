"""The IMDeception model family and its registry of named variants."""

from training.models.imdeception import IMDeception
from training.models.registry import VARIANTS, VariantSpec, create_model, get_variant, list_variants

__all__ = ["IMDeception", "VARIANTS", "VariantSpec", "create_model", "get_variant", "list_variants"]
