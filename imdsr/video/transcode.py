"""Stream a clip through an upscaler: demux, decode one video frame at a time, upscale it, encode
it into the output with its own timestamp, and carry the other streams (``carry.py``) as their
packets come.

Nothing is held beyond a few frames: the frames being upscaled (``frames_in_flight``, so that a
model that runs a frame whole still gets batches from Triton's dynamic batcher), the encoder's
lookahead (``output.ENCODER_HELD_FRAMES``) and the muxer's interleaving queue; memory does not
grow with the clip's length (tests/unit/test_video_memory.py measures it).

Timestamps: each output frame has its source frame's pts in the source's time base (MP4 keeps
that time base; WebM's muxer rescales to milliseconds), so a variable frame rate stays as it was
and the copied audio stays in sync. PyAV's calls block, so each demux/decode and encode/mux step
runs in the transcode's own worker thread, one after the other (the containers are never used by
two threads at once, even when a cancelled step is still finishing), and the event loop stays
free for the upscaler's Triton calls.

Cancelling (the ``cancel`` event, checked between frames, or the task itself) and every failure
remove the partial output.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.audio.stream
import av.container
import av.error
import av.stream
import av.subtitles.stream
import numpy as np

from imdsr.imaging.geometry import FinalSize
from imdsr.imaging.resampling import LANCZOS, resize_image
from imdsr.video.carry import Action, StreamPlan, plan_streams
from imdsr.video.errors import (
    CorruptVideoError,
    OutputCannotHoldError,
    TranscodeCancelledError,
    VideoError,
)
from imdsr.video.limits import VideoLimits
from imdsr.video.output import MUXER_OPTIONS, OutputSpec, VideoFormat
from imdsr.video.probe import VideoInfo

# upscale_frame(H x W x 3 uint8 RGB, the source's size) -> the upscaled frame, H' x W' x 3 uint8
FrameUpscaler = Callable[[np.ndarray], Awaitable[np.ndarray]]
# on_progress(frames done, frames expected or None where the header does not say)
ProgressCallback = Callable[[int, int | None], None]

ENCODED_PIXEL_FORMAT = "yuv420p"
# Re-encoded audio (a codec the container cannot hold): Opus takes 48 kHz and, without a channel
# mapping, at most stereo; 128 kb/s is transparent for both codecs at stereo.
AUDIO_BIT_RATE = 128_000
OPUS_RATE = 48_000
# Frames upscaling at once: two lets a model that runs a frame whole still batch in Triton's
# dynamic batcher, and overlaps one frame's encode with the next one's inference.
FRAMES_IN_FLIGHT = 2
# Packets of other streams that may arrive before the video's first frame decodes are muxed at
# once; this many demuxed packets with no video frame means the video is not there.
MAX_PACKETS_WITHOUT_FRAME = 20_000


@dataclass(frozen=True)
class TranscodeReport:
    frames: int
    size: tuple[int, int]          # (height, width) of the output frames
    codec: str                     # the video encoder
    carried: tuple[StreamPlan, ...]


@dataclass(frozen=True)
class _Decoded:
    rgb: np.ndarray
    pts: int
    duration: int


def _ffmpeg_message(exc: av.error.FFmpegError) -> str:
    return exc.strerror or str(exc)


class _Media:
    """The two containers and their streams; every method blocks and runs in a worker thread."""

    def __init__(self, source: Path, destination: Path, info: VideoInfo, final: FinalSize,
                 output: OutputSpec, plans: tuple[StreamPlan, ...]) -> None:
        self.info = info
        self.height, self.width = final.size
        try:
            self.input = av.open(str(source), mode="r", metadata_errors="ignore")
        except av.error.FFmpegError as exc:
            raise CorruptVideoError(f"not a readable video container: {_ffmpeg_message(exc)}") from exc
        try:
            self.output = av.open(str(destination), mode="w", format=output.format.value,
                                  options=MUXER_OPTIONS[output.format])
            self._streams(output, plans)
        except BaseException:
            self.close()
            raise

    def _streams(self, output: OutputSpec, plans: tuple[StreamPlan, ...]) -> None:
        self.video_in = self.input.streams[self.info.video_index]
        self.video_out = self._video_stream(output)
        self.carried: dict[int, tuple[av.stream.Stream, av.stream.Stream, StreamPlan]] = {}
        for plan in plans:
            if plan.action is not Action.DROP:
                source_stream = self.input.streams[plan.stream.index]
                self.carried[plan.stream.index] = (source_stream,
                                                   self._carried_stream(source_stream, plan, output),
                                                   plan)
        self.packets = self.input.demux(self.video_in, *(s for s, _, _ in self.carried.values()))
        self.last_pts: int | None = None
        self.step = self._frame_step()

    def _video_stream(self, output: OutputSpec) -> av.stream.Stream:
        spec = output.encoder
        stream = self.output.add_stream(spec.encoder, options={**spec.options,
                                                               "crf": str(output.crf_value)})
        ctx = stream.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = self.width, self.height, ENCODED_PIXEL_FORMAT
        # The source's time base for the encoder and the stream: every pts is carried as it is.
        ctx.time_base = stream.time_base = self.info.time_base
        if self.info.rate:
            ctx.framerate = self.info.rate
        ctx.thread_count = output.threads
        color = self.info.color
        ctx.color_primaries, ctx.color_trc = color.primaries, color.trc
        ctx.colorspace, ctx.color_range = color.space, color.range
        if self.info.display_matrix is not None:
            stream.set_display_matrix(list(self.info.display_matrix))
        return stream

    def _carried_stream(self, source: av.stream.Stream, plan: StreamPlan, output: OutputSpec
                        ) -> av.stream.Stream:
        if plan.action is Action.COPY:
            try:
                return self.output.add_stream_from_template(source)
            except ValueError as exc:  # the query said yes, the muxer no
                raise OutputCannotHoldError(
                    f"stream {source.index} ({plan.stream.codec}) cannot go into "
                    f"{output.format.value}: {exc}") from exc
        if isinstance(source, av.audio.stream.AudioStream):
            opus = output.format is VideoFormat.WEBM
            rate = OPUS_RATE if opus else source.codec_context.sample_rate
            stream = self.output.add_stream(plan.encoder, rate=rate)
            channels = source.codec_context.layout.nb_channels
            stream.codec_context.layout = source.codec_context.layout if channels <= 2 or not opus \
                else "stereo"
            stream.codec_context.bit_rate = AUDIO_BIT_RATE
            return stream
        # A text subtitle: the encoder needs the decoder's ASS header, which it makes when opened.
        assert isinstance(source, av.subtitles.stream.SubtitleStream)
        source.codec_context.open()
        stream = self.output.add_stream(plan.encoder)
        stream.codec_context.subtitle_header = source.codec_context.subtitle_header
        stream.time_base = source.time_base
        return stream

    def _frame_step(self) -> int:
        """A frame's length in time-base units: the pts of a frame that has none."""
        rate = self.info.rate or Fraction(25)
        return max(1, round(1 / (rate * self.info.time_base)))

    # --- reading -------------------------------------------------------------------------------

    def read(self) -> list[_Decoded] | None:
        """Demux until at least one video frame decodes (muxing the other streams' packets on the
        way); None at the end of the clip."""
        try:
            for _ in range(MAX_PACKETS_WITHOUT_FRAME):
                packet = next(self.packets, None)
                if packet is None:
                    return None
                if packet.stream.index != self.video_in.index:
                    self._carry(packet)
                    continue
                frames = [self._rgb(frame) for frame in self.video_in.decode(packet)]
                if frames:
                    return frames
        except av.error.FFmpegError as exc:
            raise CorruptVideoError(f"the clip is broken or truncated: {_ffmpeg_message(exc)}") from exc
        raise CorruptVideoError(f"{MAX_PACKETS_WITHOUT_FRAME} packets with no video frame")

    def _rgb(self, frame: av.VideoFrame) -> _Decoded:
        pts = frame.pts
        if pts is None:
            pts = 0 if self.last_pts is None else self.last_pts + self.step
        if self.last_pts is not None and pts <= self.last_pts:
            # A broken muxer's repeated timestamp: the encoder needs them strictly increasing.
            pts = self.last_pts + 1
        self.last_pts = pts
        # Converted at the header's size (a stream whose frames change size mid-way comes out at
        # one size) with the stream's own matrix and range; the encoder uses the same ones back.
        rgb = frame.reformat(width=self.info.width, height=self.info.height, format="rgb24",
                             src_color_range=frame.color_range).to_ndarray()
        return _Decoded(rgb, pts, frame.duration or self.step)

    def _carry(self, packet: av.Packet) -> None:
        if packet.dts is None:  # the demuxer's end-of-stream marker
            if packet.stream.index in self.carried:
                self._flush_carried(packet.stream.index)
            return
        source, target, plan = self.carried[packet.stream.index]
        if plan.action is Action.COPY:
            packet.stream = target
            self.output.mux(packet)
        elif isinstance(source, av.audio.stream.AudioStream):
            for frame in source.decode(packet):
                frame.pts = None  # the encoder's resampler counts samples from the stream's start
                self.output.mux(target.encode(frame))
        else:
            subtitle = source.codec_context.decode2(packet)
            if subtitle is not None:
                converted = target.codec_context.encode_subtitle(subtitle)
                converted.stream = target
                converted.time_base = packet.time_base
                converted.pts, converted.dts, converted.duration = packet.pts, packet.dts, packet.duration
                self.output.mux(converted)

    def _flush_carried(self, index: int) -> None:
        source, target, plan = self.carried[index]
        if plan.action is Action.ENCODE and isinstance(source, av.audio.stream.AudioStream):
            self.output.mux(target.encode(None))

    # --- writing -------------------------------------------------------------------------------

    def write(self, upscaled: np.ndarray, decoded: _Decoded) -> None:
        try:
            self._write(upscaled, decoded)
        except av.error.FFmpegError as exc:  # the encoder opens on its first frame
            raise VideoError(f"the {self.video_out.codec_context.name} encoder refused the output: "
                             f"{_ffmpeg_message(exc)}") from exc

    def _write(self, upscaled: np.ndarray, decoded: _Decoded) -> None:
        if upscaled.shape[:2] != (self.height, self.width):
            upscaled = resize_image(upscaled, (self.height, self.width), LANCZOS)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(upscaled, dtype=np.uint8),
                                           format="rgb24")
        color = self.info.color
        frame = frame.reformat(format=ENCODED_PIXEL_FORMAT, dst_colorspace=color.space,
                               dst_color_range=color.range)
        frame.pts, frame.duration, frame.time_base = decoded.pts, decoded.duration, self.info.time_base
        self.output.mux(self.video_out.encode(frame))

    def finish(self) -> None:
        self.output.mux(self.video_out.encode(None))
        self.output.close()
        self.input.close()

    def close(self) -> None:
        for name in ("output", "input"):
            container = getattr(self, name, None)
            if container is not None:
                with contextlib.suppress(Exception):
                    container.close()


class _Worker:
    """One thread for one transcode's PyAV calls: a step still running when the transcode is
    cancelled finishes before the clean-up that follows it starts."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imdsr-video")

    async def run(self, fn: Callable[..., object], *args: object) -> object:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def open(self, source: Path, destination: Path, info: VideoInfo, final: FinalSize,
                   output: OutputSpec, plans: tuple[StreamPlan, ...]) -> _Media:
        try:
            media = await self.run(_Media, source, destination, info, final, output, plans)
        except av.error.FFmpegError as exc:  # an encoder that refuses the size or the options
            raise VideoError(f"the {output.video_codec.value} encoder refused the output: "
                             f"{_ffmpeg_message(exc)}") from exc
        assert isinstance(media, _Media)
        return media


def check_complete(info: VideoInfo, first_pts: int, end_pts: int) -> None:
    """A clip whose frames stop well before the duration its header gives is truncated or broken
    (Matroska's demuxer ends quietly at a cut or at garbage; MP4's raises). Allowed short: three
    frames or 5%, whichever is more (a header's rounding, a last frame's missing duration)."""
    expected = info.video_duration_s
    if expected is None:
        return
    reached = float((end_pts - first_pts) * info.time_base)
    frame_s = float(1 / info.rate) if info.rate else 0.04
    if reached < expected - max(3 * frame_s, 0.05 * expected):
        raise CorruptVideoError(f"the clip is truncated or broken: its frames end at {reached:.2f} s "
                                f"of the {expected:.2f} s its header gives")


class _Run:
    """One transcode's loop: frames decoded, upscaling (``frames_in_flight`` at once) and
    encoded in order."""

    def __init__(self, worker: _Worker, media: _Media, upscale_frame: FrameUpscaler,
                 info: VideoInfo, final: FinalSize, limits: VideoLimits,
                 on_progress: ProgressCallback | None, cancel: asyncio.Event | None) -> None:
        self.worker, self.media, self.upscale_frame = worker, media, upscale_frame
        self.info, self.final, self.limits = info, final, limits
        self.on_progress, self.cancel = on_progress, cancel
        self.pending: deque[tuple[_Decoded, asyncio.Task[np.ndarray]]] = deque()
        self.decoded = self.done = 0
        self.first_pts: int | None = None
        self.end_pts = 0

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise TranscodeCancelledError("cancelled")

    def _start(self, frame: _Decoded) -> None:
        self._check_cancel()
        self.decoded += 1
        if self.first_pts is None:
            self.first_pts = frame.pts
        self.end_pts = frame.pts + frame.duration
        self.limits.check_running(self.decoded, float((frame.pts - self.first_pts) * self.info.time_base),
                                  self.final.pixels)
        self.pending.append((frame, asyncio.create_task(self.upscale_frame(frame.rgb))))

    async def _encode_oldest(self) -> None:
        frame, task = self.pending.popleft()
        upscaled = await task
        await self.worker.run(self.media.write, upscaled, frame)
        self.done += 1
        if self.on_progress is not None:
            self.on_progress(self.done, self.info.frames)

    async def run(self, frames_in_flight: int) -> None:
        while (batch := await self.worker.run(self.media.read)) is not None:
            assert isinstance(batch, list)
            for frame in batch:
                self._start(frame)
                if len(self.pending) >= frames_in_flight:
                    await self._encode_oldest()
        while self.pending:
            self._check_cancel()
            await self._encode_oldest()
        if self.first_pts is None:
            raise CorruptVideoError("the video stream has no frame that decodes")
        check_complete(self.info, self.first_pts, self.end_pts)
        await self.worker.run(self.media.finish)

    async def abandon(self) -> None:
        """Stop the frames still upscaling and close the containers (after any step running)."""
        for _, task in self.pending:
            task.cancel()
        await asyncio.gather(*(task for _, task in self.pending), return_exceptions=True)
        await self.worker.run(self.media.close)


async def transcode(source: Path, destination: Path, upscale_frame: FrameUpscaler, *,
                    info: VideoInfo, final: FinalSize, output: OutputSpec, limits: VideoLimits,
                    on_progress: ProgressCallback | None = None,
                    cancel: asyncio.Event | None = None,
                    frames_in_flight: int = FRAMES_IN_FLIGHT
                    ) -> TranscodeReport:
    """Upscale every video frame of ``source`` (``info`` from ``probe``) with ``upscale_frame``
    into ``destination``, each frame at ``final.size`` (resized there if the upscaler returns
    another size), the other streams carried as ``carry.plan_streams`` says. ``limits`` are held
    while it runs (a header can lie); ``on_progress`` follows the frames encoded. Raises
    ``CorruptVideoError`` for a clip that breaks mid-way, ``VideoLimitError``,
    ``OutputCannotHoldError``, ``TranscodeCancelledError`` when ``cancel`` is set, and whatever
    ``upscale_frame`` raises; the partial output is removed on every one of them."""
    if final.size[0] % 2 or final.size[1] % 2:
        raise ValueError(f"4:2:0 output needs even sides, not {final.size} (output.video_final)")
    plans = plan_streams(info, output.format)
    worker = _Worker()
    try:
        try:
            media = await worker.open(source, destination, info, final, output, plans)
        except BaseException:
            destination.unlink(missing_ok=True)
            raise
        run = _Run(worker, media, upscale_frame, info, final, limits, on_progress, cancel)
        try:
            await run.run(frames_in_flight)
        except BaseException:
            await run.abandon()
            destination.unlink(missing_ok=True)
            raise
        return TranscodeReport(run.done, final.size, output.encoder.encoder, plans)
    finally:
        worker.pool.shutdown(wait=False)
