"""Against a real Triton (the session's ``triton_server``): answers, batching, metrics, errors."""

from __future__ import annotations

import queue
import re
import time
import urllib.request

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from export.onnx_export import load_model
from imdsr.contract import INPUT_NAME, OUTPUT_NAME
from training.models.registry import triton_name

pytestmark = [pytest.mark.triton, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def client(triton_server):
    c = grpcclient.InferenceServerClient(triton_server.grpc_url)
    yield c
    c.close()


def infer(client: grpcclient.InferenceServerClient, model: str, x: np.ndarray, dtype: str = "FP32"):
    inp = grpcclient.InferInput(INPUT_NAME, list(x.shape), dtype)
    inp.set_data_from_numpy(x)
    return client.infer(model, [inp], outputs=[grpcclient.InferRequestedOutput(OUTPUT_NAME)])


def metrics(triton_server, model: str) -> dict[str, float]:
    """This model's nv_inference_* series from the Prometheus endpoint, summed over versions."""
    text = urllib.request.urlopen(triton_server.metrics_url, timeout=10).read().decode()
    out: dict[str, float] = {}
    for m in re.finditer(r'^(nv_inference_\w+)\{([^}]*)\} (\S+)$', text, re.M):
        if f'model="{model}"' in m.group(2):
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
    return out


def metrics_once(triton_server, model: str, ready, timeout_s: float = 30.0) -> dict[str, float]:
    """``metrics`` once ``ready(m)`` holds: Triton counts a request only after answering it, so
    under load the endpoint can lag the client by a moment."""
    deadline = time.monotonic() + timeout_s
    while True:
        m = metrics(triton_server, model)
        if ready(m) or time.monotonic() > deadline:
            return m
        time.sleep(0.2)


def test_every_variant_is_ready_under_its_contract_name(client, triton_server) -> None:
    assert client.is_server_live() and client.is_server_ready()
    for v in triton_server.variants:
        assert client.is_model_ready(triton_name(v)), v


@pytest.mark.parametrize("variant", ["c16nla", "c12", "c8", "c4nla", "c4"])
def test_triton_matches_pytorch(client, triton_server, variant: str) -> None:
    x = np.random.default_rng(1).random((2, 3, 37, 45), dtype=np.float32)  # odd size, batch of 2
    got = infer(client, triton_name(variant), x).as_numpy(OUTPUT_NAME)
    model, _ = load_model(variant, triton_server.weights[variant])
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert got.shape == ref.shape == (2, 3, 148, 180)
    assert got.dtype == np.float32
    # Within 1e-3 of one level on the 8-bit scale.
    assert np.abs(got - ref).max() * 255 < 1e-3


def test_dynamic_batching_really_batches(client, triton_server) -> None:
    model = triton_name("c4")
    before = metrics(triton_server, model)
    n = 16
    done: queue.Queue = queue.Queue()
    x = np.random.default_rng(2).random((1, 3, 48, 48), dtype=np.float32)
    for _ in range(n):  # all in flight at once, same shape: the batcher may group them
        inp = grpcclient.InferInput(INPUT_NAME, list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        client.async_infer(model, [inp], callback=lambda result, error: done.put((result, error)))
    results = [done.get(timeout=120) for _ in range(n)]
    assert all(error is None for _, error in results), [e for _, e in results if e]
    base = before.get("nv_inference_count", 0)
    after = metrics_once(triton_server, model, lambda m: m.get("nv_inference_count", 0) - base >= n)
    inferences = after["nv_inference_count"] - base
    executions = after["nv_inference_exec_count"] - before.get("nv_inference_exec_count", 0)
    print(f"\n{n} concurrent requests -> {inferences:.0f} inferences in {executions:.0f} executions")
    assert inferences == n
    assert executions < inferences


def test_queue_and_compute_time_are_on_the_metrics_endpoint(client, triton_server) -> None:
    model = triton_name("c8")
    infer(client, model, np.zeros((1, 3, 32, 32), np.float32))
    m = metrics_once(triton_server, model, lambda m: m.get("nv_inference_request_success", 0) >= 1)
    assert m["nv_inference_request_success"] >= 1
    assert m["nv_inference_compute_infer_duration_us"] > 0
    assert "nv_inference_queue_duration_us" in m
    print(f"\n{model}: queue {m['nv_inference_queue_duration_us']:.0f} us, compute "
          f"{m['nv_inference_compute_infer_duration_us']:.0f} us "
          f"over {m['nv_inference_count']:.0f} inferences")


def _error_of(call) -> str:
    with pytest.raises(InferenceServerException) as info:
        call()
    return str(info.value)


def test_clear_errors_not_crashes(client) -> None:
    x = np.zeros((1, 3, 16, 16), np.float32)
    msg = _error_of(lambda: infer(client, "imdeception_nope", x))
    assert "unknown model" in msg and "imdeception_nope" in msg
    msg = _error_of(lambda: infer(client, triton_name("c4"), x.astype(np.float64), "FP64"))
    assert "FP64" in msg and "FP32" in msg
    msg = _error_of(lambda: infer(client, triton_name("c4"), np.zeros((1, 3, 16), np.float32)))
    assert "unexpected shape" in msg
    msg = _error_of(lambda: infer(client, triton_name("c4"), np.zeros((1, 4, 16, 16), np.float32)))
    assert "unexpected shape" in msg
    # The server and the model are still there and still answer.
    assert client.is_server_live() and client.is_model_ready(triton_name("c4"))
    assert infer(client, triton_name("c4"), x).as_numpy(OUTPUT_NAME).shape == (1, 3, 64, 64)


def test_fixture_exposes_http_and_repo(triton_server) -> None:
    with urllib.request.urlopen(f"{triton_server.http_url}/v2/health/ready", timeout=5) as r:
        assert r.status == 200
    assert (triton_server.repo / "MANIFEST.json").exists()
    assert re.fullmatch(r"127\.0\.0\.1:\d+", triton_server.grpc_url)
