"""Admission by work and memory, without a Triton: the arithmetic and the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from imdsr.imaging.tiling import plan_tiles
from service import admission as adm
from service.admission import Cost, WorkAdmission, cgroup_memory_limit, estimate
from service.errors import ImageTooLargeError, TooManyRequestsError
from service.settings import Settings


def _gate(**kw: float) -> WorkAdmission:
    args = {"tile_deadline_s": 10.0, "request_deadline_s": 100.0, "memory_budget": 1 << 30,
            "parallelism": 1, "in_flight": 4, "retry_after_s": 1} | kw
    return WorkAdmission(**args)  # type: ignore[arg-type]


def test_estimate_counts_overlap_channels_and_outscale() -> None:
    plan = plan_tiles(1536, 2048, 256, 32)  # the largest input, 8192x6144 out
    out_pixels = 8192 * 6144
    cost = estimate(plan, 3, 1, out_pixels, seconds_per_mpx=0.3, in_flight=4, window=320)
    assert cost.tiles == len(plan) == 48
    assert cost.output_mpx == pytest.approx(plan.computed_pixels * 16 / 1e6)
    assert cost.seconds == pytest.approx(cost.output_mpx * 0.3)
    out_bytes = out_pixels * 3
    held = adm.HELD_PER_OUTPUT_BYTE * out_bytes  # what `imdsr bench memory` measured, with margin
    assert held < cost.memory < held + 0.4 * out_bytes  # plus the input and 4 tiles in flight
    rgba16 = estimate(plan, 4, 2, out_pixels, 0.3, 4, 320)
    assert rgba16.memory > 2.5 * cost.memory
    half = estimate(plan, 3, 1, out_pixels // 4, 0.3, 4, 320)  # outscale 2: x4 and the resize
    assert half.memory > cost.memory


def test_work_is_admitted_until_the_tile_deadline_then_429_with_retry_after() -> None:
    gate = _gate(tile_deadline_s=12.0)
    cost = Cost(seconds=2.0, seconds_per_tile=0.5, tiles=4, memory=1 << 20, output_mpx=6.0)
    admitted = [gate.admit(cost) for _ in range(3)]  # then 6 s ahead + 2 s own > 7.2 s (60% of 12)
    assert admitted[0].alone and not admitted[1].alone
    with pytest.raises(TooManyRequestsError) as refused:
        gate.admit(cost)
    assert int(refused.value.headers["Retry-After"]) >= 1
    gate.release(admitted[0])
    gate.admit(cost)  # room again once work finishes
    assert gate.seconds == pytest.approx(6.0)


def test_memory_budget_and_requests_too_big_for_any_budget() -> None:
    gate = _gate(memory_budget=100)
    small = Cost(0.1, 0.1, 1, 60)
    gate.admit(small)
    with pytest.raises(TooManyRequestsError, match="memory"):
        gate.admit(small)
    with pytest.raises(ImageTooLargeError, match="memory budget"):
        gate.admit(Cost(0.1, 0.1, 1, 101))
    with pytest.raises(ImageTooLargeError, match="model time"):
        _gate(request_deadline_s=1.0).admit(Cost(5.0, 0.1, 50, 1))


def test_rate_is_learnt_from_lone_requests_only() -> None:
    gate = _gate()
    lone = gate.admit(Cost(1.0, 1.0, 1, 1, output_mpx=2.0))
    busy = gate.admit(Cost(1.0, 1.0, 1, 1, output_mpx=2.0))
    gate.observe("c4", busy, infer_seconds=9.0)  # queued behind the other: not the model's speed
    assert gate.rate("c4", 0.3) == 0.3
    gate.observe("c4", lone, infer_seconds=0.2)
    assert gate.rate("c4", 0.3) == pytest.approx(0.1)
    gate.release(lone)
    gate.release(busy)
    icon = gate.admit(Cost(0.01, 0.01, 1, 1, output_mpx=0.01))  # overhead-bound: not learnt from
    gate.observe("c4", icon, infer_seconds=0.05)
    assert gate.rate("c4", 0.3) == pytest.approx(0.1)
    gate.release(icon)
    slower = gate.admit(Cost(1.0, 1.0, 1, 1, output_mpx=2.0))
    gate.observe("c4", slower, infer_seconds=0.6)  # slower: followed at once
    assert gate.rate("c4", 0.3) == pytest.approx(0.3)
    gate.release(slower)
    faster = gate.admit(Cost(1.0, 1.0, 1, 1, output_mpx=2.0))
    gate.observe("c4", faster, infer_seconds=0.2)  # faster: a quarter of the way
    assert gate.rate("c4", 0.3) == pytest.approx(0.25)


def test_tiles_late_under_load_raise_the_rate_and_admit_less() -> None:
    gate = _gate(tile_deadline_s=10.0)
    gate.rates["c4"] = 0.1
    # Four 0.4 s tiles in Triton at once: the fourth is predicted to wait for all four (1.6 s).
    predicted = [gate.tile_sent(0.4) for _ in range(4)]
    assert predicted == pytest.approx([0.4, 0.8, 1.2, 1.6])
    gate.tile_answered(0.4, "c4", 0.1, predicted[0], latency_s=1.0)  # overhead-bound: not learnt
    assert gate.rate("c4", 0.3) == pytest.approx(0.1)
    gate.tile_answered(0.4, "c4", 0.1, predicted[3], latency_s=3.2)  # twice as slow as predicted
    assert gate.rate("c4", 0.3) == pytest.approx(0.2)
    gate.tile_answered(0.4)  # failed calls are counted out, not learnt from
    gate.tile_answered(0.4)
    assert gate.tile_seconds == pytest.approx(0.0)
    assert gate.tile_sent(0.5) == pytest.approx(0.5)
    gate.tile_answered(0.5)
    # What the learnt rate admits: half the work of a 0.1 s/Mpx estimate fits the tile deadline.
    per_tile = 0.2 * 4.0  # 4 output Mpx a tile at the learnt rate
    gate.admit(Cost(per_tile * 4, per_tile, 4, 1, output_mpx=16.0))
    with pytest.raises(TooManyRequestsError):
        gate.admit(Cost(per_tile * 4, per_tile, 4, 1, output_mpx=16.0))


def test_cgroup_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    v2, v1 = tmp_path / "memory.max", tmp_path / "limit_in_bytes"
    monkeypatch.setattr(adm, "CGROUP_LIMITS", (v2, v1))
    assert cgroup_memory_limit() is None
    v2.write_text("max\n")
    v1.write_text(f"{2 << 30}\n")
    assert cgroup_memory_limit() == 2 << 30
    v2.write_text(f"{1 << 30}\n")
    assert cgroup_memory_limit() == 1 << 30


def test_admission_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(triton_timeout_s=7.0, request_timeout_s=70.0, triton_parallelism=3,
                        tiles_in_flight=5, retry_after_s=2, memory_budget_bytes=123 << 20)
    gate = WorkAdmission.from_settings(settings)
    assert (gate.tile_deadline_s, gate.request_deadline_s, gate.parallelism, gate.in_flight,
            gate.retry_after_s, gate.memory_budget) == (7.0, 70.0, 3, 5, 2, 123 << 20)
    # No budget configured: a share of the container's limit, else the fixed default.
    limit = tmp_path / "memory.max"
    monkeypatch.setattr(adm, "CGROUP_LIMITS", (limit,))
    assert WorkAdmission.from_settings(Settings()).memory_budget == adm.DEFAULT_MEMORY_BUDGET
    limit.write_text(f"{10 << 30}\n")
    assert WorkAdmission.from_settings(Settings()).memory_budget == int(
        adm.MEMORY_SHARE_OF_LIMIT * (10 << 30))
