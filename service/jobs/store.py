"""What a job store does, and which one the settings name.

A store keeps ``JobRecord``s outside the gateway process, so that a restart loses nothing, and
applies changes (service/jobs/records.py) atomically, so that several workers, in one gateway or
in several, never run one job twice nor lose one. It keeps the queue (oldest first), the running
set (for recovery), the finished jobs' expiry times and the bytes reserved on disk. Files are not
its business (service/jobs/files.py). ``open_store`` (service/jobs/stores.py) makes the one the
settings name.

* ``local`` (service/jobs/local_store.py): SQLite in ``IMDSR_JOBS_DIR``; the gateways of one host.
* ``redis://...`` (service/jobs/redis_store.py): Redis; replicas share jobs, and ``IMDSR_JOBS_DIR``
  must be one volume they all mount (docs/DEPLOY.md "Jobs across replicas").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from service.jobs.records import JobRecord

Change = Callable[[JobRecord], JobRecord | None]  # None: leave the record as it is


class StoreUnavailableError(Exception):
    """The store could not be reached or used (Redis down, the folder unwritable): 503."""


class QueueFullError(Exception):
    """``max_queued`` jobs are waiting already."""


class StorageFullError(Exception):
    """The job would take the bytes on disk over the limit; ``next_expiry``: when the earliest
    finished job's files go (None: none is finished)."""

    def __init__(self, next_expiry: float | None) -> None:
        super().__init__("job storage is full")
        self.next_expiry = next_expiry


class JobStore(Protocol):
    async def add(self, job: JobRecord, *, max_queued: int, max_bytes: int) -> None:
        """Store a new queued ``job``, or raise ``QueueFullError`` / ``StorageFullError``."""

    async def get(self, job_id: str) -> JobRecord | None: ...

    async def claim(self, change: Change) -> JobRecord | None:
        """Apply ``change`` to the oldest queued job and return it (None: the queue is empty)."""

    async def update(self, job_id: str, change: Change) -> tuple[JobRecord | None, bool]:
        """The record after ``change`` (None: no such job) and whether it changed."""

    async def running(self) -> list[str]:
        """The ids of running jobs (recovery checks their leases)."""

    async def due(self, now: float) -> list[str]:
        """Finished jobs whose ``expires`` has come and that are not yet expired."""

    async def purge(self, before: float) -> None:
        """Forget tombstones that expired before ``before``."""

    async def stored_bytes(self) -> int: ...

    async def close(self) -> None: ...

