"""The Redis job store: replicas of the gateway share jobs (``IMDSR_JOBS_STORE=redis://...``).

Keys, under ``imdsr:jobs:``:

* ``job:<id>``: the record as a hash, one field per record field (JSON values);
* ``queued``: a sorted set of the queued ids by creation time (oldest first);
* ``running``: the set of running ids (recovery checks their leases);
* ``expiry``: finished, not yet expired ids by ``expires``; ``tombstones``: expired ids by
  ``expires``, purged after another TTL;
* ``bytes``: the bytes reserved on disk, all jobs together.

Every change is an optimistic transaction (WATCH the record, read it, apply the change from
service/jobs/records.py, MULTI/EXEC the record and the indexes together; retried if another
replica wrote in between), so a job is claimed by one replica only and the indexes never
disagree with the records.

Results and inputs stay files in ``IMDSR_JOBS_DIR``, which the replicas must share (a
ReadWriteMany volume: docs/DEPLOY.md "Jobs across replicas"), rather than values in Redis: a
result is up to hundreds of MB (8192x8192 PNG), which would sit in Redis's memory and its
snapshots, and an answer would have to pass through the gateway's memory to leave Redis. A file is
streamed from disk to the socket and never held.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError, WatchError

from service.jobs.records import JobRecord
from service.jobs.store import (
    Change,
    QueueFullError,
    StorageFullError,
    StoreUnavailableError,
)
from service.schemas import JobState

T = TypeVar("T")

PREFIX = "imdsr:jobs:"
# A transaction that lost this many races in a row is reported, not retried for ever.
MAX_RETRIES = 100
SOCKET_TIMEOUT_S = 5.0


def _encode(job: JobRecord) -> dict[str, str]:
    return {name: json.dumps(value) for name, value in job.model_dump(mode="json").items()}


def _decode(raw: dict[str, str]) -> JobRecord:
    return JobRecord.model_validate({name: json.loads(value) for name, value in raw.items()})


class RedisJobStore:
    def __init__(self, url: str, prefix: str = PREFIX) -> None:
        self.redis = aioredis.from_url(url, decode_responses=True, socket_timeout=SOCKET_TIMEOUT_S,
                                       socket_connect_timeout=SOCKET_TIMEOUT_S,
                                       health_check_interval=30)
        self.url = url
        self.queued, self.running_ids = f"{prefix}queued", f"{prefix}running"
        self.expiry, self.tombstones = f"{prefix}expiry", f"{prefix}tombstones"
        self.bytes = f"{prefix}bytes"
        self._prefix = prefix

    def _job(self, job_id: str) -> str:
        return f"{self._prefix}job:{job_id}"

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        except WatchError:
            raise
        except (RedisError, OSError) as exc:
            raise StoreUnavailableError(f"Redis job store: {exc}") from exc

    def _write(self, pipe: aioredis.client.Pipeline, old: JobRecord | None, new: JobRecord) -> None:
        """The record and every index it is in, as of ``new`` (inside MULTI)."""
        pipe.hset(self._job(new.id), mapping=_encode(new))
        if new.state is JobState.QUEUED:
            pipe.zadd(self.queued, {new.id: new.created})
        else:
            pipe.zrem(self.queued, new.id)
        if new.state is JobState.RUNNING:
            pipe.sadd(self.running_ids, new.id)
        else:
            pipe.srem(self.running_ids, new.id)
        if new.state.final and new.expires is not None:
            if new.expired:
                pipe.zrem(self.expiry, new.id)
                pipe.zadd(self.tombstones, {new.id: new.expires})
            else:
                pipe.zadd(self.expiry, {new.id: new.expires})
        delta = new.reserved_bytes - (old.reserved_bytes if old else 0)
        if delta:
            pipe.incrby(self.bytes, delta)

    async def _transaction(self, body: Callable[[aioredis.client.Pipeline], Awaitable[T]]) -> T:
        async with self._guard(), self.redis.pipeline(transaction=True) as pipe:
            for _ in range(MAX_RETRIES):
                try:
                    return await body(pipe)
                except WatchError:
                    await pipe.reset()
            raise StoreUnavailableError("Redis job store: too much contention on one job")

    async def add(self, job: JobRecord, *, max_queued: int, max_bytes: int) -> None:
        async def add(pipe: aioredis.client.Pipeline) -> None:
            await pipe.watch(self.queued, self.bytes)
            if await pipe.zcard(self.queued) >= max_queued:
                raise QueueFullError
            used = int(await pipe.get(self.bytes) or 0)
            if used + job.reserved_bytes > max_bytes:
                soonest = await pipe.zrange(self.expiry, 0, 0, withscores=True)
                raise StorageFullError(soonest[0][1] if soonest else None)
            pipe.multi()
            self._write(pipe, None, job)
            await pipe.execute()

        await self._transaction(add)

    async def get(self, job_id: str) -> JobRecord | None:
        async with self._guard():
            raw = await self.redis.hgetall(self._job(job_id))
        return _decode(raw) if raw else None

    async def claim(self, change: Change) -> JobRecord | None:
        async def claim(pipe: aioredis.client.Pipeline) -> JobRecord | None:
            while True:
                await pipe.watch(self.queued)
                oldest = await pipe.zrange(self.queued, 0, 0)
                if not oldest:
                    await pipe.unwatch()
                    return None
                key = self._job(oldest[0])
                await pipe.watch(key)
                raw = await pipe.hgetall(key)
                job = _decode(raw) if raw else None
                new = None if job is None or job.state is not JobState.QUEUED else change(job)
                pipe.multi()
                if new is None:  # an index entry without its job: drop it, look again
                    pipe.zrem(self.queued, oldest[0])
                    await pipe.execute()
                    continue
                self._write(pipe, job, new)
                await pipe.execute()
                return new

        return await self._transaction(claim)

    async def update(self, job_id: str, change: Change) -> tuple[JobRecord | None, bool]:
        key = self._job(job_id)

        async def update(pipe: aioredis.client.Pipeline) -> tuple[JobRecord | None, bool]:
            await pipe.watch(key)
            raw = await pipe.hgetall(key)
            job = _decode(raw) if raw else None
            new = None if job is None else change(job)
            if new is None:
                await pipe.unwatch()
                return job, False
            pipe.multi()
            self._write(pipe, job, new)
            await pipe.execute()
            return new, True

        return await self._transaction(update)

    async def running(self) -> list[str]:
        async with self._guard():
            return sorted(await self.redis.smembers(self.running_ids))

    async def due(self, now: float) -> list[str]:
        async with self._guard():
            return list(await self.redis.zrangebyscore(self.expiry, "-inf", now))

    async def purge(self, before: float) -> None:
        async with self._guard():
            old = await self.redis.zrangebyscore(self.tombstones, "-inf", f"({before}")
            if old:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.delete(*(self._job(i) for i in old))
                    pipe.zrem(self.tombstones, *old)
                    await pipe.execute()

    async def stored_bytes(self) -> int:
        async with self._guard():
            return int(await self.redis.get(self.bytes) or 0)

    async def close(self) -> None:
        await self.redis.aclose()
