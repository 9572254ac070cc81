"""The video core's refusals as the gateway's JSON errors, and its limits from the settings.

Unsupported container or codec: 415; broken or truncated: 400; past a limit: 413 naming the
setting; a stream the output cannot hold, or an encoder that refuses the output: 422.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import ValidationError

from imdsr.video.errors import (
    CorruptVideoError,
    UnsupportedVideoError,
    VideoError,
    VideoLimitError,
)
from imdsr.video.limits import VideoLimits
from imdsr.video.output import OutputSpec, VideoCodec, VideoFormat
from service import errors
from service.metrics import REJECTED
from service.settings import Settings


class CorruptVideoApiError(errors.ApiError):
    status, code = 400, "corrupt_video"


class VideoTooLargeError(errors.ApiError):
    status, code = 413, "video_too_large"


def limits_for(settings: Settings) -> VideoLimits:
    return VideoLimits(max_video_seconds=settings.max_video_seconds,
                       max_video_frames=settings.max_video_frames,
                       max_input_pixels=settings.max_input_pixels,
                       max_output_pixels=settings.max_output_pixels,
                       max_video_output_pixels_total=settings.max_video_output_pixels_total)


def output_for(settings: Settings, fmt: VideoFormat = VideoFormat.MP4, codec: VideoCodec | None = None,
               crf: int | None = None) -> OutputSpec:
    """The request's format, codec and CRF, else the gateway's CRF (``video_crf``), else the
    codec's own; a codec the format cannot hold or a CRF out of its range is a 422."""
    try:
        return OutputSpec(format=fmt, codec=codec, crf=crf if crf is not None else settings.video_crf)
    except ValidationError as exc:
        raise errors.InvalidParameterError(
            [{"loc": ["query", *map(str, e["loc"])], "msg": e["msg"]} for e in exc.errors()]) from exc


def as_api_error(exc: VideoError) -> errors.ApiError:
    if isinstance(exc, VideoLimitError):
        REJECTED.labels(reason="video_limit").inc()
        return VideoTooLargeError({"msg": str(exc), "limit": exc.limit, "value": exc.value,
                                   "max": exc.maximum})
    if isinstance(exc, UnsupportedVideoError):
        return errors.UnsupportedMediaTypeError(str(exc))
    if isinstance(exc, CorruptVideoError):
        return CorruptVideoApiError(str(exc))
    # OutputCannotHoldError, or an encoder that refuses the size or the options
    return errors.InvalidParameterError(str(exc))


@contextmanager
def refused() -> Iterator[None]:
    """Around a probe or a transcode: a ``VideoError`` leaves as its gateway error."""
    try:
        yield
    except VideoError as exc:
        raise as_api_error(exc) from exc
