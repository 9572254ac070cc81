"""Failures on the way to the model, without a Triton: the tile runner stops at the first failed
tile, and every Triton error becomes the gateway error (and HTTP status) it should."""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from imdsr.imaging.pipeline import run_tiles
from imdsr.imaging.tiling import plan_tiles
from service import errors
from service.metrics import TRITON_ERRORS
from service.triton_client import classify


def test_first_failure_cancels_the_remaining_tiles() -> None:
    image = np.zeros((300, 300, 3), np.uint8)
    plan = plan_tiles(300, 300, 32, 32)  # many tiles
    started: list[int] = []
    finished: list[int] = []

    async def infer(batch: np.ndarray) -> np.ndarray:
        n = len(started)
        started.append(n)
        if n == 2:
            raise errors.TritonUnavailableError("boom")
        await asyncio.sleep(0.05)
        finished.append(n)
        return np.zeros((1, 3, batch.shape[2] * 4, batch.shape[3] * 4), np.float32)

    with pytest.raises(errors.TritonUnavailableError, match="boom"):  # the error itself, not a group
        asyncio.run(run_tiles(image, plan, infer, in_flight=3))
    assert len(plan) > 20
    assert len(started) <= 3  # nothing new was sent after the failure
    assert finished == []     # the two in flight were cancelled, not awaited to the end


def test_in_flight_bounds_concurrency_and_every_tile_lands() -> None:
    image = np.arange(200 * 150 * 3, dtype=np.uint32).reshape(200, 150, 3).astype(np.uint16)
    plan = plan_tiles(200, 150, 32, 32)
    running = peak = 0

    async def infer(batch: np.ndarray) -> np.ndarray:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        # Hold the first tile until a second one runs beside it (or 2 s pass): on a loaded
        # machine the to_thread hops before infer could otherwise outlast a fixed 1 ms sleep
        # and the tiles would happen not to overlap (seen once in the full suite).
        if running >= 2:
            overlap.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(overlap.wait(), 2.0)
        await asyncio.sleep(0.001)
        running -= 1
        return batch.repeat(4, axis=2).repeat(4, axis=3)

    async def main() -> np.ndarray:
        nonlocal overlap
        overlap = asyncio.Event()
        return await run_tiles(image, plan, infer, in_flight=2)

    overlap: asyncio.Event

    out = asyncio.run(main())
    assert peak == 2
    np.testing.assert_array_equal(out, image.repeat(4, axis=0).repeat(4, axis=1))


# (Triton's message, gRPC status) -> (gateway error, HTTP status, counter label)
CASES = [
    ("Exceeds maximum queue size", "StatusCode.UNAVAILABLE", errors.TritonUnavailableError, 503,
     "overloaded"),
    ("Request timeout expired", "StatusCode.UNAVAILABLE", errors.TritonTimeoutError, 504,
     "queue_timeout"),
    ("failed to connect to all addresses", "StatusCode.UNAVAILABLE", errors.TritonUnavailableError, 503,
     "unavailable"),
    ("Deadline Exceeded", "StatusCode.DEADLINE_EXCEEDED", errors.TritonTimeoutError, 504, "timeout"),
    ("Request for unknown model: 'imdeception_x' is not found", "StatusCode.NOT_FOUND",
     errors.ModelNotReadyError, 503, "model_not_found"),
    ("model 'imdeception_c4' is not ready", "StatusCode.INTERNAL", errors.ModelNotReadyError, 503,
     "model_not_ready"),
    ("inference failed for input (1, 3, 64, 64): out of memory", "StatusCode.INTERNAL",
     errors.TritonError, 502, "inference"),
]


@pytest.mark.parametrize(("message", "status", "kind", "http", "label"), CASES,
                         ids=[c[-1] for c in CASES])
def test_every_triton_error_class(message: str, status: str, kind: type, http: int, label: str) -> None:
    counter = TRITON_ERRORS.labels(kind=label)
    before = counter._value.get()
    error = classify(InferenceServerException(message, status=status))
    assert type(error) is kind and error.status == http
    assert counter._value.get() == before + 1
