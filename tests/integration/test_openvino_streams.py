"""OpenVINO's serving knobs, served for real: requests Triton hands over together run side by
side (side_by_side = 2, off in the shipped config but one setting away), the shapes seen most get
compilations of their own (static_shapes, as shipped), and every answer is what the model
computes for that request alone.

A Triton of its own with the shipped [cpu] settings plus side_by_side = 2 (2 threads, so that the
two streams exist), f32 so that the comparison with PyTorch holds on any CPU.
"""

from __future__ import annotations

import json
import queue
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient

from imdsr.contract import INPUT_NAME, OUTPUT_NAME, OUTPUT_U8_NAME
from training.models.registry import triton_name
from training.weights.store import load_model

pytestmark = [pytest.mark.triton, pytest.mark.timeout(300)]
VARIANT = "c4"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, variant_weights: dict[str, Path]) -> Iterator:
    from bench.service import triton
    from export.repo import ModelSource, write_repository
    from export.serving import load_serving

    cfg = load_serving()
    assert cfg.cpu.static_shapes >= 1 and cfg.cpu.intra_op_threads == 2  # what ships
    cpu = cfg.cpu.model_copy(update={"instances": {"default": 1}, "warmup_batch_sizes": [],
                                     "precision": "f32", "runtime": "openvino", "side_by_side": 2})
    root = tmp_path_factory.mktemp("streams")
    write_repository(root / "repo", "cpu", [ModelSource(VARIANT, variant_weights[VARIANT])],
                     cfg.model_copy(update={"cpu": cpu}))
    with triton(root / "repo", root / "triton.log") as s:  # loopback, free ports, once ready
        yield s


def _batch_sizes(server) -> dict[int, int]:  # noqa: ANN001 - TritonServer
    """Executions per number of requests Triton handed the model at once, so far."""
    url = f"{server.http_url}/v2/models/{triton_name(VARIANT)}/stats"
    stats = json.loads(urllib.request.urlopen(url, timeout=10).read())["model_stats"][0]
    return {b["batch_size"]: b["compute_infer"]["count"] for b in stats["batch_stats"]}


def test_requests_handed_over_together_get_their_own_answers(server, variant_weights) -> None:  # noqa: ANN001
    client = grpcclient.InferenceServerClient(server.grpc_url)
    rng = np.random.default_rng(5)
    # two shapes, each several times: rounds side by side per shape, and (after their second
    # sighting) the shapes' own compilations
    xs = [rng.random(shape, dtype=np.float32) for shape in [(1, 3, 64, 64)] * 5 + [(1, 3, 64, 96)] * 4]
    model, _ = load_model(VARIANT, variant_weights[VARIANT])
    with torch.no_grad():
        want = [model(torch.from_numpy(x)).numpy() for x in xs]
    done: queue.Queue = queue.Queue()
    for _ in range(3):  # all in flight at once: one instance, so Triton hands over several
        for i, x in enumerate(xs):
            inp = grpcclient.InferInput(INPUT_NAME, list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            outputs = [grpcclient.InferRequestedOutput(n) for n in (OUTPUT_NAME, OUTPUT_U8_NAME)]
            client.async_infer(triton_name(VARIANT), [inp], outputs=outputs,
                               callback=lambda result, error, i=i: done.put((i, result, error)))
        for _ in xs:
            i, result, error = done.get(timeout=120)
            assert error is None, error
            y, u8 = result.as_numpy(OUTPUT_NAME), result.as_numpy(OUTPUT_U8_NAME)
            assert y.shape == want[i].shape and u8.shape == want[i].shape
            assert np.abs(y - want[i]).max() * 255 < 0.05  # each its own answer, not a neighbour's
            assert np.abs(u8.astype(int) - np.rint(np.clip(want[i], 0, 1) * 255)).max() <= 1
    client.close()
    executions = _batch_sizes(server)
    assert sum(executions.values()) < 3 * len(xs)  # several requests ran in one execution
    assert any(size >= 2 for size in executions)
