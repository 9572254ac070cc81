"""The local job store: SQLite in the jobs folder, for the gateways of one host.

One row per job: the record as JSON, plus the columns the queries need (state, creation time,
expiry, reserved bytes). Every change is one ``BEGIN IMMEDIATE`` transaction, so several worker
tasks, or several gateway processes on one folder (uvicorn ``--workers``), never claim one job
twice. WAL journal: readers (status polls) do not wait for the writer; ``synchronous=NORMAL``
keeps every committed transaction across a killed process (only a power cut may lose the last
ones). SQLite calls are short and run in a thread, one at a time per store.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from service.jobs.records import JobRecord
from service.jobs.store import (
    Change,
    QueueFullError,
    StorageFullError,
    StoreUnavailableError,
)
from service.schemas import JobState

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id       TEXT PRIMARY KEY,
    state    TEXT NOT NULL,
    created  REAL NOT NULL,
    expires  REAL,
    expired  INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER NOT NULL,
    record   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created);
"""
BUSY_TIMEOUT_MS = 10_000  # another process's write transaction: wait, do not fail


class LocalJobStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                 timeout=BUSY_TIMEOUT_MS / 1000)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            self._db = db
        return self._db

    async def _run(self, work: Callable[[sqlite3.Connection], T], write: bool = False) -> T:
        def call() -> T:
            with self._lock:
                db = self._connect()
                if not write:
                    return work(db)
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = work(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return result

        try:
            return await asyncio.to_thread(call)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailableError(f"local job store {self.path}: {exc}") from exc

    @staticmethod
    def _load(db: sqlite3.Connection, job_id: str) -> JobRecord | None:
        row = db.execute("SELECT record FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return JobRecord.model_validate_json(row[0]) if row else None

    @staticmethod
    def _save(db: sqlite3.Connection, job: JobRecord) -> None:
        db.execute("INSERT OR REPLACE INTO jobs (id, state, created, expires, expired, reserved, "
                   "record) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (job.id, job.state.value, job.created, job.expires, int(job.expired),
                    job.reserved_bytes, job.model_dump_json()))

    async def add(self, job: JobRecord, *, max_queued: int, max_bytes: int) -> None:
        def add(db: sqlite3.Connection) -> None:
            (queued,) = db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?",
                                   (JobState.QUEUED.value,)).fetchone()
            if queued >= max_queued:
                raise QueueFullError
            (used,) = db.execute("SELECT COALESCE(SUM(reserved), 0) FROM jobs").fetchone()
            if used + job.reserved_bytes > max_bytes:
                (soonest,) = db.execute("SELECT MIN(expires) FROM jobs WHERE expired = 0 AND "
                                        "expires IS NOT NULL").fetchone()
                raise StorageFullError(soonest)
            self._save(db, job)

        await self._run(add, write=True)

    async def get(self, job_id: str) -> JobRecord | None:
        return await self._run(lambda db: self._load(db, job_id))

    async def claim(self, change: Change) -> JobRecord | None:
        def claim(db: sqlite3.Connection) -> JobRecord | None:
            row = db.execute("SELECT record FROM jobs WHERE state = ? ORDER BY created LIMIT 1",
                             (JobState.QUEUED.value,)).fetchone()
            if row is None:
                return None
            job = change(JobRecord.model_validate_json(row[0]))
            if job is not None:
                self._save(db, job)
            return job

        return await self._run(claim, write=True)

    async def update(self, job_id: str, change: Change) -> tuple[JobRecord | None, bool]:
        def update(db: sqlite3.Connection) -> tuple[JobRecord | None, bool]:
            job = self._load(db, job_id)
            new = None if job is None else change(job)
            if new is None:
                return job, False
            self._save(db, new)
            return new, True

        return await self._run(update, write=True)

    async def running(self) -> list[str]:
        rows = await self._run(lambda db: db.execute(
            "SELECT id FROM jobs WHERE state = ?", (JobState.RUNNING.value,)).fetchall())
        return [r[0] for r in rows]

    async def due(self, now: float) -> list[str]:
        rows = await self._run(lambda db: db.execute(
            "SELECT id FROM jobs WHERE expired = 0 AND expires <= ?", (now,)).fetchall())
        return [r[0] for r in rows]

    async def purge(self, before: float) -> None:
        await self._run(lambda db: db.execute(
            "DELETE FROM jobs WHERE expired = 1 AND expires < ?", (before,)), write=True)

    async def stored_bytes(self) -> int:
        (used,) = await self._run(lambda db: db.execute(
            "SELECT COALESCE(SUM(reserved), 0) FROM jobs").fetchone())
        return int(used)

    async def close(self) -> None:
        def close() -> None:
            with self._lock:
                if self._db is not None:
                    self._db.close()
                    self._db = None

        await asyncio.to_thread(close)
