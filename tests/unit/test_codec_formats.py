"""The codec layer: every input format and mode decodes to the right planes and encodes back."""

from __future__ import annotations

import io

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps

from imdsr.imaging import codec
from imdsr.imaging.codec import OutputFormat, decode, encode

RNG = np.random.default_rng(0)
RGB8 = RNG.integers(0, 256, (13, 17, 3), dtype=np.uint8)
RGB16 = RNG.integers(0, 65536, (13, 17, 3), dtype=np.uint16)
ALPHA8 = RNG.integers(0, 256, (13, 17), dtype=np.uint8)
ALPHA16 = RNG.integers(0, 65536, (13, 17), dtype=np.uint16)
BIG = 10**8


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "mode", "alpha", "gray"), [
    ("PNG", "RGB", False, False), ("PNG", "RGBA", True, False), ("PNG", "L", False, True),
    ("PNG", "LA", True, True), ("PNG", "1", False, True), ("BMP", "RGB", False, False),
    ("TIFF", "RGB", False, False), ("TIFF", "RGBA", True, False), ("WEBP", "RGBA", True, False),
    ("JPEG", "L", False, True), ("JPEG", "CMYK", False, False), ("GIF", "P", False, False),
])
def test_8bit_modes(fmt: str, mode: str, alpha: bool, gray: bool) -> None:
    image = Image.fromarray(np.dstack([RGB8, ALPHA8]), "RGBA").convert(mode)
    options = {"lossless": True} if fmt == "WEBP" else {}
    picture = decode(_save(image, fmt, **options), BIG)
    assert picture.color.shape == (13, 17, 3) and picture.color.dtype == np.uint8
    assert (picture.alpha is not None) == alpha and picture.gray == gray
    assert picture.source_format == fmt
    if fmt in ("PNG", "BMP", "TIFF") and mode in ("RGB", "RGBA"):
        np.testing.assert_array_equal(picture.color, RGB8)
    if alpha and fmt != "WEBP":
        np.testing.assert_array_equal(picture.alpha, ALPHA8)


def test_palette_with_transparency_gets_alpha() -> None:
    image = Image.fromarray(RGB8).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    image.info["transparency"] = 0
    picture = decode(_save(image, "PNG", transparency=0), BIG)
    assert picture.alpha is not None and (picture.alpha == 0).any()


def test_gif_first_frame() -> None:
    frames = [Image.new("RGB", (8, 6), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = _save(frames[0], "GIF", save_all=True, append_images=frames[1:])
    picture = decode(data, BIG)
    assert tuple(picture.color[0, 0]) == (255, 0, 0)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_16bit(channels: int) -> None:
    planes = np.dstack([RGB16, ALPHA16])[..., :channels] if channels > 1 else RGB16[..., 0]
    if channels == 2:
        planes = np.dstack([RGB16[..., 0], ALPHA16])
    planes = np.ascontiguousarray(planes)
    picture = decode(imagecodecs.png_encode(planes), BIG)
    assert picture.color.dtype == np.uint16 and picture.bit_depth == 16
    assert picture.gray == (channels <= 2)
    assert (picture.alpha is not None) == (channels in (2, 4))
    expected = RGB16 if channels >= 3 else np.repeat(RGB16[..., :1], 3, axis=2)
    np.testing.assert_array_equal(picture.color, expected)
    out = encode(picture, OutputFormat.PNG)
    back = imagecodecs.png_decode(out)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, planes)


@pytest.mark.parametrize("alpha", [False, True])
def test_tiff_16bit(alpha: bool) -> None:
    planes = np.dstack([RGB16, ALPHA16]) if alpha else RGB16
    buf = io.BytesIO()
    tifffile.imwrite(buf, planes, photometric="rgb", compression="zlib",
                     extrasamples=["unassalpha"] if alpha else None)
    picture = decode(buf.getvalue(), BIG)
    assert picture.bit_depth == 16 and (picture.alpha is not None) == alpha
    np.testing.assert_array_equal(picture.color, RGB16)
    back = imagecodecs.png_decode(encode(picture, OutputFormat.PNG))
    np.testing.assert_array_equal(back, planes)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(orientation: int) -> None:
    image = Image.fromarray(RGB8)
    exif = Image.Exif()
    exif[codec.ORIENTATION_TAG] = orientation
    data = _save(image, "PNG", exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    np.testing.assert_array_equal(decode(data, BIG).color, expected)


def test_icc_profile_carried_over() -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    picture = decode(_save(Image.fromarray(RGB8), "PNG", icc_profile=icc), BIG)
    assert picture.icc_profile == icc
    for fmt in OutputFormat:
        assert Image.open(io.BytesIO(encode(picture, fmt))).info.get("icc_profile") == icc
    sixteen = picture.with_planes(RGB16, None)
    assert Image.open(io.BytesIO(encode(sixteen, OutputFormat.PNG))).info["icc_profile"] == icc


def test_encode_keeps_modes() -> None:
    gray_alpha = codec.Picture(np.repeat(RGB8[..., :1], 3, axis=2), ALPHA8, True, "PNG")
    assert Image.open(io.BytesIO(encode(gray_alpha, OutputFormat.PNG))).mode == "LA"
    assert Image.open(io.BytesIO(encode(gray_alpha, OutputFormat.JPEG))).mode == "L"
    assert Image.open(io.BytesIO(encode(gray_alpha, OutputFormat.WEBP))).mode == "RGBA"
    smooth = (np.linspace(0, 65535, 13 * 17 * 3).reshape(13, 17, 3)).astype(np.uint16)
    rgb16 = codec.Picture(smooth, None, False, "PNG")
    jpeg = np.asarray(Image.open(io.BytesIO(encode(rgb16, OutputFormat.JPEG, quality=100))))
    assert np.abs(jpeg.astype(int) - codec.to_8bit(smooth)).mean() < 3


def test_to_8bit_is_exact_rounding() -> None:
    values = np.arange(65536, dtype=np.uint16)
    np.testing.assert_array_equal(codec.to_8bit(values), np.rint(values / 257).astype(np.uint8))


@pytest.mark.parametrize(("data", "error"), [
    (b"", codec.ImageDecodeError),
    (b"hello, world" * 10, codec.UnsupportedImageError),
    (_save(Image.fromarray(RGB8), "PNG")[:80], codec.ImageDecodeError),
    (_save(Image.fromarray(RGB8), "JPEG")[:200], codec.ImageDecodeError),
    (_save(Image.fromarray(RGB8), "PPM"), codec.UnsupportedImageError),
    (_save(Image.fromarray(RGB8), "ICO"), codec.UnsupportedImageError),
])
def test_bad_input(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode(data, BIG)


def test_pixel_limit_from_header() -> None:
    data = _save(Image.new("L", (4000, 4000)), "PNG")
    with pytest.raises(codec.TooManyPixelsError):
        decode(data, 1000 * 1000)


def test_format_choice() -> None:
    assert codec.default_format("JPEG") is OutputFormat.JPEG
    assert codec.default_format("TIFF") is OutputFormat.PNG
    assert codec.default_format("WEBP") is OutputFormat.WEBP
    assert codec.from_accept("image/webp;q=0.5, image/png") is OutputFormat.PNG
    assert codec.from_accept("*/*") is None and codec.from_accept(None) is None


@pytest.mark.parametrize("bits", [8, 16])
def test_png_modes_are_lossless_and_small_is_not_larger(bits: int) -> None:
    from imdsr.imaging.codec import PngMode

    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:96, 0:128]
    smooth = (np.sin(x / 7.0) * np.cos(y / 11.0) * 100 + 128)[..., None] + rng.normal(0, 3, (96, 128, 3))
    rgb = np.clip(smooth, 0, 255).astype(np.uint8)
    if bits == 16:
        rgb = rgb.astype(np.uint16) * 257 + 3
    picture = codec.Picture(rgb, None, False, "PNG")
    fast = codec.encode(picture, codec.OutputFormat.PNG, png=PngMode.FAST)
    small = codec.encode(picture, codec.OutputFormat.PNG, png=PngMode.SMALL)
    for data in (fast, small):
        assert np.array_equal(imagecodecs.png_decode(data), rgb)  # exact at either setting
    assert len(small) <= len(fast)
