"""A smoke run of the video benchmarks' parts (bench/video.py: ``imdsr bench video`` and the
video case of ``imdsr bench memory``) on tiny clips, against a real gateway process (its own, for
its high-water mark) in front of the session's Triton. Not a measurement: the figures are the
lead's, on quiet cores (docs/PERFORMANCE.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.service import gateway
from bench.video import BENCH_ENV, format_fps, measure_clip_memory, measure_fps
from imdsr.video.synthetic import ClipSpec

TINY = ClipSpec(seconds=0.5, fps=12, width=64, height=36)


@pytest.mark.timeout(300)
def test_video_benchmarks_run_through_the_service(triton_server, tmp_path: Path) -> None:  # noqa: ANN001
    env = {"IMDSR_JOBS_DIR": str(tmp_path / "jobs"), **BENCH_ENV}
    with gateway(triton_server.grpc_url, "c4", tmp_path / "gateway.log", env) as (pid, url):
        (row,) = measure_fps(url, ["c4"], TINY, TINY, progress=lambda _: None)
        assert row.run.state == "done" and row.run.frames == 6 and row.run.fps > 0, row
        assert row.run.result_bytes > 0 and row.size == "64x36 -> 256x144"
        table = format_fps([row], TINY)
        assert "| c4 | 6 | 64x36 -> 256x144 |" in table and "H.264 CRF 20 out" in table, table
        assert "H.264 CRF 28 out" in format_fps([row], TINY, 28)

        short = measure_clip_memory(pid, url, TINY, "c4", "short")
        longer = measure_clip_memory(pid, url, ClipSpec(seconds=2.0, fps=12, width=64, height=36),
                                     "c4", "4x longer")
    assert short.statuses == longer.statuses == (200,), (short, longer)
    assert longer.output_bytes == 4 * short.output_bytes
    # Streamed: four times the frames do not take four times the memory (loose: tiny clips).
    assert longer.peak_bytes < 2 * short.peak_bytes + (64 << 20), (short, longer)
