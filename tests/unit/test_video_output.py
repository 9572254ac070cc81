"""The output of a clip (issue 28): the final size of its frames (as for a picture, shown
orientation, even sides) and the encoder choice."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import pytest
from pydantic import ValidationError

from imdsr.imaging.geometry import Fit
from imdsr.video.carry import Action, plan_stream
from imdsr.video.errors import OutputCannotHoldError
from imdsr.video.output import OutputSpec, VideoCodec, VideoFormat, video_final
from imdsr.video.probe import ColorTags, StreamInfo, VideoInfo

CLIP = VideoInfo(container="mov,mp4,m4a,3gp,3g2,mj2", codec="h264", video_index=0, width=320,
                 height=180, time_base=Fraction(1, 12800), rate=Fraction(25), duration_s=2.0,
                 video_duration_s=2.0, frames=50, frames_exact=True, pixel_format="yuv420p",
                 color=ColorTags(1, 1, 1, 1), streams=())


def test_x4_outscale_and_targets_as_for_pictures() -> None:
    assert video_final(CLIP).size == (720, 1280)
    assert video_final(CLIP, outscale=2).size == (360, 640)
    assert video_final(CLIP, width=1920).size == (1080, 1920)
    assert video_final(CLIP, width=1000, height=1000, fit=Fit.FILL).size == (1000, 1000)


def test_odd_sides_are_rounded_down_to_even_for_4_2_0() -> None:
    assert video_final(CLIP, outscale=1.5).size == (270, 480)
    assert video_final(CLIP, width=1001).size == (562, 1000)  # 563.06 x 1001 -> even
    cover = video_final(CLIP, width=501, height=501, fit=Fit.COVER)
    assert cover.size == (500, 500) and cover.crop is not None
    top, left, h, w = cover.crop
    assert (h, w) == (500, 500) and left == (cover.resize[1] - 500) // 2


def test_a_quarter_turned_clip_takes_width_and_height_as_shown() -> None:
    # A phone's portrait clip: stored 320 x 180 and shown 180 x 320. width=360 is the shown
    # width, the stored height: the output is stored 640 x 360 (shown 360 x 640).
    portrait = replace(CLIP, rotation=-90)
    assert video_final(portrait, width=360).size == (360, 640)
    assert video_final(CLIP, width=360).size == (202, 360)


def test_encoders_by_format_and_their_crf() -> None:
    assert (OutputSpec().encoder.encoder, OutputSpec().crf_value) == ("libx264", 20)
    webm = OutputSpec(format=VideoFormat.WEBM)
    assert (webm.video_codec, webm.encoder.encoder, webm.crf_value) == (VideoCodec.VP9, "libvpx-vp9", 32)
    assert OutputSpec(format=VideoFormat.WEBM, codec=VideoCodec.AV1).encoder.encoder == "libsvtav1"
    assert OutputSpec(crf=28).crf_value == 28
    with pytest.raises(ValidationError, match="webm holds vp9, av1"):
        OutputSpec(format=VideoFormat.WEBM, codec=VideoCodec.H264)
    with pytest.raises(ValidationError, match="0..51"):
        OutputSpec(crf=60)


def test_what_each_container_carries() -> None:
    def plan(kind: str, codec: str, fmt: VideoFormat) -> tuple[Action, str | None]:
        p = plan_stream(StreamInfo(1, kind, codec), fmt)
        return p.action, p.encoder

    assert plan("audio", "aac", VideoFormat.MP4) == (Action.COPY, None)
    assert plan("audio", "aac", VideoFormat.WEBM) == (Action.ENCODE, "libopus")
    assert plan("audio", "opus", VideoFormat.MP4) == (Action.COPY, None)
    assert plan("subtitle", "subrip", VideoFormat.MP4) == (Action.ENCODE, "mov_text")
    assert plan("subtitle", "mov_text", VideoFormat.WEBM) == (Action.ENCODE, "webvtt")
    assert plan("data", "bin_data", VideoFormat.MP4) == (Action.DROP, None)
    assert plan("attachment", "ttf", VideoFormat.WEBM) == (Action.DROP, None)
    with pytest.raises(OutputCannotHoldError, match="dvd_subtitle.*webm.*mp4 can"):
        plan_stream(StreamInfo(3, "subtitle", "dvd_subtitle"), VideoFormat.WEBM)
