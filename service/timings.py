"""Stage timings of one request: observed into the stage histogram and reported as Server-Timing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from service.metrics import STAGE_SECONDS


class Timings:
    """Seconds per stage (read, decode, infer, encode) of one request, in the order they ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[name] = elapsed
            STAGE_SECONDS.labels(stage=name).observe(elapsed)

    def header(self) -> str:
        return ", ".join(f"{k};dur={v * 1000:.1f}" for k, v in self.seconds.items())
