"""The committed model_repository/ is the cpu flavour of the shipped weights, and is not stale."""

from __future__ import annotations

import pytest

from export.onnx_export import load_model, max_abs_diff
from export.repo import MANIFEST, check_repository
from export.serving import load_serving
from tests.support import ROOT
from training.models.registry import triton_name
from training.weights.store import shipped_variants, shipped_weights

REPO = ROOT / "model_repository"


@pytest.fixture(scope="module")
def shipped() -> list[str]:
    variants = shipped_variants()
    if not variants and not (REPO / MANIFEST).exists():
        pytest.skip("no weights ship yet and nothing is committed: run `make repo` when they land")
    return variants


def test_committed_repository_is_fresh(shipped: list[str]) -> None:
    problems = check_repository(REPO, load_serving())
    assert not problems, "model_repository/ is stale, run `make repo`:\n" + "\n".join(problems)


def test_committed_graphs_compute_what_pytorch_does(shipped: list[str]) -> None:
    # Catches model-code changes that hashes cannot see (training/models/ edited after export).
    for variant in shipped:
        model, _ = load_model(variant, shipped_weights(variant))
        onnx_file = REPO / triton_name(variant) / "1" / "model.onnx"
        assert max_abs_diff(model, onnx_file, ((1, 3, 37, 45),)) < 1e-4, variant
