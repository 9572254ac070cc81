"""What becomes of each stream besides the video: copied untouched where the output container
holds its codec, else re-encoded (audio: AAC in MP4, Opus in WebM) or converted (text subtitles:
mov_text in MP4, WebVTT in WebM; the text and its timing kept, styling dropped). Bitmap
subtitles a container cannot hold are refused by name; data, attachment and further video
streams (cover art, a second angle) are not carried and are listed as dropped.

Re-encoded audio is timed from the start of the stream (its first sample at the clip's start):
a source whose sound starts late loses that offset, which a copied stream keeps.

Which codecs a container holds is FFmpeg's own answer (``avformat_query_codec``), so a copy is
only planned where the muxer will take it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

import av
import av.codec
import av.codec.codec

from imdsr.video.errors import OutputCannotHoldError
from imdsr.video.output import VideoFormat
from imdsr.video.probe import StreamInfo, VideoInfo

TEXT_SUBTITLES = frozenset({"subrip", "ass", "ssa", "mov_text", "webvtt", "text"})
AUDIO_ENCODER = {VideoFormat.MP4: "aac", VideoFormat.WEBM: "libopus"}
TEXT_ENCODER = {VideoFormat.MP4: "mov_text", VideoFormat.WEBM: "webvtt"}


class Action(StrEnum):
    COPY = "copy"          # packets remuxed byte for byte
    ENCODE = "encode"      # decoded and encoded into the container's codec
    DROP = "drop"          # not carried


@dataclass(frozen=True)
class StreamPlan:
    stream: StreamInfo
    action: Action
    encoder: str | None = None   # with ENCODE


def _canonical(name: str) -> str:
    for mode in ("r", "w"):
        try:
            return av.codec.Codec(name, mode).canonical_name
        except av.codec.codec.UnknownCodecError:
            continue
    return name


@cache
def holds(fmt: VideoFormat) -> frozenset[str]:
    """The codecs (their own names, as ``probe`` gives them) FFmpeg's muxer for ``fmt`` takes."""
    with av.open(io.BytesIO(), mode="w", format=fmt.value) as muxer:
        return frozenset(_canonical(name) for name in muxer.supported_codecs)


def plan_stream(stream: StreamInfo, fmt: VideoFormat) -> StreamPlan:
    if stream.kind not in ("audio", "subtitle") or stream.codec is None:
        return StreamPlan(stream, Action.DROP)
    if stream.codec in holds(fmt):
        return StreamPlan(stream, Action.COPY)
    if stream.kind == "audio":
        return StreamPlan(stream, Action.ENCODE, AUDIO_ENCODER[fmt])
    if stream.codec in TEXT_SUBTITLES:
        return StreamPlan(stream, Action.ENCODE, TEXT_ENCODER[fmt])
    others = [f.value for f in VideoFormat if f is not fmt and stream.codec in holds(f)]
    hint = f"; {others[0]} can" if others else ""
    raise OutputCannotHoldError(
        f"subtitle stream {stream.index} is {stream.codec} (pictures, not text), which "
        f"{fmt.value} cannot hold{hint}")


def plan_streams(info: VideoInfo, fmt: VideoFormat) -> tuple[StreamPlan, ...]:
    """The plan of every stream but the video, in the source's order."""
    return tuple(plan_stream(s, fmt) for s in info.streams)
