"""What a clip is, told from its first bytes (``imdsr.video.formats``), and how the client treats
one beside pictures: its parameters (each kind takes its own), its output name, its bar."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from imdsr.video.formats import SNIFF_BYTES, VideoFormat, is_video
from imdsr.video.synthetic import ClipSpec, write_clip
from service.client import JobBar, RemoteJob, UpscaleParams, output_name, suffix_for_content_type


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sniff")
    spec = ClipSpec(seconds=0.2, fps=10, width=32, height=18, audio_codec=None)
    return {name: write_clip(root / f"clip.{name}", ClipSpec(**{**spec.__dict__, **extra}))
            for name, extra in (("mp4", {}), ("mov", {"container": "mov"}),
                                ("mkv", {"container": "matroska"}),
                                ("webm", {"container": "webm", "video_codec": "libvpx-vp9"}))}


def _picture(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("name", ["mp4", "mov", "mkv", "webm"])
def test_every_container_read_is_a_clip_by_its_bytes(clips: dict[str, Path], name: str) -> None:
    assert is_video(clips[name].read_bytes()[:SNIFF_BYTES])


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "AVIF", "TIFF", "BMP"])
def test_pictures_are_not_clips(fmt: str) -> None:
    assert not is_video(_picture(fmt)[:SNIFF_BYTES])


def test_heif_brands_are_pictures_and_short_or_empty_bodies_are_not_clips() -> None:
    assert not is_video(b"\x00\x00\x00\x18ftypheic")
    assert is_video(b"\x00\x00\x00\x18ftypisom")
    assert not is_video(b"") and not is_video(b"\x1a\x45")


def test_each_file_gets_the_parameters_of_its_kind() -> None:
    both = UpscaleParams(model="c4", format="webm", quality=80, png="small", crf=24, width=640)
    assert both.for_kind(True).query() == {"model": "c4", "format": "webm", "crf": 24, "width": 640}
    assert both.for_kind(False).query() == {"model": "c4", "quality": 80, "png": "small",
                                            "width": 640}
    picture = UpscaleParams(format="webp")
    assert picture.for_kind(True).query() == {} and picture.for_kind(False).query() == {"format": "webp"}


def test_output_names_and_suffixes_of_clips(clips: dict[str, Path]) -> None:
    assert output_name(clips["mkv"], None) == "clip_x4.mp4"
    assert output_name(clips["mp4"], "webm") == "clip_x4.webm"
    assert output_name(clips["mov"], "webp") == "clip_x4.mp4"  # a picture's format: not for it
    for fmt in VideoFormat:
        assert suffix_for_content_type(fmt.content_type) == fmt.suffix
        assert VideoFormat.named(fmt.suffix) is fmt and VideoFormat.named(fmt.content_type) is fmt


def test_a_clips_bar_counts_frames() -> None:
    bar = JobBar(Path("clip.mp4"), disable=False, video=True)
    try:
        bar.show(RemoteJob(id="j" * 22, status="running", model="c4", created=datetime.now(UTC),
                           progress={"tiles_done": 9, "tiles_total": 30, "frames_done": 3,
                                     "frames_total": 10}))
        assert (bar.bar.n, bar.bar.total, bar.bar.unit) == (3, 10, "frame")
    finally:
        bar.close()


def test_the_crf_bound_is_the_widest_encoder_s() -> None:
    from imdsr.video.formats import MAX_CRF
    from imdsr.video.output import ENCODERS

    assert max(spec.crf_range[1] for spec in ENCODERS.values()) == MAX_CRF
