"""One real Triton for the whole integration session.

``triton_server`` serves every variant (shipped weights where they exist, random-init otherwise)
from a freshly generated ``cpu`` repository on free loopback ports; tests talk to it over gRPC,
HTTP and the metrics endpoint like any client would. It is started once: Triton's start-up and
the ONNX exports cost seconds, and the machine has two cores.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# --- the shared Triton --------------------------------------------------------------------------


@dataclass
class TritonHandle:
    grpc_url: str      # "127.0.0.1:PORT", for tritonclient.grpc
    http_url: str      # "http://127.0.0.1:PORT"
    metrics_url: str   # "http://127.0.0.1:PORT/metrics"
    repo: Path
    variants: list[str]
    weights: dict[str, Path]
    log: Path
    server: object = field(repr=False)


def _test_serving_config():  # noqa: ANN202 - export.serving.ServingConfig
    """The shipped serving.toml, shrunk for two shared cores: one instance, one runtime thread;
    f32, so that served and PyTorch results agree within a level on any CPU (the shipped "auto"
    is bf16 on CPUs with AMX or AVX512_BF16: tests/integration/test_precision_auto.py holds that one)."""
    from export.serving import load_serving

    cfg = load_serving()
    # Batching stays on here (the shipped CPU config sends requests alone, PERFORMANCE.md): the
    # shared server exercises the dynamic batching that the GPU targets rely on.
    cpu = cfg.cpu.model_copy(update={"instances": {"default": 1}, "intra_op_threads": 1,
                                     "warmup_batch_sizes": [], "preferred_batch_sizes": None,
                                     "merge_requests": True, "precision": "f32"})
    return cfg.model_copy(update={"cpu": cpu})


@pytest.fixture(scope="session")
def triton_server(tmp_path_factory: pytest.TempPathFactory,
                  variant_weights: dict[str, Path]) -> Iterator[TritonHandle]:
    from export.repo import ModelSource, write_repository
    from triton_host.launcher import TritonLaunchError, TritonOptions, TritonServer, free_ports

    root = tmp_path_factory.mktemp("triton")
    repo = root / "model_repository"
    sources = [ModelSource(v, w) for v, w in variant_weights.items()]
    write_repository(repo, "cpu", sources, _test_serving_config())
    log_path = root / "tritonserver.log"
    server = None
    with log_path.open("ab") as log:
        for _attempt in range(3):  # another process may take a "free" port before Triton binds it
            opts = TritonOptions(repo, *free_ports(3), host="127.0.0.1", exit_timeout_s=5)
            server = TritonServer(opts, log=log)
            server.start()
            try:
                server.wait_ready(timeout_s=180)
                break
            except TritonLaunchError:
                server.stop(timeout_s=10)
                server = None
        if server is None:
            tail = log_path.read_text(errors="replace")[-4000:]
            pytest.fail(f"tritonserver did not start; log tail:\n{tail}")
        try:
            yield TritonHandle(server.grpc_url, server.http_url, server.metrics_url, repo,
                               list(variant_weights), variant_weights, log_path, server)
        finally:
            server.stop(timeout_s=15)
