"""The gateway's own PNG writer (imdsr/imaging/png_writer.py): every layout it writes decodes
exactly, through libpng and through Pillow, across its row bands and at any width."""

from __future__ import annotations

import io
import zlib

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from imdsr.imaging import png_writer


def _samples(h: int, w: int, planes: int, dtype: type, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    # Smooth plus noise, with the extremes present: the filter's sums overflow a byte there.
    y, x = np.mgrid[0:h, 0:w]
    base = (np.sin(x / 5.0) * np.cos(y / 3.0) + 1) / 2 * top
    shape = (h, w) if planes == 1 else (h, w, planes)
    noise = rng.normal(0, top / 50, shape)
    values = (base if planes == 1 else base[..., None]) + noise
    values = np.clip(values, 0, top).astype(dtype)
    values.flat[0], values.flat[-1] = top, 0
    return values


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("planes", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [(1, 1), (1, 37), (150, 1), (129, 67)])  # 129: three row bands
def test_every_layout_decodes_exactly(dtype: type, planes: int, size: tuple[int, int]) -> None:
    samples = _samples(*size, planes, dtype, seed=planes + 10 * size[0])
    data = png_writer.encode_png(samples)
    assert np.array_equal(imagecodecs.png_decode(data).reshape(samples.shape), samples)
    if dtype == np.uint8:  # Pillow narrows 16-bit colour; it reads every 8-bit layout
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))).reshape(samples.shape), samples)


def test_average_filter_is_png_s_definition() -> None:
    """Row by row as the PNG specification writes it (Raw(x) - floor((Raw(x-bpp) + Prior(x)) / 2))."""
    rows = _samples(70, 9, 1, np.uint8, seed=3)  # past one band of 64 rows
    bpp = 3
    out = png_writer.average_filtered(rows, bpp)
    for r in range(rows.shape[0]):
        for c in range(rows.shape[1]):
            left = int(rows[r, c - bpp]) if c >= bpp else 0
            up = int(rows[r - 1, c]) if r else 0
            assert out[r, c + 1] == (int(rows[r, c]) - (left + up) // 2) % 256
    assert (out[:, 0] == png_writer.AVERAGE).all()


def test_extra_chunks_come_before_the_image_data() -> None:
    extra = png_writer.chunk(b"tEXt", b"Comment\x00hello")
    data = png_writer.encode_png(_samples(8, 8, 3, np.uint8, seed=1), extra)
    kinds, at = [], 8
    while at < len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        assert int.from_bytes(data[at + 8 + length:at + 12 + length], "big") == zlib.crc32(kind + body)
        kinds.append(kind)
        at += 12 + length
    assert kinds == [b"IHDR", b"tEXt", b"IDAT", b"IEND"]
    assert Image.open(io.BytesIO(data)).text == {"Comment": "hello"}


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 5), np.uint8)])
def test_refuses_what_png_cannot_hold(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="PNG holds"):
        png_writer.encode_png(bad)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_large_pictures_stream_through_libpng_with_their_chunks(dtype: type,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Above codec._PNG_WRITER_MAX_BYTES the whole-picture writer is not used (its buffers would
    hold ~3x the output); the streamed file has the same pixels and the ICC profile."""
    from PIL import ImageCms

    from imdsr.imaging import codec

    def refuse(*_args: object) -> bytes:
        raise AssertionError("png_writer used above its size limit")

    rng = np.random.default_rng(4)
    color = rng.integers(0, np.iinfo(dtype).max, (40, 56, 3), dtype=dtype)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    picture = codec.Picture(color, None, False, "PNG", icc_profile=icc)
    small_limit = codec.encode(picture, codec.OutputFormat.PNG)  # under the limit: the writer
    monkeypatch.setattr(codec, "_PNG_WRITER_MAX_BYTES", color.nbytes - 1)
    monkeypatch.setattr(png_writer, "encode_png", refuse)
    streamed = codec.encode(picture, codec.OutputFormat.PNG)
    assert streamed != small_limit
    for data in (streamed, small_limit):
        assert np.array_equal(imagecodecs.png_decode(data), color)
        assert Image.open(io.BytesIO(data)).info["icc_profile"] == icc
