"""What every kind of test shares: visible skips for ``gpu`` tests, the ``triton`` marker on every
integration test, and weights for every variant.

The suite is split by kind: ``unit/`` (no Triton; the code's own dependencies only),
``integration/`` (a real ``tritonserver`` on loopback ports: ``integration/conftest.py``),
``deploy/`` (Dockerfile and Kubernetes manifests with the real tools); helpers in ``support/``,
fixtures in ``data/``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

# --- session-wide set-up -----------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    # Two shared cores: torch's default of one OpenMP thread per core spin-waits against the
    # other processes (measured 40x slower forwards under load); one thread is steady.
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(1)


# --- gpu marker ---------------------------------------------------------------------------------


def _gpu_skip_reason(need_tensorrt: bool) -> str | None:
    import torch

    if not torch.cuda.is_available():
        return "needs CUDA: torch.cuda is not available on this machine"
    if need_tensorrt and importlib.util.find_spec("tensorrt") is None:
        return "needs TensorRT: the tensorrt Python package is not installed"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.gpu`` needs CUDA; ``@pytest.mark.gpu(tensorrt=True)`` TensorRT as well.
    Everything under ``integration/`` starts or talks to a real Triton: marked ``triton``."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.triton)
        marker = item.get_closest_marker("gpu")
        if marker is not None:
            reason = _gpu_skip_reason(bool(marker.kwargs.get("tensorrt")))
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


# --- weights every test can use -----------------------------------------------------------------


@pytest.fixture(scope="session")
def variant_weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Weights per variant: the shipped file where one exists, else random-init (deterministic)."""
    import torch

    from training.models import create_model, list_variants
    from training.weights.store import WeightsError, WeightsMeta, save_weights, shipped_weights

    root = tmp_path_factory.mktemp("weights")
    found: dict[str, Path] = {}
    for variant in list_variants():
        try:
            found[variant] = shipped_weights(variant)
        except WeightsError:
            torch.manual_seed(0)
            model = create_model(variant)
            found[variant] = save_weights(root / f"{variant}.safetensors", model.state_dict(),
                                          WeightsMeta(variant, 4, "random-init"))
    return found
