"""Training configuration: strict models filled from a TOML file (``training/configs/*.toml``).

The same mechanism as the serving config (``imdsr.config``): an unknown key or a value of the wrong
type is an error naming it. ``variant`` is any name in the model registry (the IMDeception family or
an NTIRE 2022 peer: ``imdsr model summary``); crops must be at least the smallest window that
architecture runs (RLFN's and EFDN's pooled attention need 15 and 5 LR px).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, Field, field_validator, model_validator

from imdsr.config import StrictModel, load_toml
from imdsr.contract import DEFAULT_VARIANT, SCALE
from training.data.degrade import check_name
from training.models.registry import get_variant


class SetConfig(StrictModel):
    """One HR source of a mixed training set (``[[data.sets]]``)."""

    root: str                        # HR folder (photo set, standard set, any folder, DIV2K layout)
    # Share of crop draws; within a set images are drawn by area. 0 for every set: all images
    # by area (so T91's 91 small images would get 2% of the draws beside the wallpapers).
    weight: float = 0.0
    hr_scales: list[float] | None = None  # this set's multi-scale factors (default: data's)
    # Validation images held out of training: -1 every 8th by name (the photo sets' rule),
    # 0 none, N: N evenly spaced by name.
    holdout: int = -1


class DataConfig(StrictModel):
    root: str = "data/photos"        # HR folder (photo set, any folder, or DIV2K layout)
    sets: list[SetConfig] = Field(default_factory=list)  # a mix of folders, in place of `root`
    cache: str = "data/cache"        # decoded HR + bicubic LR .npy files
    lr_crop: int = 48                # LR patch side (paper: 64 at x4)
    batch: int = 16                  # per process
    max_side: int = 0                # shrink HR so the long side is at most this (0: keep)
    # Training HR also shrunk by each factor (<= 1) before the LR is made: multi-scale
    # augmentation, as BasicSR's DF2K "multiscale" set. Validation stays at 1.0.
    hr_scales: list[float] = Field(default_factory=lambda: [1.0])
    min_detail: float = 0.0          # resample LR crops with less `detail` (0..1 scale); 0: off
    val_crop: int = 384              # HR centre crop per validation image (keeps CPU val fast)
    val_images: int = 6              # at most this many validation images
    val_min_detail: float = 0.0      # leave out flatter validation crops (LR `detail`); 0: keep all
    workers: int = 0                 # processes making batches ahead / building the cache; 0: none

    @model_validator(mode="after")
    def _weights_all_or_none(self) -> DataConfig:
        weighted = [s.weight > 0 for s in self.sets]
        if any(weighted) and not all(weighted):
            raise ValueError("data.sets: give every set a weight > 0, or none (draws by area)")
        if any(s.weight < 0 for s in self.sets):
            raise ValueError("data.sets: weights must be >= 0")
        return self

    def training_sets(self) -> list[SetConfig]:
        """The sets to draw from: ``sets``, or the one ``root`` at the data-wide settings."""
        return self.sets or [SetConfig(root=self.root)]


class PhaseConfig(StrictModel):
    """One training phase: loss, schedule and length."""

    loss: Literal["charbonnier", "l1", "l2"] = "charbonnier"
    steps: int = 1000
    peak_lr: float = 5e-4
    warmup: int = 100                # linear 0 -> peak
    explore: int = 400               # steps held at peak before the linear decay to zero
    final_lr: float = 0.0


Bound = TypeVar("Bound", int, float)


def _ordered(bounds: tuple[Bound, Bound]) -> tuple[Bound, Bound]:
    if bounds[0] > bounds[1]:
        raise ValueError(f"range [{bounds[0]}, {bounds[1]}]: low end above high end")
    return bounds


Probability = Annotated[float, Field(ge=0, le=1)]
NonNegative = Annotated[float, Field(ge=0)]
Span = Annotated[tuple[NonNegative, NonNegative], AfterValidator(_ordered)]
Quality = Annotated[int, Field(ge=1, le=100)]


class BlurConfig(StrictModel):
    """Gaussian blur of the HR before the bicubic downscale (lens and focus softness)."""

    p: Probability = 0.0
    sigma: Span = (0.2, 1.0)         # HR px, uniform in the range


class NoiseConfig(StrictModel):
    """Additive Gaussian noise on the LR (sensor read noise)."""

    p: Probability = 0.0
    sigma: Span = (1.0, 5.0)         # 8-bit levels, uniform in the range
    grey_p: Probability = 0.0        # share of noisy crops with one noise value for all channels


class PoissonConfig(StrictModel):
    """Shot noise on the LR: ``scale`` times a 256-photons-at-white sensor's (Real-ESRGAN's)."""

    p: Probability = 0.0
    scale: Span = (0.05, 0.5)
    grey_p: Probability = 0.0


class JpegConfig(StrictModel):
    """JPEG (PIL) of the LR, last, as an upload's encoder does it."""

    p: Probability = 0.0
    quality: Annotated[tuple[Quality, Quality], AfterValidator(_ordered)] = (30, 95)  # inclusive
    p444: Probability = 0.0          # share of JPEG crops without chroma subsampling; rest 4:2:0


class DegradeConfig(StrictModel):
    """Degradations of the training LR (``training/data/degrade.py``); the HR stays clean.
    All probabilities 0 (the default): clean bicubic LR, the paper's recipe."""

    blur: BlurConfig = Field(default_factory=BlurConfig)
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    poisson: PoissonConfig = Field(default_factory=PoissonConfig)
    jpeg: JpegConfig = Field(default_factory=JpegConfig)
    # Validation LR inputs, each scored on every validation crop; the best checkpoint has the
    # best mean over them. A degraded run judged on clean LR alone would keep its least
    # restoring checkpoint (the warm start is the best on clean inputs).
    val: list[str] = Field(default_factory=lambda: ["clean"], min_length=1)

    @field_validator("val")
    @classmethod
    def _known_names(cls, v: list[str]) -> list[str]:
        return [check_name(name) for name in v]

    @property
    def enabled(self) -> bool:
        return any(c.p > 0 for c in (self.blur, self.noise, self.poisson, self.jpeg))


class TrainConfig(StrictModel):
    name: str = "run"
    variant: str = DEFAULT_VARIANT
    scale: int = SCALE
    seed: int = 0
    # Charbonnier epsilon on [0, 1] data. The paper states 0.1 (it does not say on which range);
    # we honour 0.1 on [0, 1] as the default; see docs/MODEL_CARD.md for what the CPU run used.
    charbonnier_eps: float = 0.1
    init: str = "bicubic"            # bicubic (exact, or fitted for narrow heads) | default | weights:PATH
    init_fit_steps: int = 300
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.0
    grad_clip: float = 0.0           # 0: off
    ema_decay: float = 0.999
    phase1: PhaseConfig = Field(default_factory=PhaseConfig)
    phase2: PhaseConfig | None = None  # L2 from phase 1's best checkpoint (paper)
    data: DataConfig = Field(default_factory=DataConfig)
    degrade: DegradeConfig = Field(default_factory=DegradeConfig)
    out_dir: str = "runs"
    val_every: int = 200
    ckpt_every: int = 100
    log_every: int = 10
    threads: int = 0                 # torch CPU threads; 0 = torch's default
    amp: bool = True                 # CUDA only
    # bf16 autocast on the CPU (weights, optimiser and loss stay f32): oneDNN runs the convs on
    # AMX, 1.9x the f32 steps/s for c16nla on this 2-core AMX VM; docs/MODEL_CARD.md compares
    # the loss curves. Off by default: on CPUs without AMX bf16 is emulated and slower.
    cpu_bf16: bool = False
    channels_last: bool = True       # CUDA only

    @model_validator(mode="after")
    def _fits_the_variant(self) -> TrainConfig:
        try:
            spec = get_variant(self.variant)
        except KeyError as e:
            raise ValueError(f"variant: {e.args[0]}") from None
        if self.init == "bicubic" and not spec.architecture.bicubic_start:
            raise ValueError(f"init = \"bicubic\": {spec.arch} has no bicubic start; use "
                             "init = \"weights:PATH\" (its imported published checkpoint) or \"default\"")
        least = spec.tiling.min_side
        crops = {"data.lr_crop": self.data.lr_crop}
        if self.data.val_crop > 0:
            crops["data.val_crop / scale"] = self.data.val_crop // self.scale
        for key, side in crops.items():
            if side < least:
                raise ValueError(f"{key} = {side} LR px, but {self.variant!r} ({spec.arch}) needs "
                                 f"windows of at least {least}")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """``path`` as a ``TrainConfig``; the values of ``overrides`` that are not None (the command
    line's options) replace its top-level keys."""
    return load_toml(path, TrainConfig, overrides)


def to_dict(cfg: StrictModel) -> dict[str, Any]:
    return cfg.model_dump(mode="json")


def config_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: old -> new`` for every leaf that differs (nested sections as ``a.b``)."""
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out
