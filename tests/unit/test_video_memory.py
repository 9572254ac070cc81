"""A clip is streamed (issue 28): the transcode's memory high-water mark does not grow with the
clip's length. Each clip is transcoded in a fresh process, whose peak RSS (the kernel's VmHWM,
FFmpeg's own buffers included, which tracemalloc would not see) is the figure compared.
``ru_maxrss`` would not do: Linux carries it across exec, so the child would report the test
process's own peak."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from imdsr.video.synthetic import ClipSpec, write_clip

FPS = 15
SIZE = (160, 96)  # x4: 640 x 384, 0.74 MB an RGB frame
# Holding every frame of the 8 s clip would add 90 x 0.74 MB = 66 MB over the 2 s one. Measured
# peaks: 1 s 116 MiB, 2 s 125, 8 s 127, 16 s 127 (the first second fills the encoder's
# lookahead; after that it is flat).
MAX_GROWTH_BYTES = 16 << 20

CHILD = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    import numpy as np
    from imdsr.video.limits import VideoLimits
    from imdsr.video.output import OutputSpec, video_final
    from imdsr.video.probe import probe
    from imdsr.video.transcode import transcode

    async def x4(rgb):
        return np.repeat(np.repeat(rgb, 4, axis=0), 4, axis=1)

    limits = VideoLimits(max_video_seconds=60, max_video_frames=10_000, max_input_pixels=1 << 20,
                         max_output_pixels=1 << 24, max_video_output_pixels_total=1 << 40)
    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    info = probe(source, limits)
    report = asyncio.run(transcode(source, out, x4, info=info, final=video_final(info),
                                   output=OutputSpec(threads=1), limits=limits))
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    print(report.frames, int(status["VmHWM"].split()[0]) * 1024)
""")


def _peak(source: Path, out: Path) -> tuple[int, int]:
    done = subprocess.run([sys.executable, "-c", CHILD, str(source), str(out)], check=True,
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    frames, peak = done.stdout.split()
    return int(frames), int(peak)


def test_peak_memory_does_not_grow_with_the_clip_length(tmp_path: Path) -> None:
    peaks = {}
    for seconds in (2, 8):
        clip = write_clip(tmp_path / f"{seconds}s.mp4",
                          ClipSpec(seconds=seconds, fps=FPS, width=SIZE[0], height=SIZE[1]))
        frames, peaks[seconds] = _peak(clip, tmp_path / f"{seconds}s.out.mp4")
        assert frames == seconds * FPS
    growth = peaks[8] - peaks[2]
    print(f"\npeak RSS: 2 s clip {peaks[2] >> 20} MiB, 8 s clip {peaks[8] >> 20} MiB "
          f"(growth {growth / 2**20:.1f} MiB)")
    assert growth < MAX_GROWTH_BYTES
