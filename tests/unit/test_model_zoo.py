"""IMDeception's peers: structure, golden outputs through the importer, refusals, registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from imdsr.cli import app
from tests.support.reference import PEER_CHECKPOINTS, peer_golden, peer_layout, sin_weights
from training.models import create_model, get_variant, list_variants
from training.summary import measure
from training.weights.ntire22 import published_layout, to_published
from training.weights.store import load_into, read_meta

runner = CliRunner()

# The challenge's table (NTIRE 2022 ESR report; the repository's figs/results.png), 256x256 input.
CHALLENGE = {  # params, FLOPs [G], activations [M], #conv
    "imdn": (893_936, 58.53, 154.14, 43),
    "imdn_nb7": (790_496, 51.76, 136.31, 38),
    "rlfn": (317_218, 19.70, 80.05, 39),
    "efdn": (272_038, 16.86, 79.59, 59),
}


def _save_pth(tmp_path: Path, variant: str) -> Path:
    file = PEER_CHECKPOINTS[variant]
    path = tmp_path / file
    torch.save({k: torch.from_numpy(v) for k, v in sin_weights(peer_layout(file)).items()}, path)
    return path


@pytest.mark.parametrize("variant", list(CHALLENGE))
def test_structure_matches_the_challenge_table(variant: str) -> None:
    params, flops, acts, convs = CHALLENGE[variant]
    c = measure(create_model(variant), 256, 256)
    assert c.params == params
    assert round(c.flops / 1e9, 2) == flops
    assert abs(c.conv_output_elems / 1e6 - acts) < 0.1
    assert c.n_conv == convs


@pytest.mark.parametrize("variant", list(PEER_CHECKPOINTS))
def test_import_reproduces_the_reference_implementation(tmp_path: Path, variant: str) -> None:
    arch = get_variant(variant).arch
    dst = tmp_path / f"{variant}.safetensors"
    result = runner.invoke(app, ["weights", "import-ntire22", "--arch", arch,
                                 str(_save_pth(tmp_path, variant)), str(dst)])
    assert result.exit_code == 0, result.output
    assert f"variant {variant}," in result.output
    meta = read_meta(dst)
    assert (meta.variant, meta.scale) == (variant, 4)
    assert meta.source.startswith(f"ntire22:{PEER_CHECKPOINTS[variant]}:sha256=")
    model = create_model(variant).eval()
    load_into(model, dst, variant, 4)
    for x, y in peer_golden(PEER_CHECKPOINTS[variant]).values():
        with torch.inference_mode():
            out = model(torch.from_numpy(x)).numpy()
        assert out.shape == y.shape
        assert np.abs(out - y).max() < 1e-4 * max(1.0, float(np.abs(y).max()))


@pytest.mark.parametrize("variant", list(PEER_CHECKPOINTS))
def test_published_layout_is_the_checkpoint_s_and_round_trips(variant: str) -> None:
    model = create_model(variant)
    arch = get_variant(variant).arch
    assert list(published_layout(model, arch).items()) == peer_layout(PEER_CHECKPOINTS[variant])
    from training.weights.ntire22 import import_published

    found, state = import_published(to_published(model, arch), arch)
    assert found == variant
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(state[name], tensor, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("variant", "mutate", "expected"),
    [
        ("rlfn", lambda c: c.pop("B3.esa.conv2.weight"), "missing tensors: B3.esa.conv2.weight"),
        ("efdn", lambda c: c.__setitem__("B5.c1_d.weight", torch.zeros(3)),
         "unexpected tensors: B5.c1_d.weight"),
        ("imdn", lambda c: c.__setitem__("model.2.weight", torch.zeros(48, 64, 1, 1)),
         "model.2.weight: expected [48, 64, 3, 3], got [48, 64, 1, 1]"),
    ],
    ids=["missing", "extra", "wrong-shape"],
)
def test_import_refuses_mismatches_naming_the_tensor(tmp_path: Path, variant, mutate, expected) -> None:
    src = _save_pth(tmp_path, variant)
    ckpt = torch.load(src, weights_only=True)
    mutate(ckpt)
    torch.save(ckpt, src)
    dst = tmp_path / "out.safetensors"
    result = runner.invoke(app, ["weights", "import-ntire22", "--arch", get_variant(variant).arch,
                                 str(src), str(dst)])
    assert result.exit_code == 2
    assert expected in result.output
    assert not dst.exists()


def test_import_refuses_another_architecture_s_checkpoint(tmp_path: Path) -> None:
    result = runner.invoke(app, ["weights", "import-ntire22", "--arch", "efdn",
                                 str(_save_pth(tmp_path, "rlfn")), str(tmp_path / "o.safetensors")])
    assert result.exit_code == 2
    assert "does not match the NTIRE 2022 efdn layout" in result.output
    result = runner.invoke(app, ["weights", "import-ntire22", "--arch", "swinir",
                                 str(_save_pth(tmp_path, "rlfn")), str(tmp_path / "o.safetensors")])
    assert result.exit_code == 2
    assert "unknown architecture 'swinir'" in result.output


def test_registry_names_every_architecture_and_triton_names() -> None:
    assert list_variants("imdn") == ["imdn", "imdn_nb7"]
    assert {get_variant(v).triton_name for v in list_variants()} >= {
        "imdeception_c16nla", "imdn", "imdn_nb7", "rlfn", "efdn"}


@pytest.mark.parametrize("variant", list_variants())
def test_registry_figures_are_the_measured_ones(variant: str) -> None:
    """The exporter publishes the registry's static params/FLOPs (no torch in the server images'
    export stage): they must be what the structure built here measures."""
    spec = get_variant(variant)
    c = measure(create_model(variant), 256, 256)
    assert (spec.params, spec.flops) == (c.params, c.flops)
