"""Training configuration: dataclasses filled from a TOML file (``training/configs/*.toml``)."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any


@dataclass
class DataConfig:
    root: str = "data/photos"        # HR folder (photo set, any folder, or DIV2K layout)
    cache: str = "data/cache"        # decoded HR + bicubic LR .npy files
    lr_crop: int = 48                # LR patch side (paper: 64 at x4)
    batch: int = 16                  # per process
    max_side: int = 0                # shrink HR so the long side is at most this (0: keep)
    # Training HR also shrunk by each factor (<= 1) before the LR is made: multi-scale
    # augmentation, as BasicSR's DF2K "multiscale" set. Validation stays at 1.0.
    hr_scales: list[float] = field(default_factory=lambda: [1.0])
    min_detail: float = 0.0          # resample LR crops with less `detail` (0..1 scale); 0: off
    val_crop: int = 384              # HR centre crop per validation image (keeps CPU val fast)
    val_images: int = 6              # at most this many validation images
    workers: int = 0                 # processes making batches ahead / building the cache; 0: none


@dataclass
class PhaseConfig:
    """One training phase: loss, schedule and length."""

    loss: str = "charbonnier"        # charbonnier | l1 | l2
    steps: int = 1000
    peak_lr: float = 5e-4
    warmup: int = 100                # linear 0 -> peak
    explore: int = 400               # steps held at peak before the linear decay to zero
    final_lr: float = 0.0


@dataclass
class TrainConfig:
    name: str = "run"
    variant: str = "c16nla"
    scale: int = 4
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
    phase1: PhaseConfig = field(default_factory=PhaseConfig)
    phase2: PhaseConfig | None = None  # L2 from phase 1's best checkpoint (paper)
    data: DataConfig = field(default_factory=DataConfig)
    out_dir: str = "runs"
    val_every: int = 200
    ckpt_every: int = 100
    log_every: int = 10
    threads: int = 0                 # torch CPU threads; 0 = torch's default
    amp: bool = True                 # CUDA only
    channels_last: bool = True       # CUDA only

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


def _build(cls: type, values: dict[str, Any]) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    kwargs = {}
    for key, val in values.items():
        if key in ("phase1", "phase2"):
            kwargs[key] = None if val is None else _build(PhaseConfig, val)
        elif key == "data":
            kwargs[key] = _build(DataConfig, val)
        else:
            kwargs[key] = val
    return cls(**kwargs)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    values = tomllib.loads(Path(path).read_text())
    for key, val in (overrides or {}).items():
        if val is not None:
            values[key] = val
    return _build(TrainConfig, values)


def to_dict(cfg: Any) -> Any:
    return asdict(cfg) if is_dataclass(cfg) else cfg


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
