"""The job store ``IMDSR_JOBS_STORE`` names (service/jobs/store.py says what a store does)."""

from __future__ import annotations

from service.jobs.local_store import LocalJobStore
from service.jobs.store import JobStore
from service.settings import Settings


def open_store(settings: Settings) -> JobStore:
    """SQLite in ``IMDSR_JOBS_DIR`` for "local", else Redis (connections open on first use)."""
    if settings.jobs_store == "local":
        return LocalJobStore(settings.jobs_dir / "jobs.sqlite3")
    from service.jobs.redis_store import RedisJobStore  # redis-py only where Redis is used

    return RedisJobStore(settings.jobs_store)
