"""The video core's refusals leave the gateway as its JSON errors (issue 28): broken 400,
unsupported 415, past a limit 413 naming the setting, a bad format/codec/CRF 422."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from imdsr.video.errors import OutputCannotHoldError
from imdsr.video.output import VideoCodec, VideoFormat
from imdsr.video.synthetic import ClipSpec, write_clip
from service import errors
from service.settings import Settings
from service.video.frames import prepare
from service.video.refusals import CorruptVideoApiError, VideoTooLargeError, as_api_error, output_for


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "c.mp4", ClipSpec(seconds=1.0, fps=24))


def test_a_clip_within_the_limits_is_prepared_with_its_final_size(clip: Path) -> None:
    prepared = asyncio.run(prepare(clip, Settings(), width=200))
    assert (prepared.info.frames, prepared.final.size) == (24, (132, 200))


def test_past_a_limit_is_a_413_that_names_the_setting(clip: Path) -> None:
    for settings, limit in ((Settings(max_video_seconds=0.5), "max_video_seconds"),
                            (Settings(max_video_frames=23), "max_video_frames"),
                            (Settings(max_output_pixels=96 * 64 * 16 - 1), "max_output_pixels"),
                            (Settings(max_video_output_pixels_total=10**6), "max_video_output_pixels_total")):
        with pytest.raises(VideoTooLargeError) as caught:
            asyncio.run(prepare(clip, settings))
        assert caught.value.status == 413 and caught.value.detail["limit"] == limit
        assert limit in caught.value.detail["msg"]


def test_broken_and_unsupported_files_are_400_and_415(tmp_path: Path, clip: Path) -> None:
    (tmp_path / "cut.mp4").write_bytes(clip.read_bytes()[:3000])
    with pytest.raises(CorruptVideoApiError) as caught:
        asyncio.run(prepare(tmp_path / "cut.mp4", Settings()))
    assert (caught.value.status, caught.value.code) == (400, "corrupt_video")
    (tmp_path / "page.html").write_text("<html><body>not a clip</body></html>")
    with pytest.raises((CorruptVideoApiError, errors.UnsupportedMediaTypeError)):
        asyncio.run(prepare(tmp_path / "page.html", Settings()))
    assert as_api_error(OutputCannotHoldError("x")).status == 422


def test_output_choices_are_checked_as_parameters() -> None:
    assert output_for(Settings(video_crf=26)).crf_value == 26
    assert output_for(Settings(video_crf=26), crf=18).crf_value == 18
    assert output_for(Settings(), VideoFormat.WEBM).encoder.encoder == "libvpx-vp9"
    with pytest.raises(errors.InvalidParameterError):
        output_for(Settings(), VideoFormat.WEBM, VideoCodec.H264)
    with pytest.raises(errors.InvalidParameterError):
        output_for(Settings(video_crf=60))  # past H.264's 51
