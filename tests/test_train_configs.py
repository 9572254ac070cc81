"""Every committed training config loads and describes a runnable schedule."""

from pathlib import Path

import pytest

from training.models.registry import get_variant
from training.train.config import load_config
from training.train.losses import make_loss

CONFIGS = sorted((Path(__file__).parents[1] / "training" / "configs").glob("*.toml"))


def test_configs_exist():
    names = {p.stem for p in CONFIGS}
    assert {"paper_c16nla", "cpu_c16nla", "cpu_c4"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_is_runnable(path: Path):
    cfg = load_config(path)
    assert cfg.name == path.stem, "run folder name should match the config file"
    get_variant(cfg.variant)
    assert cfg.init in ("bicubic", "default") or cfg.init.startswith("weights:")
    for phase in (cfg.phase1, cfg.phase2):
        if phase is None:
            continue
        make_loss(phase.loss, cfg.charbonnier_eps)
        assert phase.warmup + phase.explore <= phase.steps
        assert phase.peak_lr > 0
