"""The job stores (service/jobs/): each behaviour once, run against SQLite and a real redis-server.

What the runner and the routes rely on: the oldest queued job first, never one job to two
claimers, the limits checked with the insert, a change applied atomically, recovery of a job
whose gateway died, expiry, tombstones, and the bytes reserved kept equal to the records'.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from service.jobs import records
from service.jobs.local_store import LocalJobStore
from service.jobs.records import JobRecord
from service.jobs.store import JobStore, QueueFullError, StorageFullError, StoreUnavailableError
from service.schemas import ErrorBody, JobProgress, JobState
from tests.support.redis import RedisServer

TTL = 60.0
Make = Callable[[], JobStore]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(params=["local", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Make:
    """A factory of stores on one backend: two of them are two gateways sharing it."""
    if request.param == "redis":
        from service.jobs.redis_store import RedisJobStore

        url = request.getfixturevalue("redis_url")
        prefix = f"test:{request.node.name}:{time.monotonic_ns()}:"
        return lambda: RedisJobStore(url, prefix=prefix)
    return lambda: LocalJobStore(tmp_path / "jobs.sqlite3")


def _run(factory: Make, scenario: Callable[[Make], Awaitable[None]]) -> None:
    """``scenario`` in one event loop (a Redis connection belongs to its loop), its stores closed."""
    async def main() -> None:
        made: list[JobStore] = []

        def make() -> JobStore:
            made.append(factory())
            return made[-1]

        try:
            await scenario(make)
        finally:
            for store in made:
                await store.close()

    asyncio.run(main())


def _job(n: int = 0, reserved: int = 100) -> JobRecord:
    return JobRecord(id=f"job{n:02d}-{records.new_id()}", state=JobState.QUEUED, model="c4",
                     model_reason="asked", options={"format": "png"}, created=1000.0 + n,
                     input_bytes=10, reserved_bytes=reserved)


def _claim(owner: str, lease_s: float = 10.0):  # noqa: ANN202
    return lambda r: records.claimed(r, owner, time.time(), lease_s)


def test_add_get_and_claim_oldest_first(make_store: Make) -> None:
    async def scenario(make: Make) -> None:
        store = make()
        jobs = [_job(n) for n in (2, 0, 1)]
        for job in jobs:
            await store.add(job, max_queued=10, max_bytes=10_000)
        assert await store.get(jobs[0].id) == jobs[0]
        assert await store.get("no-such-job-id-at-all") is None
        order = [(await store.claim(_claim("gw-a"))).id for _ in jobs]
        assert order == [jobs[1].id, jobs[2].id, jobs[0].id]
        assert await store.claim(_claim("gw-a")) is None
        running = await store.get(jobs[1].id)
        assert running.state is JobState.RUNNING and running.owner == "gw-a"
        assert running.attempts == 1
        assert sorted(await store.running()) == sorted(j.id for j in jobs)

    _run(make_store, scenario)


def test_two_gateways_never_claim_one_job_twice(make_store: Make) -> None:
    async def scenario(make: Make) -> None:
        a, b = make(), make()
        for n in range(6):
            await a.add(_job(n), max_queued=10, max_bytes=10_000)
        claims = await asyncio.gather(*(s.claim(_claim(f"gw-{i}")) for i, s in
                                        enumerate([a, b] * 6)))
        got = [c.id for c in claims if c is not None]
        assert len(got) == len(set(got)) == 6

    _run(make_store, scenario)


def test_queue_and_byte_limits_are_checked_with_the_insert(make_store: Make) -> None:
    async def scenario(make: Make) -> None:
        store = make()
        await store.add(_job(0, reserved=600), max_queued=2, max_bytes=1000)
        with pytest.raises(StorageFullError) as full:
            await store.add(_job(1, reserved=500), max_queued=2, max_bytes=1000)
        assert full.value.next_expiry is None  # nothing finished: nothing will expire
        await store.add(_job(2, reserved=400), max_queued=2, max_bytes=1000)
        with pytest.raises(QueueFullError):
            await store.add(_job(3, reserved=1), max_queued=2, max_bytes=1000)
        assert await store.stored_bytes() == 1000
        # A claim frees a queue place, not bytes; the result's real size replaces the reserve.
        job = await store.claim(_claim("gw-a"))
        await store.add(_job(4, reserved=0), max_queued=2, max_bytes=1000)
        now = time.time()
        _, stored = await store.update(
            job.id, lambda r: records.done(r, "gw-a", {}, 250, JobProgress(), now, TTL))
        assert stored and await store.stored_bytes() == 650
        with pytest.raises(StorageFullError) as full:
            await store.add(_job(5, reserved=400), max_queued=3, max_bytes=1000)
        assert full.value.next_expiry == pytest.approx(now + TTL)

    _run(make_store, scenario)


def test_heartbeat_cancel_and_a_finish_that_lost_its_job(make_store: Make) -> None:
    async def scenario(make: Make) -> None:
        worker, other = make(), make()
        await worker.add(_job(0), max_queued=10, max_bytes=10_000)
        job = await worker.claim(_claim("gw-a"))
        progress = JobProgress(tiles_done=3, tiles_total=12, frames_done=0, frames_total=1)
        now = time.time()
        beat, changed = await worker.update(
            job.id, lambda r: records.beaten(r, "gw-a", progress, now, 10.0))
        assert changed and beat.progress == progress
        assert (await other.get(job.id)).progress.tiles_done == 3
        # Cancelled through another gateway: the worker's next heartbeat and its finish see it.
        cancelled, changed = await other.update(job.id, lambda r: records.cancelled(r, now, TTL))
        assert changed and cancelled.state is JobState.CANCELLED
        assert cancelled.reserved_bytes == 0 and await other.stored_bytes() == 0
        _, changed = await worker.update(
            job.id, lambda r: records.beaten(r, "gw-a", progress, now, 10.0))
        assert not changed
        _, stored = await worker.update(
            job.id, lambda r: records.done(r, "gw-a", {}, 5, progress, now, TTL))
        assert not stored and await worker.stored_bytes() == 0
        assert await worker.running() == []

    _run(make_store, scenario)


def test_recovery_requeues_then_fails_a_job_whose_gateway_died(make_store: Make) -> None:
    async def scenario(make: Make) -> None:
        store = make()
        await store.add(_job(0), max_queued=10, max_bytes=10_000)
        for attempt in range(1, records.MAX_ATTEMPTS + 1):
            job = await store.claim(_claim(f"gw-{attempt}", lease_s=0.2))
            assert job is not None and job.attempts == attempt
            _, changed = await store.update(job.id, lambda r: records.recovered(r, time.time(), TTL))
            assert not changed  # its lease holds: its gateway may still be alive
            await asyncio.sleep(0.3)
            job, changed = await store.update(job.id, lambda r: records.recovered(r, time.time(), TTL))
            assert changed
        assert job.state is JobState.FAILED and job.error.error == records.INTERRUPTED
        assert await store.claim(_claim("gw-x")) is None and await store.running() == []

    _run(make_store, scenario)


def test_graceful_requeue_does_not_count_an_attempt(make_store: Make) -> None:
    async def scenario(make: Make) -> None:
        store = make()
        await store.add(_job(0), max_queued=10, max_bytes=10_000)
        job = await store.claim(_claim("gw-a"))
        back, changed = await store.update(job.id, lambda r: records.requeued(r, "gw-a"))
        assert changed and back.state is JobState.QUEUED and back.attempts == 0
        assert (await store.claim(_claim("gw-b"))).owner == "gw-b"

    _run(make_store, scenario)


def test_expiry_tombstone_then_purge(make_store: Make) -> None:
    async def scenario(make: Make) -> None:
        store = make()
        ok, bad = _job(0), _job(1)
        for job in (ok, bad):
            await store.add(job, max_queued=10, max_bytes=10_000)
            await store.claim(_claim("gw-a"))
        now = time.time()
        await store.update(ok.id, lambda r: records.done(
            r, "gw-a", {"X-Model": "c4"}, 50, JobProgress(), now, 1.0))
        await store.update(bad.id, lambda r: records.failed(
            r, "gw-a", ErrorBody(error="triton_error", detail="x"), now, 1.0))
        assert await store.due(now) == []
        assert sorted(await store.due(now + 1.0)) == sorted([ok.id, bad.id])
        for job_id in await store.due(now + 1.0):
            _, changed = await store.update(job_id, lambda r: records.expired(r, now + 1.0))
            assert changed
        tomb = await store.get(ok.id)
        assert tomb.expired and not tomb.result_ready and await store.stored_bytes() == 0
        assert await store.due(now + 5.0) == []
        await store.purge(now)  # not yet: expired at now + 1
        assert await store.get(ok.id) is not None
        await store.purge(now + 2.0)
        assert await store.get(ok.id) is None and await store.get(bad.id) is None

    _run(make_store, scenario)


def test_unreachable_store_is_reported_not_crashed(tmp_path: Path) -> None:
    from service.jobs.redis_store import RedisJobStore
    from triton_host.launcher import free_ports

    (port,) = free_ports(1)  # nothing listens there
    redis_store = RedisJobStore(f"redis://127.0.0.1:{port}/0")
    (tmp_path / "file").write_text("not a folder")
    local = LocalJobStore(tmp_path / "file" / "jobs.sqlite3")

    async def scenario() -> None:
        for store in (redis_store, local):
            with pytest.raises(StoreUnavailableError):
                await store.get("job00-abcdefghijklmnop")
            await store.close()

    asyncio.run(scenario())
