"""Async gRPC access to Triton: one tile in, one tile out, errors as the gateway's errors."""

from __future__ import annotations

import contextlib
import time

import numpy as np
from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE, InferInput, InferRequestedOutput, KeepAliveOptions
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from imdsr.contract import (
    DESCRIBE_PRIORITY,
    DESCRIPTION_NAME,
    INPUT_NAME,
    OUTPUT_NAME,
    OUTPUT_U8_NAME,
    SCALE,
    WIRE_DTYPE,
    model_name,
    variant_of,
)
from service import errors
from service.metrics import TRITON_ERRORS, TRITON_INFER_SECONDS
from service.model_traits import Description, ModelTraits

# How long a "this model is ready" answer is trusted, so that each request does not cost a
# readiness round trip; a model that goes away is still caught by the inference call itself.
READY_TTL_S = 2.0
# How long a model's published traits (window limit, tiling, weights) are trusted (a reload may
# change them).
TRAITS_TTL_S = 30.0
# gRPC reconnects a broken channel by itself, but its backoff grows to 120 s by default: a
# Triton restarted after a long outage would go unused for up to two minutes. Capped here, the
# gateway is back within about 2 s of Triton (requests meanwhile fail fast with 503).
RECONNECT_BACKOFF_MS = (250, 2000)  # first, longest


def channel_args() -> list[tuple[str, int]]:
    """tritonclient's own channel defaults (which ``channel_args`` replaces) plus the backoff."""
    keepalive = KeepAliveOptions()
    return [
        ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[0]),
        ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[1]),
    ]


def classify(exc: InferenceServerException) -> errors.ApiError:
    """Map a Triton/gRPC failure onto the gateway's error (and count it by kind)."""
    status = str(exc.status() or "")
    message = exc.message() or str(exc)
    lowered = message.lower()
    if "exceeds maximum queue size" in lowered:
        # Triton shed the tile (queue full): overloaded, try again later.
        kind, error = "overloaded", errors.TritonUnavailableError(f"Triton is overloaded: {message}")
    elif "timeout expired" in lowered:
        # The tile's deadline passed while queued in Triton (its queue policy or ours).
        kind, error = "queue_timeout", errors.TritonTimeoutError(f"Triton timed out: {message}")
    elif "UNAVAILABLE" in status or "failed to connect" in lowered:
        kind, error = "unavailable", errors.TritonUnavailableError("Triton is not reachable")
    elif "DEADLINE_EXCEEDED" in status:
        kind, error = "timeout", errors.TritonTimeoutError("Triton did not answer in time")
    elif "unknown model" in message.lower() or "NOT_FOUND" in status:
        kind, error = "model_not_found", errors.ModelNotReadyError(message)
    elif "not ready" in message.lower() or "unavailable" in message.lower():
        kind, error = "model_not_ready", errors.ModelNotReadyError(message)
    else:
        kind, error = "inference", errors.TritonError(message)
    TRITON_ERRORS.labels(kind=kind).inc()
    return error


class TritonClient:
    """The gateway's Triton connection; one per process, made in the app's lifespan."""

    def __init__(self, url: str, timeout_s: float, retry_after_s: int) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self._client = InferenceServerClient(url, channel_args=channel_args())
        self._ready_until: dict[str, float] = {}
        self._traits: dict[str, tuple[float, ModelTraits]] = {}
        self._descriptions: dict[str, tuple[float, Description]] = {}
        # Gateway model names ("c16nla", "rlfn", or a Triton name) -> Triton's name, from the index.
        self._names: dict[str, str] = {}

    async def close(self) -> None:
        await self._client.close()

    def triton_name(self, variant: str) -> str:
        """Triton's name for a gateway model name (IMDeception's bare variants by default)."""
        return self._names.get(variant) or model_name(variant)

    async def _resolve(self, variant: str) -> str:
        """``triton_name`` after learning Triton's names, the first time ``variant`` is seen
        (``rlfn`` is served as ``rlfn``, ``c16nla`` as ``imdeception_c16nla``)."""
        if variant not in self._names:
            with contextlib.suppress(errors.ApiError):  # unreachable: the next call reports it
                await self.models()
        return self.triton_name(variant)

    def _unavailable_headers(self, error: errors.ApiError) -> errors.ApiError:
        if error.status == 503:
            error.headers.setdefault("Retry-After", str(self.retry_after_s))
        return error

    async def infer(self, variant: str, batch: np.ndarray, eight_bit: bool = False) -> np.ndarray:
        """Run ``batch`` (float32 NCHW in [0, 1]) through ``variant``: float32 NCHW x4, or with
        ``eight_bit`` the model's UINT8 output (a quarter of the bytes, nothing to convert)."""
        tensor = InferInput(INPUT_NAME, list(batch.shape), WIRE_DTYPE)
        tensor.set_data_from_numpy(batch)
        output_name = OUTPUT_U8_NAME if eight_bit else OUTPUT_NAME
        start = time.perf_counter()
        try:
            result = await self._client.infer(
                self.triton_name(variant), [tensor], outputs=[InferRequestedOutput(output_name)],
                # Triton's queue deadline (microseconds): Triton only lets a request shorten
                # the model's default, so this drops tiles the gateway has given up on.
                timeout=int(self.timeout_s * 1_000_000), client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            raise self._unavailable_headers(classify(exc)) from exc
        TRITON_INFER_SECONDS.labels(model=variant).observe(time.perf_counter() - start)
        output = result.as_numpy(output_name)
        expected = (batch.shape[0], batch.shape[1], batch.shape[2] * SCALE, batch.shape[3] * SCALE)
        if output is None or output.shape != expected:
            got = None if output is None else output.shape
            raise errors.TritonError(f"unexpected output shape {got}, expected {expected}")
        return output

    async def server_live(self) -> bool:
        try:
            return bool(await self._client.is_server_live(client_timeout=2.0))
        except InferenceServerException:
            return False

    async def model_ready(self, variant: str) -> bool:
        try:
            return bool(await self._client.is_model_ready(await self._resolve(variant),
                                                          client_timeout=2.0))
        except InferenceServerException:
            return False

    async def require_ready(self, variant: str) -> None:
        """Raise the right error unless ``variant`` is ready (cached for ``READY_TTL_S``)."""
        if self._ready_until.get(variant, 0.0) > time.monotonic():
            return
        name = await self._resolve(variant)
        try:
            ready = await self._client.is_model_ready(name, client_timeout=5.0)
        except InferenceServerException as exc:
            raise self._unavailable_headers(classify(exc)) from exc
        if not ready:
            models = await self.models()
            if variant_of(variant) not in models:
                raise errors.UnknownModelError(
                    f"unknown model {variant!r}; available: {', '.join(sorted(models)) or 'none'}")
            raise self._unavailable_headers(errors.ModelNotReadyError(
                f"model {variant!r} is {models[variant_of(variant)].lower() or 'not ready'}"))
        self._ready_until[variant] = time.monotonic() + READY_TTL_S

    async def serves(self, variant: str) -> bool:
        """Whether ``variant`` is ready, answered without raising (cached as ``require_ready``)."""
        try:
            await self.require_ready(variant)
        except errors.ApiError:
            return False
        return True

    async def traits(self, variant: str) -> ModelTraits:
        """What ``variant``'s config.pbtxt publishes: window limit (written from the same serving
        config as its TensorRT profile), tiling rule, weights digest, architecture and size."""
        cached = self._traits.get(variant)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        name = await self._resolve(variant)
        try:
            answer = await self._client.get_model_config(name, as_json=True, client_timeout=5.0)
        except InferenceServerException as exc:
            raise self._unavailable_headers(classify(exc)) from exc
        traits = ModelTraits.from_config(name, answer.get("config", {}))
        self._traits[variant] = (time.monotonic() + TRAITS_TTL_S, traits)
        return traits

    async def describe(self, variant: str) -> Description | None:
        """What ``variant`` runs, asked of the loaded model (precision "auto" is resolved where
        it loaded): a request for its description alone, which runs no network and goes ahead of
        queued tiles (Triton priority). None for a model that does not answer it (TensorRT plans:
        their config's precision is what they run). Cached as long as the traits."""
        cached = self._descriptions.get(variant)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        traits = await self.traits(variant)
        if not traits.describes:
            return None
        probe = InferInput(INPUT_NAME, [1, 3, 1, 1], WIRE_DTYPE)
        probe.set_data_from_numpy(np.zeros((1, 3, 1, 1), np.float32))
        try:
            result = await self._client.infer(
                traits.triton_name, [probe], outputs=[InferRequestedOutput(DESCRIPTION_NAME)],
                priority=DESCRIBE_PRIORITY, client_timeout=self.timeout_s)
            description = Description.from_output(result.as_numpy(DESCRIPTION_NAME))
        except InferenceServerException as exc:
            raise self._unavailable_headers(classify(exc)) from exc
        except ValueError as exc:
            raise errors.TritonError(f"{traits.triton_name}: {exc}") from exc
        self._descriptions[variant] = (time.monotonic() + TRAITS_TTL_S, description)
        return description

    async def models(self) -> dict[str, str]:
        """Models in Triton's repository by gateway name (``c16nla`` for ``imdeception_c16nla``,
        ``rlfn`` for ``rlfn``) and their state ("READY", "UNAVAILABLE", ...)."""
        try:
            index = await self._client.get_model_repository_index(as_json=True,
                                                                  client_timeout=5.0)
        except InferenceServerException as exc:
            raise self._unavailable_headers(classify(exc)) from exc
        states = {}
        for entry in index.get("models", []):
            name = entry.get("name", "")
            if not name:
                continue
            self._names[variant_of(name)] = self._names[name] = name
            states[variant_of(name)] = entry.get("state", "") or "UNAVAILABLE"
        return states
