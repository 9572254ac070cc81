"""The codec's one table of output formats (``codec.FORMATS``) says what the formats really are.

Each row is checked against the encoders it names: the file really is of that Pillow format, its
media type and extension are the ones Pillow registers for it, it holds an animation exactly when
the row says so, and the gateway's settings have a quality for each lossy format. A format added to
``OutputFormat`` without a row, or with a wrong one, fails here.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imdsr.imaging import codec
from imdsr.imaging.codec import FORMATS, INPUT_FORMATS, Animation, OutputFormat, Picture
from service.settings import Settings

ALL = list(OutputFormat)


def _picture(seed: int = 0) -> Picture:
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    return Picture(pixels, None, False, "PNG")


def test_every_format_has_one_row() -> None:
    assert set(FORMATS) == set(OutputFormat)


@pytest.mark.parametrize("fmt", ALL)
def test_a_row_is_what_its_encoder_writes(fmt: OutputFormat) -> None:
    spec = FORMATS[fmt]
    with Image.open(io.BytesIO(codec.encode(_picture(), fmt))) as image:
        assert image.format == spec.writer
    Image.init()
    assert Image.MIME[spec.writer] == spec.media_type == fmt.content_type
    assert Image.registered_extensions()[fmt.suffix] == spec.writer
    # every name of the row leads back to the format
    for name in (fmt.value, spec.extension, fmt.suffix, spec.media_type, fmt.value.upper()):
        assert OutputFormat.named(name) is fmt, name
    assert codec.format_for_path(f"out/photo_x4{fmt.suffix}") is fmt


@pytest.mark.parametrize("fmt", ALL)
def test_quality_is_given_exactly_to_the_lossy_formats(fmt: OutputFormat) -> None:
    spec = FORMATS[fmt]
    low, high = (codec.encode(_picture(), fmt, quality=q) for q in (10, 95))
    if spec.quality is None:  # lossless: quality changes nothing
        assert not fmt.lossy and low == high and fmt not in codec.DEFAULT_QUALITY
    else:
        assert fmt.lossy and len(low) < len(high)
        assert codec.DEFAULT_QUALITY[fmt] == spec.quality
        assert codec.encode(_picture(), fmt) == codec.encode(_picture(), fmt, quality=spec.quality)


@pytest.mark.parametrize("fmt", ALL)
def test_animated_means_the_frames_are_kept(fmt: OutputFormat) -> None:
    animation = Animation((_picture(1), _picture(2), _picture(3)), (40, 50, 60), 0)
    if not FORMATS[fmt].animated:
        assert fmt not in codec.ANIMATED_FORMATS
        with pytest.raises(codec.UnsupportedImageError):
            codec.encode_animation(animation, fmt)
        return
    data = codec.encode_animation(animation, fmt)
    back = codec.decode_animation(data, max_pixels=10**6, max_frames=10)
    assert back is not None and len(back.frames) == 3 and back.durations_ms == (40, 50, 60)


def test_every_input_format_has_one_default_output() -> None:
    claimed = [name for spec in FORMATS.values() for name in spec.default_for]
    assert sorted(claimed) == sorted(set(claimed)), "an input format in two rows"
    assert set(claimed) == INPUT_FORMATS
    # lossy inputs stay lossy; HEIC, which is not written, becomes JPEG
    assert codec.default_format("HEIF") is OutputFormat.JPEG
    assert codec.default_format("TIFF") is OutputFormat.PNG


@pytest.mark.parametrize(("name", "expected"), [
    ("photo.heic", OutputFormat.JPEG), ("photo.HEIF", OutputFormat.JPEG),
    ("photo.jpg", OutputFormat.JPEG), ("photo.jfif", OutputFormat.JPEG),
    ("photo.webp", OutputFormat.WEBP), ("photo.avif", OutputFormat.AVIF),
    ("scan.tif", OutputFormat.PNG), ("anim.gif", OutputFormat.PNG), ("noext", OutputFormat.PNG),
])
def test_default_format_for_path_predicts_the_gateways_choice(name: str,
                                                              expected: OutputFormat) -> None:
    assert codec.default_format_for_path(name) is expected


@pytest.mark.parametrize("fmt", ALL)
def test_the_settings_have_a_quality_for_each_lossy_format(fmt: OutputFormat,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    field = Settings.model_fields.get(f"{fmt.value}_quality")
    if not fmt.lossy:
        assert field is None and Settings().quality_for(fmt) is None
        return
    assert field is not None and field.default == FORMATS[fmt].quality
    monkeypatch.setenv(f"IMDSR_{fmt.value.upper()}_QUALITY", "37")
    assert Settings().quality_for(fmt) == 37
