"""Request slots: at most N ``/upscale`` requests in the gateway at once; the next gets 429 at once.

A slot is held for the whole request, from before its body is read, so it bounds what admission
(service/admission.py) cannot see yet: bodies being streamed in and decoded, whose work is not
known until their header is. Refusing instead of queueing keeps latency bounded and tells load
balancers and clients to back off (Retry-After), rather than piling images up in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request

from service.errors import TooManyRequestsError
from service.metrics import IN_FLIGHT, REJECTED


class RequestSlots:
    """``limit`` slots for concurrent requests; ``take`` one or raise 429, ``give_back`` it."""

    def __init__(self, limit: int, retry_after_s: int) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.active = 0  # one event loop: no lock needed between check and increment

    def take(self) -> None:
        if self.active >= self.limit:
            REJECTED.labels(reason="concurrency").inc()
            raise TooManyRequestsError(
                f"more than {self.limit} concurrent requests; retry later",
                headers={"Retry-After": str(self.retry_after_s)})
        self.active += 1
        IN_FLIGHT.inc()

    def give_back(self) -> None:
        self.active -= 1
        IN_FLIGHT.dec()


async def upscale_slot(request: Request) -> AsyncIterator[None]:
    """Dependency: hold one of the request slots for the duration of the request."""
    slots: RequestSlots = request.app.state.slots
    slots.take()
    try:
        yield
    finally:
        slots.give_back()
