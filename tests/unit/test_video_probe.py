"""Probing a clip (issue 28): what its header says, refusals by type, and the limits checked
from the header before a single frame is decoded."""

from __future__ import annotations

import asyncio
import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imdsr.imaging.geometry import FinalSize
from imdsr.video.errors import CorruptVideoError, UnsupportedVideoError, VideoLimitError
from imdsr.video.limits import VideoLimits
from imdsr.video.output import OutputSpec, video_final
from imdsr.video.probe import probe
from imdsr.video.synthetic import ClipSpec, write_clip
from imdsr.video.transcode import transcode

LIMITS = VideoLimits(max_video_seconds=60, max_video_frames=2000, max_input_pixels=1 << 20,
                     max_output_pixels=16 << 20, max_video_output_pixels_total=1 << 34)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "mp4": write_clip(folder / "c.mp4", ClipSpec(seconds=2.0, fps=24, width=96, height=64)),
        "mkv": write_clip(folder / "c.mkv", ClipSpec(seconds=1.5, fps=30, container="matroska",
                                                      audio_codec="libopus")),
        "webm": write_clip(folder / "c.webm", ClipSpec(seconds=1.0, container="webm",
                                                        video_codec="libvpx-vp9", audio_codec=None)),
        "turned": write_clip(folder / "t.mov", ClipSpec(seconds=0.5, container="mov", rotation=90)),
    }


def test_the_header_gives_size_frames_duration_codecs_colour_and_streams(clips: dict[str, Path]) -> None:
    mp4 = probe(clips["mp4"])
    assert (mp4.codec, mp4.width, mp4.height, mp4.frames, mp4.frames_exact) == ("h264", 96, 64, 48, True)
    assert mp4.duration_s == pytest.approx(2.0) and mp4.rate == 24
    assert (mp4.color.primaries, mp4.color.trc, mp4.color.space, mp4.color.range) == (1, 1, 1, 1)
    assert [(s.kind, s.codec) for s in mp4.streams] == [("audio", "aac")]
    assert mp4.rotation == 0 and mp4.display_matrix is None
    # Matroska counts no frames: estimated from duration x rate.
    mkv = probe(clips["mkv"])
    assert (mkv.codec, mkv.frames, mkv.frames_exact) == ("h264", 45, False)
    assert [(s.kind, s.codec) for s in mkv.streams] == [("audio", "opus")]
    webm = probe(clips["webm"])
    assert (webm.container, webm.codec, webm.frames, webm.streams) == ("matroska,webm", "vp9", 24, ())


def test_the_rotation_comes_from_the_display_matrix(clips: dict[str, Path]) -> None:
    turned = probe(clips["turned"])
    assert turned.rotation == 90 and turned.quarter_turned
    assert turned.display_matrix is not None and len(turned.display_matrix) == 9


def test_not_a_video_is_refused_by_type(tmp_path: Path) -> None:
    png = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png, "PNG")
    (tmp_path / "picture.png").write_bytes(png.getvalue())
    with pytest.raises(UnsupportedVideoError, match="container"):
        probe(tmp_path / "picture.png")
    audio_only = write_clip(tmp_path / "a.mp4", ClipSpec(seconds=0.2))
    data = audio_only.read_bytes()
    for name, body in (("noise.mp4", np.random.default_rng(0).bytes(4000)), ("empty.mp4", b""),
                       ("head.mp4", data[:len(data) // 2])):  # moov at the end: cut off
        (tmp_path / name).write_bytes(body)
        with pytest.raises(CorruptVideoError):
            probe(tmp_path / name)


def _top_level_boxes(data: bytes) -> dict[str, tuple[int, int]]:
    boxes, at = {}, 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        boxes[kind.decode()] = (at, size)
        at += size
    return boxes


def test_limits_are_checked_from_the_header_before_any_frame_is_decoded(tmp_path: Path,
                                                                        clips: dict[str, Path]) -> None:
    # A fast-start MP4 (index first) cut just after its index: the header is whole, no frame is
    # there. Over a limit, the refusal names the limit; within them, decoding finds it broken.
    fast = tmp_path / "fast.mp4"
    info = probe(clips["mp4"])
    asyncio.run(transcode(clips["mp4"], fast, _same, info=info, final=FinalSize((64, 96)),
                          output=OutputSpec(), limits=LIMITS))
    data = fast.read_bytes()
    boxes = _top_level_boxes(data)
    assert boxes["moov"][0] < boxes["mdat"][0]
    (tmp_path / "header.mp4").write_bytes(data[:boxes["mdat"][0] + 8])
    with pytest.raises(CorruptVideoError, match="first video frame|no frame"):
        probe(tmp_path / "header.mp4", LIMITS)
    for update, limit in (({"max_video_seconds": 1.5}, "max_video_seconds"),
                          ({"max_video_frames": 47}, "max_video_frames"),
                          ({"max_input_pixels": 96 * 64 - 1}, "max_input_pixels")):
        with pytest.raises(VideoLimitError) as caught:
            probe(tmp_path / "header.mp4", LIMITS.model_copy(update=update))
        assert caught.value.limit == limit and limit in str(caught.value)


def test_output_limits_count_the_x4_frame_and_every_frame(clips: dict[str, Path]) -> None:
    info = probe(clips["mp4"])  # 96 x 64, 48 frames
    final = video_final(info, outscale=2)
    with pytest.raises(VideoLimitError) as caught:  # the x4 intermediate, not the x2 answer
        LIMITS.model_copy(update={"max_output_pixels": 96 * 64 * 16 - 1}).check_output(info, final)
    assert caught.value.limit == "max_output_pixels"
    with pytest.raises(VideoLimitError) as caught:
        LIMITS.model_copy(update={"max_video_output_pixels_total": 192 * 128 * 48 - 1}
                          ).check_output(info, final)
    assert caught.value.limit == "max_video_output_pixels_total"
    LIMITS.model_copy(update={"max_video_output_pixels_total": 192 * 128 * 48}).check_output(info, final)


async def _same(rgb: np.ndarray) -> np.ndarray:
    return rgb
