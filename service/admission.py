"""Admission by work and memory: a request is admitted only if it can finish in time and fit.

Counting requests is not enough: one 2048x1536 input is as much work as a hundred icons. Each
request's cost is estimated from what is known once its header is decoded (output pixels, tiles,
the model's measured seconds per output megapixel, bytes it will hold), and it is admitted only if

* the work already admitted, plus the part of its own that it keeps queued in Triton at once
  (``tiles_in_flight`` tiles), finishes within a tile's deadline (``triton_timeout_s``): every
  tile of an admitted request then gets its answer in time, so admitted requests never get 504;
* all the work admitted plus its own finishes within the request deadline (``request_timeout_s``);
* the memory admitted plus its own stays within the memory budget.

Otherwise it is refused at once: 429 with a Retry-After of about the time the work ahead needs to
drain, or 413 when it could not fit even alone. One event loop: no locks are needed.

The seconds per megapixel start from the settings (measured on the CPU the project ships for)
and are then learnt from requests that ran alone (nothing else admitted), so the estimate follows
the hardware the gateway is actually in front of. Under load they are also checked tile by tile:
each tile is sent behind a known amount of tile work already in Triton, and a tile that comes back
later than that work predicts means the backend is slower under load than it was alone (the
gateway's own decoding and encoding on the same cores, a noisy neighbour, a slower instance);
the rate follows, so what is admitted next still finishes inside the deadlines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from imdsr.contract import SCALE
from imdsr.imaging.tiling import TilePlan
from service.errors import ImageTooLargeError, TooManyRequestsError
from service.metrics import ADMITTED_BYTES, ADMITTED_SECONDS, REJECTED
from service.settings import Settings

# Only this share of a deadline is planned for: estimates are estimates, and a loaded backend is
# slower per tile than the lone requests the rate is learnt from.
SAFETY = 0.6
# Bytes per output byte held while a request is encoded (its stitched output, the encoder's own
# copy or interleaved planes, the encoded result); measured by `imdsr bench memory`: 1.4-2.0 on
# a developer VM, 2.26 once in CI (allocator arenas differ from run to run), so 2.5.
HELD_PER_OUTPUT_BYTE = 2.5
# cgroup v2, then v1: the container's memory limit.
CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
NO_LIMIT = 1 << 60
# Without IMDSR_MEMORY_BUDGET_BYTES: this share of the container's memory limit, else 4 GiB.
MEMORY_SHARE_OF_LIMIT = 0.6
DEFAULT_MEMORY_BUDGET = 4 << 30


def cgroup_memory_limit() -> int | None:
    """The memory limit of this container, or None where there is none."""
    for path in CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < NO_LIMIT:
            return int(text)
    return None


def memory_budget(settings: Settings) -> int:
    """The bytes admitted requests may hold: the configured budget, else a share of the container's."""
    if settings.memory_budget_bytes is not None:
        return settings.memory_budget_bytes
    limit = cgroup_memory_limit()
    return int(limit * MEMORY_SHARE_OF_LIMIT) if limit else DEFAULT_MEMORY_BUDGET


# The learnt seconds per megapixel follow a slower measurement at once and a faster one by this
# share (a pessimistic estimate costs a 429, an optimistic one a 504); the smallest request learnt
# from: below about a 256-px input, per-call overhead, not pixels, sets the time.
LEARNING_RATE = 0.25
LEARN_FROM_MPX = 1.0
# A tile is learnt from only when the work it was predicted to wait for is at least this long:
# below it, per-call overhead and scheduling jitter, not the model, set the latency.
LEARN_FROM_TILE_S = 0.5


@dataclass(frozen=True)
class Cost:
    """What one request will take: Triton seconds in all and per tile, gateway bytes at peak."""

    seconds: float
    seconds_per_tile: float
    tiles: int
    memory: int
    output_mpx: float = 0.0  # computed output megapixels (overlap included)
    alone: bool = False      # admitted with nothing else in progress


def estimate(plan: TilePlan, channels: int, bytes_per_sample: int, final_pixels: int,
             seconds_per_mpx: float, in_flight: int, window: int) -> Cost:
    """The cost of upscaling a ``plan`` of ``channels`` (alpha included) to ``final_pixels``."""
    computed_out_mpx = plan.computed_pixels * SCALE * SCALE / 1e6
    seconds = computed_out_mpx * seconds_per_mpx
    x4_bytes = plan.height * plan.width * SCALE * SCALE * channels * bytes_per_sample
    final_bytes = final_pixels * channels * bytes_per_sample
    held = HELD_PER_OUTPUT_BYTE * max(x4_bytes, final_bytes)
    if final_bytes != x4_bytes:  # outscale: the x4 result and the resized one exist together
        held += min(x4_bytes, final_bytes)
    # Tiles in flight: float32 input, the answer (UINT8 for 8-bit sources, else FP32) and its
    # gRPC buffer; a tile is never larger than the window nor than the image.
    side_h, side_w = min(window, plan.height), min(window, plan.width)
    answer = 1 if bytes_per_sample == 1 else 4
    per_tile = side_h * side_w * 3 * 4 + 2 * side_h * side_w * SCALE * SCALE * 3 * answer
    input_bytes = plan.height * plan.width * channels * bytes_per_sample
    memory = int(held + input_bytes + min(in_flight, len(plan)) * per_tile)
    return Cost(seconds, seconds / max(1, len(plan)), len(plan), memory, computed_out_mpx)


class WorkAdmission:
    """The work and memory admitted and not yet finished, and the rule that admits more."""

    def __init__(self, *, tile_deadline_s: float, request_deadline_s: float, memory_budget: int,
                 parallelism: int, in_flight: int, retry_after_s: int) -> None:
        self.tile_deadline_s = tile_deadline_s
        self.request_deadline_s = request_deadline_s
        self.memory_budget = memory_budget
        self.parallelism = max(1, parallelism)
        self.in_flight = in_flight
        self.retry_after_s = retry_after_s
        self.seconds = 0.0  # admitted work not yet finished, Triton seconds
        self.memory = 0
        self.active = 0
        self.rates: dict[str, float] = {}  # learnt seconds per output megapixel, by model
        self.tile_seconds = 0.0  # estimated Triton seconds of the tiles sent and not answered

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkAdmission:
        """The gateway's admission: deadlines, budget and parallelism as configured."""
        return cls(tile_deadline_s=settings.triton_timeout_s,
                   request_deadline_s=settings.request_timeout_s,
                   memory_budget=memory_budget(settings), parallelism=settings.triton_parallelism,
                   in_flight=settings.tiles_in_flight, retry_after_s=settings.retry_after_s)

    def rate(self, model: str, default: float) -> float:
        return self.rates.get(model, default)

    def _learn(self, model: str, measured: float) -> None:
        old = self.rates.get(model)
        if old is None or measured > old:
            self.rates[model] = measured
        else:
            self.rates[model] = old + LEARNING_RATE * (measured - old)

    def observe(self, model: str, cost: Cost, infer_seconds: float) -> None:
        """Learn from a request that ran alone: its infer time was the model's, not a queue's."""
        if cost.alone and cost.output_mpx >= LEARN_FROM_MPX:
            self._learn(model, infer_seconds / cost.output_mpx)

    def tile_sent(self, seconds: float) -> float:
        """Count a tile of ``seconds`` into Triton; return the latency it is predicted to have
        (the tile work already there, its own included, shared by ``parallelism``)."""
        self.tile_seconds += seconds
        return self.tile_seconds / self.parallelism

    def tile_answered(self, seconds: float, model: str | None = None, rate: float = 0.0,
                      predicted_s: float = 0.0, latency_s: float = 0.0) -> None:
        """Count a tile out; with ``model``, check its ``latency_s`` against ``predicted_s`` (made
        at ``rate`` seconds per megapixel) and learn when the backend ran slower or faster."""
        self.tile_seconds = max(0.0, self.tile_seconds - seconds)
        if model is not None and predicted_s >= LEARN_FROM_TILE_S and rate > 0:
            self._learn(model, rate * latency_s / predicted_s)

    def _refuse(self, reason: str, message: str, wait_s: float) -> TooManyRequestsError:
        REJECTED.labels(reason=reason).inc()
        retry = max(self.retry_after_s, math.ceil(wait_s))
        return TooManyRequestsError(f"{message}; retry in about {retry} s",
                                    headers={"Retry-After": str(retry)})

    def admit(self, cost: Cost) -> Cost:
        """Count ``cost`` in, or raise 429/413; ``release`` it when the request ends."""
        self.check_fits(cost)
        tile_budget = SAFETY * self.tile_deadline_s
        request_budget = SAFETY * self.request_deadline_s
        queued_own = cost.seconds_per_tile * min(self.in_flight, cost.tiles)
        ahead = self.seconds / self.parallelism
        if ahead + queued_own / self.parallelism > tile_budget or \
                ahead + cost.seconds / self.parallelism > request_budget:
            wait = ahead + cost.seconds / self.parallelism - min(tile_budget, request_budget)
            raise self._refuse("work", f"the service has {ahead:.0f} s of work queued", wait)
        if self.memory + cost.memory > self.memory_budget:
            raise self._refuse("memory", "the gateway's memory budget is taken by requests in progress",
                               ahead)
        alone = self.active == 0
        self.seconds += cost.seconds
        self.memory += cost.memory
        self.active += 1
        ADMITTED_SECONDS.set(self.seconds)
        ADMITTED_BYTES.set(self.memory)
        return replace(cost, alone=alone)

    def check_fits(self, cost: Cost) -> None:
        """Raise 413 where ``cost`` could not be admitted even alone (a job is refused at
        submission by this, as its request would be; service/jobs/)."""
        tile_budget = SAFETY * self.tile_deadline_s
        request_budget = SAFETY * self.request_deadline_s
        queued_own = cost.seconds_per_tile * min(self.in_flight, cost.tiles)
        if queued_own / self.parallelism > tile_budget or cost.seconds / self.parallelism > request_budget:
            REJECTED.labels(reason="work").inc()
            raise ImageTooLargeError(
                f"this image needs about {cost.seconds:.0f} s of model time; more than the "
                f"{self.request_deadline_s:.0f} s a request may take here: send it smaller or in parts")
        if cost.memory > self.memory_budget:
            REJECTED.labels(reason="memory").inc()
            raise ImageTooLargeError(
                f"this request needs about {cost.memory >> 20} MiB; the gateway's memory budget is "
                f"{self.memory_budget >> 20} MiB")

    def release(self, cost: Cost) -> None:
        self.active -= 1
        self.seconds = max(0.0, self.seconds - cost.seconds)
        self.memory = max(0, self.memory - cost.memory)
        ADMITTED_SECONDS.set(self.seconds)
        ADMITTED_BYTES.set(self.memory)
