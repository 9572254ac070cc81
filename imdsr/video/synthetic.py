"""Synthetic clips with known content: moving detail, a sine tone, optional rotation, variable
frame rate and subtitles. The tests and the benchmarks make their clips here, so no third-party
footage is needed and every figure can be reproduced from a seed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

TONE_HZ = 440.0
SAMPLE_RATE = 48_000
# VFR clips: frame lengths cycle through these, in 1/90000 s (MPEG's clock): 1/30, 1/20, 1/15 s.
VFR_TICKS = (3000, 4500, 6000)
VFR_TIME_BASE = Fraction(1, 90_000)


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class ClipSpec:
    seconds: float = 2.0
    fps: int = 24
    width: int = 96
    height: int = 64
    container: str = "mp4"                      # "mp4", "mov", "matroska", "webm"
    video_codec: str = "libx264"
    audio_codec: str | None = "aac"             # "aac", "libopus", None
    rotation: int | None = None                 # degrees counter-clockwise, as PyAV reads it
    vfr: bool = False
    colorspace: int = 1                         # BT.709 (FFmpeg's enums), limited range
    cues: Sequence[Cue] = field(default_factory=tuple)  # SubRip in MKV, WebVTT in WebM
    seed: int = 0
    crf: int = 18


def frame_picture(index: int, width: int, height: int, texture: np.ndarray) -> np.ndarray:
    """Frame ``index``: a texture scrolling right, a gradient drifting down and a white square
    crossing the picture, so that every frame differs from the last."""
    dx, dy = (index * 3) % width, (index * 2) % height
    picture = np.roll(texture, (dy, dx), axis=(0, 1)).astype(np.int32)
    ramp = (np.arange(height)[:, None] * 3 + index * 4) % 96
    picture[..., 1] = (picture[..., 1] // 2 + ramp).clip(0, 255)
    side = max(4, min(width, height) // 6)
    top, left = (index * 2) % (height - side), (index * 5) % (width - side)
    picture[top:top + side, left:left + side] = 255
    return picture.astype(np.uint8)


def texture_for(width: int, height: int, seed: int) -> np.ndarray:
    """Smoothed noise: detail an upscaler has something to do with, that a codec can still hold."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, size=(height // 4 + 1, width // 4 + 1, 3)).astype(np.float32)
    big = np.repeat(np.repeat(noise, 4, axis=0), 4, axis=1)[:height, :width]
    blurred = (big + np.roll(big, 1, 0) + np.roll(big, 1, 1) + np.roll(big, (1, 1), (0, 1))) / 4
    return blurred.astype(np.uint8)


def frame_times(spec: ClipSpec) -> Iterator[tuple[int, int]]:
    """(pts, duration) of every frame, in the clip's time base."""
    if not spec.vfr:
        for i in range(round(spec.seconds * spec.fps)):
            yield i, 1
        return
    pts, i, end = 0, 0, spec.seconds / VFR_TIME_BASE
    while pts < end:
        ticks = VFR_TICKS[i % len(VFR_TICKS)]
        yield pts, ticks
        pts, i = pts + ticks, i + 1


def _subtitle_source(spec: ClipSpec, folder: Path) -> Path:
    def stamp(seconds: float, sep: str) -> str:
        ms = round(seconds * 1000)
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"

    if spec.container == "webm":
        path = folder / "cues.vtt"
        body = "WEBVTT\n\n" + "".join(f"{stamp(c.start_s, '.')} --> {stamp(c.end_s, '.')}\n{c.text}\n\n"
                                      for c in spec.cues)
    else:
        path = folder / "cues.srt"
        body = "".join(f"{n}\n{stamp(c.start_s, ',')} --> {stamp(c.end_s, ',')}\n{c.text}\n\n"
                       for n, c in enumerate(spec.cues, 1))
    path.write_text(body)
    return path


def _tone(spec: ClipSpec, out: av.container.OutputContainer, stream: av.audio.stream.AudioStream
          ) -> None:
    total = round(SAMPLE_RATE * spec.seconds)
    t = np.arange(total) / SAMPLE_RATE
    samples = (0.3 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)
    chunk = 960  # 20 ms; the encoder's resampler regroups them into its own frame size
    for start in range(0, total, chunk):
        frame = av.AudioFrame.from_ndarray(samples[None, start:start + chunk], format="flt",
                                           layout="mono")
        frame.sample_rate, frame.pts = SAMPLE_RATE, start
        frame.time_base = Fraction(1, SAMPLE_RATE)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def write_clip(path: Path, spec: ClipSpec = ClipSpec()) -> Path:
    """Write the clip ``spec`` describes to ``path``."""
    with tempfile.TemporaryDirectory() as folder, av.open(str(path), "w", format=spec.container) as out:
        video = out.add_stream(spec.video_codec, rate=spec.fps, options={"crf": str(spec.crf)})
        ctx = video.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = spec.width, spec.height, "yuv420p"
        time_base = VFR_TIME_BASE if spec.vfr else Fraction(1, spec.fps)
        ctx.time_base = video.time_base = time_base
        ctx.color_primaries = ctx.color_trc = ctx.colorspace = spec.colorspace
        ctx.color_range = 1
        if spec.rotation is not None:
            video.set_display_rotation(spec.rotation)
        audio = None
        if spec.audio_codec:
            audio = out.add_stream(spec.audio_codec, rate=SAMPLE_RATE)
            audio.codec_context.layout = "mono"
        subtitles = None
        if spec.cues:
            cues = av.open(str(_subtitle_source(spec, Path(folder))))
            subtitles = (cues, cues.streams.subtitles[0],
                         out.add_stream_from_template(cues.streams.subtitles[0]))
        texture = texture_for(spec.width, spec.height, spec.seed)
        for i, (pts, duration) in enumerate(frame_times(spec)):
            frame = av.VideoFrame.from_ndarray(frame_picture(i, spec.width, spec.height, texture),
                                               format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace=spec.colorspace,
                                   dst_color_range=1)
            frame.pts, frame.duration, frame.time_base = pts, duration, time_base
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            _tone(spec, out, audio)
        if subtitles is not None:
            cues, source, target = subtitles
            for packet in cues.demux(source):
                if packet.dts is not None:
                    packet.stream = target
                    out.mux(packet)
            cues.close()
    return path
