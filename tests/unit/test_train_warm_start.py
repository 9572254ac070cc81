"""`init = "weights:PATH"`: a second LR cycle starts from an imdsr weights file, checked by variant."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.models import create_model
from training.train.init import apply_start
from training.weights.store import WeightsError, WeightsMeta, save_weights


def test_warm_start_loads_the_weights(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = create_model("c4")
    path = save_weights(tmp_path / "c4.safetensors", source.state_dict(), WeightsMeta("c4", 4, "cycle 1"))
    torch.manual_seed(2)
    target = create_model("c4")
    note = apply_start(target, f"weights:{path}", "c4")
    assert "cycle 1" in note
    for name, tensor in source.state_dict().items():
        assert torch.equal(tensor, target.state_dict()[name]), name


def test_warm_start_refuses_weights_of_another_variant(tmp_path: Path) -> None:
    path = save_weights(tmp_path / "c4.safetensors", create_model("c4").state_dict(),
                        WeightsMeta("c4", 4, "x"))
    with pytest.raises(WeightsError, match="not 'c4nla'"):
        apply_start(create_model("c4nla"), f"weights:{path}", "c4nla")
