"""The model family: exact structure, published parameter count, golden outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.support.reference import golden, published_layout, synthetic_checkpoint
from training.models import create_model, list_variants
from training.models.imdeception import BlockNonLocalAttention
from training.weights.ntire22 import from_published, to_published
from training.weights.ntire22 import published_layout as checkpoint_layout


@pytest.fixture(scope="module")
def synthetic_c16nla() -> nn.Module:
    model = create_model("c16nla").eval()
    ckpt = {k: torch.from_numpy(v) for k, v in synthetic_checkpoint().items()}
    model.load_state_dict(from_published(ckpt, model, "imdeception"))
    return model


def test_published_parameter_count() -> None:
    model = create_model("c16nla")
    assert sum(p.numel() for p in model.parameters()) == 316_552


def test_registry_lists_the_five_cores_and_the_jpeg_robust_c16nla() -> None:
    # c16nla_real: c16nla's structure with weights fine-tuned on degraded inputs (issue 27)
    assert list_variants("imdeception") == ["c16nla", "c16nla_real", "c12", "c8", "c4nla", "c4"]
    assert sum(p.numel() for p in create_model("c16nla_real").parameters()) == 316_552
    with pytest.raises(KeyError, match="unknown variant"):
        create_model("c32")


def test_grouped_convolutions_are_real_grouped_convs() -> None:
    model = create_model("c16nla")
    grouped = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
               and m.groups == 4]
    assert len(grouped) == 6 * 4  # one per Gblock, four Gblocks per GIDB


def test_mapping_reproduces_the_published_layout_exactly() -> None:
    assert list(checkpoint_layout(create_model("c16nla"), "imdeception").items()) == published_layout()


@pytest.mark.parametrize("size", ["40x72", "64x64", "33x50"])
def test_golden_outputs(synthetic_c16nla: nn.Module, size: str) -> None:
    x, y = golden()[size]
    with torch.inference_mode():
        out = synthetic_c16nla(torch.from_numpy(x)).numpy()
    assert out.shape == y.shape
    assert np.abs(out - y).max() < 1e-4


def test_leaving_out_an_attention_block_breaks_the_golden(synthetic_c16nla: nn.Module) -> None:
    # Guards the golden test against passing for the wrong reason.
    x, y = golden()["64x64"]
    saved = synthetic_c16nla.attn
    synthetic_c16nla.attn = nn.ModuleDict({"1": saved["1"]})
    try:
        with torch.inference_mode():
            out = synthetic_c16nla(torch.from_numpy(x)).numpy()
    finally:
        synthetic_c16nla.attn = saved
    assert np.abs(out - y).max() > 1e-3


def test_export_is_the_inverse_of_import(synthetic_c16nla: nn.Module) -> None:
    ckpt = to_published(synthetic_c16nla, "imdeception")
    reference = synthetic_checkpoint()
    assert list(ckpt) == list(reference)
    for name, tensor in ckpt.items():
        np.testing.assert_array_equal(tensor.numpy(), reference[name])


def test_attention_stays_inside_its_region() -> None:
    torch.manual_seed(0)
    nla = BlockNonLocalAttention(12).eval()
    x = torch.randn(1, 12, 64, 70)
    x2 = x.clone()
    x2[:, :, 40:50, 40:50] += 1.0  # region (1, 1) only
    with torch.no_grad():
        diff = (nla(x) - nla(x2)).abs()
    assert diff[:, :, 32:64, 32:64].max() > 0
    diff[:, :, 32:64, 32:64] = 0
    assert diff.max() == 0


@pytest.mark.parametrize("variant", ["c12", "c8", "c4nla", "c4"])
@pytest.mark.parametrize("shape", [(17, 23), (32, 32), (37, 65)])
def test_every_variant_upscales_any_size(variant: str, shape: tuple[int, int]) -> None:
    model = create_model(variant).eval()
    with torch.inference_mode():
        y = model(torch.rand(2, 3, *shape))
    assert y.shape == (2, 3, 4 * shape[0], 4 * shape[1])
