"""What the gateway knows of a served model, read from its config.pbtxt through Triton.

Export writes these parameters (export/model_config.py); nothing here imports the model code, so
the gateway learns a new architecture's tiling from Triton alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from imdsr.contract import (
    ALIGN_PARAM,
    ARCH_PARAM,
    BUCKET_PARAM,
    CONTEXT_PARAM,
    DESCRIPTION_NAME,
    FLOPS_PARAM,
    MAX_WINDOW_PARAM,
    MIN_WINDOW_PARAM,
    PARAMS_PARAM,
    PRECISION_PARAM,
    SECONDS_PER_MPX_PARAM,
    USE_WHEN_PARAM,
    WEIGHTS_PARAM,
    WHOLE_PARAM,
)
from imdsr.imaging.tiling import TilingRule
from imdsr.imaging.windows import WindowLimits

if TYPE_CHECKING:
    from service.settings import Settings


def _int(params: dict, key: str) -> int | None:
    value = params.get(key, {}).get("string_value", "")
    return int(value) if value.isdigit() else None


def _positive(params: dict, key: str) -> float | None:
    try:
        value = float(params.get(key, {}).get("string_value", ""))
    except ValueError:
        return None
    # 0 or less would admit anything, infinity nothing: such a figure is no rate at all
    return value if 0 < value < math.inf else None


@dataclass(frozen=True)
class ModelTraits:
    triton_name: str
    limits: WindowLimits | None  # None: the model publishes no window limit (takes any size)
    rule: TilingRule             # the published rule; IMDeception's for models that publish none
    weights: str                 # digest of the weights (ETags), or a name-based stand-in
    arch: str | None = None
    params: int | None = None
    flops: int | None = None
    seconds_per_mpx: float | None = None  # admission's starting rate; None: the model publishes none
    # The precision its config asks for ("auto", "f32", "bf16", "fp16"; None: says none), and
    # whether the model answers DESCRIPTION_NAME (what "auto" became: ``Description``).
    precision: str | None = None
    describes: bool = False
    use_when: str | None = None  # one line on the inputs it suits (GET /models, the page)

    @classmethod
    def from_config(cls, triton_name: str, config: dict) -> ModelTraits:
        params = config.get("parameters", {})
        min_side = _int(params, MIN_WINDOW_PARAM) or 1
        max_side = _int(params, MAX_WINDOW_PARAM)
        defaults = TilingRule()  # IMDeception's, for a repository exported before rules were published
        context = _int(params, CONTEXT_PARAM)
        rule = TilingRule(
            context=defaults.context if context is None else context,
            align=_int(params, ALIGN_PARAM) or defaults.align,
            min_side=min_side,
            whole_up_to=_int(params, WHOLE_PARAM) or 0,
            # absent (exported before buckets): the default, as `imdsr infer` pads
            bucket=defaults.bucket if _int(params, BUCKET_PARAM) is None else _int(params, BUCKET_PARAM),
        )
        weights = params.get(WEIGHTS_PARAM, {}).get("string_value", "")
        arch = params.get(ARCH_PARAM, {}).get("string_value", "") or None
        return cls(
            triton_name=triton_name,
            limits=WindowLimits(max_side=max_side, min_side=min(min_side, max_side))
            if max_side else None,
            rule=rule,
            weights=weights or f"{triton_name}@unknown-weights",
            arch=arch,
            params=_int(params, PARAMS_PARAM),
            flops=_int(params, FLOPS_PARAM),
            seconds_per_mpx=_positive(params, SECONDS_PER_MPX_PARAM),
            precision=params.get(PRECISION_PARAM, {}).get("string_value", "") or None,
            describes=any(o.get("name") == DESCRIPTION_NAME for o in config.get("output", [])),
            use_when=params.get(USE_WHEN_PARAM, {}).get("string_value", "") or None,
        )

    @property
    def fixed_precision(self) -> str | None:
        """The precision the config alone says the model runs; None where the model decides when
        it loads ("auto": ask it, ``Description``) or the config says nothing."""
        return None if self.precision in (None, "auto") else self.precision

    def with_context(self, context: int | None) -> TilingRule:
        """The rule with the gateway's context override (IMDSR_TILE_CONTEXT), if one is set,
        rounded up to the model's alignment."""
        if context is None:
            return self.rule
        a = self.rule.align
        return replace(self.rule, context=-(-context // a) * a)


@dataclass(frozen=True)
class Description:
    """What a loaded model says it runs (its answer to a request for DESCRIPTION_NAME alone)."""

    runtime: str
    precision: str

    @classmethod
    def from_output(cls, output: np.ndarray | None) -> Description:
        """Parse the UINT8 [N, n] answer (UTF-8 JSON, one row per input row); ValueError if it
        is not one."""
        if output is None or output.dtype != np.uint8 or output.ndim != 2 or not output.size:
            raise ValueError(f"not a model description: {None if output is None else output.shape}")
        try:
            data = json.loads(output[0].tobytes().decode())
            return cls(runtime=str(data["runtime"]), precision=str(data["precision"]))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"not a model description: {exc}") from exc


def starting_rate(variant: str, traits: ModelTraits, settings: Settings) -> float:
    """Seconds per output Mpx that admission assumes for ``variant`` until it has learnt its own:
    the operator's override (IMDSR_SECONDS_PER_MPX), else the rate the model publishes in its
    config.pbtxt (its registry entry's, written by export), else the settings' default."""
    published = traits.seconds_per_mpx or settings.default_seconds_per_mpx
    return settings.seconds_per_mpx.get(variant, published)
