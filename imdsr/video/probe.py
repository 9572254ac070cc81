"""What a clip is, from its container's header, before any work: streams, size, duration, frame
count, colour tags and orientation.

``probe`` reads the header, lets the caller's limits refuse the clip (``VideoLimits.check_input``)
and only then decodes the first frame: FFmpeg reports a stream's display matrix (a phone's
rotation) on decoded frames, not on the stream, and a first frame that does not decode is a
broken file found before any upscaling is admitted.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import av.container
import av.error
import av.sidedata.sidedata
import av.stream
import av.video.stream

from imdsr.video.errors import CorruptVideoError, UnsupportedVideoError

if TYPE_CHECKING:
    from imdsr.video.limits import VideoLimits

# FFmpeg's demuxer names: MP4 and MOV share one, MKV and WebM the other.
CONTAINERS = {"mov,mp4,m4a,3gp,3g2,mj2": "mp4/mov", "matroska,webm": "mkv/webm"}
# The video codecs read (each where the wheel has its decoder: libdav1d for AV1).
VIDEO_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1"})
# AV_TIME_BASE: a container's duration is in microseconds.
MICROSECONDS = 1_000_000


@dataclass(frozen=True)
class ColorTags:
    """FFmpeg's colour enums of the video stream (AVColorPrimaries, ...), carried to the output."""

    primaries: int
    trc: int
    space: int
    range: int


@dataclass(frozen=True)
class StreamInfo:
    """A stream other than the video: audio, subtitle, data or attachment."""

    index: int
    kind: str       # "audio", "subtitle", "data", "attachment", "unknown"
    codec: str | None


@dataclass(frozen=True)
class VideoInfo:
    container: str               # FFmpeg's demuxer name
    codec: str                   # the video codec
    video_index: int
    width: int                   # coded size: the display matrix may turn it (``rotation``)
    height: int
    time_base: Fraction
    rate: Fraction | None        # average frames per second
    duration_s: float | None     # the video's, else the container's (audio or subtitles may run on)
    video_duration_s: float | None   # the video stream's own, where the header says
    frames: int | None           # the header's count, else duration x rate; None when unknown
    frames_exact: bool           # the header counts its frames (MP4) rather than estimated
    pixel_format: str | None
    color: ColorTags
    streams: tuple[StreamInfo, ...]
    display_matrix: tuple[int, ...] | None = None   # 9 int32 (FFmpeg's), from the first frame
    rotation: int = 0            # degrees counter-clockwise the player turns the picture

    @property
    def quarter_turned(self) -> bool:
        """Shown turned by 90 degrees: a target width is then the coded height."""
        return abs(self.rotation) == 90


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.error.FileNotFoundError, av.error.PermissionError):
        raise  # the caller's file, not the upload, is missing
    except av.error.FFmpegError as exc:
        raise CorruptVideoError(f"not a readable video container: {exc.strerror or exc}") from exc


def _stream_duration(stream: av.video.stream.VideoStream) -> float | None:
    """The video stream's own length: MP4's track duration, else the DURATION tag FFmpeg and
    mkvmerge write per Matroska track."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        try:
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            return None
    return None


def _codec_name(stream: av.stream.Stream) -> str | None:
    """The codec's own name ("av1", "subrip"), not its decoder's ("libdav1d", "srt")."""
    ctx = stream.codec_context
    return ctx.codec.canonical_name if ctx is not None else None


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    # Cover art in MP4/MKV is a one-picture "video" stream: not the clip.
    streams = [s for s in container.streams.video
               if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        raise UnsupportedVideoError("the file has no video stream")
    return streams[0]


def read_header(container: av.container.InputContainer) -> VideoInfo:
    """The ``VideoInfo`` of an open container, from its header alone (no orientation yet)."""
    fmt = container.format.name
    if fmt not in CONTAINERS:
        raise UnsupportedVideoError(
            f"container {fmt!r} is not read here; send MP4, MOV, MKV or WebM")
    stream = _video_stream(container)
    ctx = stream.codec_context
    codec = _codec_name(stream)
    if codec not in VIDEO_CODECS:
        raise UnsupportedVideoError(
            f"video codec {codec or 'unknown'!r} is not read here; send H.264, H.265, VP8, VP9 or AV1")
    if not (ctx.width > 0 and ctx.height > 0) or stream.time_base is None:
        raise CorruptVideoError("the video stream's header has no frame size or time base")
    video_duration = _stream_duration(stream)
    duration = video_duration or (container.duration / MICROSECONDS if container.duration else None)
    rate = stream.average_rate or stream.guessed_rate
    exact = stream.frames > 0
    if exact:
        frames: int | None = stream.frames
    elif duration is not None and rate:
        frames = max(1, math.ceil(duration * rate - 0.5))  # rounded: the header's duration is
    else:
        frames = None
    others = tuple(StreamInfo(s.index, s.type, _codec_name(s))
                   for s in container.streams if s.index != stream.index)
    return VideoInfo(
        container=fmt, codec=codec, video_index=stream.index, width=ctx.width, height=ctx.height,
        time_base=stream.time_base, rate=rate, duration_s=duration,
        video_duration_s=video_duration, frames=frames,
        frames_exact=exact, pixel_format=ctx.pix_fmt,
        color=ColorTags(ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range),
        streams=others)


def display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    """The frame's display matrix (9 int32, FFmpeg's layout), or None when it has none."""
    # By type, not by iterating: PyAV 18 iterates the container's types, older ones its entries.
    data = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
    if data is None or data.buffer_size != 36:
        return None
    return struct.unpack("=9i", bytes(data))


def _orientation(container: av.container.InputContainer, info: VideoInfo) -> VideoInfo:
    stream = container.streams[info.video_index]
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                return replace(info, display_matrix=display_matrix(frame), rotation=frame.rotation)
    except av.error.FFmpegError as exc:
        raise CorruptVideoError(f"the first video frame does not decode: {exc.strerror or exc}"
                                ) from exc
    raise CorruptVideoError("the video stream has no frame that decodes")


def probe(path: Path, limits: VideoLimits | None = None) -> VideoInfo:
    """The clip at ``path``: its header, refused by ``limits`` (duration, frames, input pixels)
    before anything is decoded, then its orientation from the first frame. Raises
    ``UnsupportedVideoError``, ``CorruptVideoError`` or ``VideoLimitError``."""
    with _open(path) as container:
        info = read_header(container)
        if limits is not None:
            limits.check_input(info)
        return _orientation(container, info)
