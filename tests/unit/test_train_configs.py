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
    assert {"paper_c16nla", "cpu_c16nla", "cpu_c4", "cpu_imdn", "cpu_rlfn", "cpu_efdn"} <= names


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


def test_variant_is_any_registered_one_and_checked_on_load(tmp_path: Path) -> None:
    from training.models.registry import VARIANTS

    cfg = tmp_path / "c.toml"
    for name, spec in VARIANTS.items():
        init = "" if spec.architecture.bicubic_start else 'init = "default"\n'
        cfg.write_text(f'name = "x"\nvariant = "{name}"\n{init}')
        assert load_config(cfg).variant == name
    cfg.write_text('name = "x"\nvariant = "rfln"\n')  # a typo: refused before any work starts
    with pytest.raises(pydantic.ValidationError, match="unknown variant 'rfln'"):
        load_config(cfg)


def test_crops_must_fit_the_architecture(tmp_path: Path) -> None:
    # RLFN's attention pools a stride-2 conv's output with a 7x7 window: 15 LR px at least.
    cfg = tmp_path / "c.toml"
    cfg.write_text('name = "x"\nvariant = "rlfn"\n[data]\nlr_crop = 8\n')
    with pytest.raises(pydantic.ValidationError, match="lr_crop = 8 .* at least 15"):
        load_config(cfg)
    cfg.write_text('name = "x"\nvariant = "rlfn"\n[data]\nlr_crop = 16\nval_crop = 48\n')
    with pytest.raises(pydantic.ValidationError, match="val_crop"):
        load_config(cfg)
    cfg.write_text('name = "x"\nvariant = "c4"\n[data]\nlr_crop = 8\nval_crop = 48\n')
    assert load_config(cfg).data.lr_crop == 8  # IMDeception runs any size, as before


def test_bicubic_start_is_refused_where_the_architecture_has_none(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('name = "x"\nvariant = "srnext"\n')  # init defaults to bicubic
    with pytest.raises(pydantic.ValidationError, match="srnext has no bicubic start"):
        load_config(cfg)
