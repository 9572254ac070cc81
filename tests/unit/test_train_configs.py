"""Every committed training config loads and describes a runnable schedule."""

from pathlib import Path

import pydantic
import pytest

from tests.support import ROOT
from training.models.registry import get_variant
from training.train.config import load_config
from training.train.losses import make_loss

CONFIGS = sorted((ROOT / "training" / "configs").glob("*.toml"))


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


def test_training_config_is_strict(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[phase1]\nloss = "charbonier"\n')  # a typo in a value
    with pytest.raises(pydantic.ValidationError, match="loss"):
        load_config(bad)
    bad.write_text('name = "x"\n[data]\nlr_crop = "big"\n')  # a wrong type
    with pytest.raises(pydantic.ValidationError, match="lr_crop"):
        load_config(bad)
    bad.write_text('name = "x"\nlearning_rate = 1e-3\n')  # an unknown key
    with pytest.raises(pydantic.ValidationError, match="learning_rate"):
        load_config(bad)
