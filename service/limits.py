"""Admission control: at most N ``/upscale`` requests at once; the next gets 429 at once.

Refusing instead of queueing keeps latency bounded and tells load balancers/clients to back off
(Retry-After), rather than piling images up in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request

from service.errors import TooManyRequestsError
from service.metrics import IN_FLIGHT, REJECTED


class ConcurrencyLimit:
    def __init__(self, limit: int, retry_after_s: int) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.active = 0  # one event loop: no lock needed between check and increment

    def acquire(self) -> None:
        if self.active >= self.limit:
            REJECTED.labels(reason="concurrency").inc()
            raise TooManyRequestsError(
                f"more than {self.limit} concurrent requests; retry later",
                headers={"Retry-After": str(self.retry_after_s)})
        self.active += 1
        IN_FLIGHT.inc()

    def release(self) -> None:
        self.active -= 1
        IN_FLIGHT.dec()


async def upscale_slot(request: Request) -> AsyncIterator[None]:
    """Dependency: hold one of the concurrency slots for the duration of the request."""
    limit: ConcurrencyLimit = request.app.state.limit
    limit.acquire()
    try:
        yield
    finally:
        limit.release()
