"""Property-based tests of the codec (no Triton): every size, mode, bit depth and format a person
might send survives ``decode`` then ``encode`` with its size, its alpha (where the output format has
alpha) and, in PNG, its 16-bit samples exactly; and damaged files only ever raise the codec's own
errors (which the gateway maps to 400/413/415), never anything that would become a 500.

Pixels come from a seeded generator, not from hypothesis's own arrays: hypothesis explores (and
shrinks) sizes, modes and formats, and a 300 x 300 image costs no more than a 1 x 1 one to draw.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import imagecodecs
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imdsr.imaging import codec
from imdsr.imaging.codec import OutputFormat, decode, encode

BIG = 10**8
# Damaged files are the point here: Pillow's warnings about their tags are expected noise.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")
SIDE = st.integers(1, 300)
# database=None: no .hypothesis/ folder in the work tree; derandomize: the same examples every run,
# so a CI failure is reproducible (the fuzzing below also has fixed seeds per example).
PROPS = settings(max_examples=60, deadline=None, database=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow])

# (source mode, bits) -> the file formats that store it without changing what it is.
SOURCES: dict[tuple[str, int], tuple[str, ...]] = {
    ("L", 8): ("PNG", "JPEG", "WEBP", "TIFF"),
    ("LA", 8): ("PNG", "WEBP", "TIFF"),
    ("RGB", 8): ("PNG", "JPEG", "WEBP", "TIFF"),
    ("RGBA", 8): ("PNG", "WEBP", "TIFF"),
    ("P", 8): ("PNG", "TIFF", "GIF"),
    ("PT", 8): ("PNG", "GIF", "WEBP"),     # palette with a transparent entry
    ("I;16", 16): ("PNG", "TIFF"),         # 16-bit grey (Pillow's own mode)
    ("LA", 16): ("PNG",),                  # 16-bit grey + alpha (libpng)
    ("RGB", 16): ("PNG", "TIFF"),
    ("RGBA", 16): ("PNG", "TIFF"),
}
LOSSLESS = {"PNG", "TIFF"}


def png_encode(planes: np.ndarray) -> bytes:
    """libpng through imagecodecs with room for the worst case (KNOWN_PNG_BUG below)."""
    raw = planes.nbytes + planes.shape[0]  # + one filter byte per row
    return imagecodecs.png_encode(planes, out=raw + raw // 256 + 4096)


@dataclass
class Source:
    mode: str
    bits: int
    fmt: str
    data: bytes
    height: int
    width: int
    color: np.ndarray | None   # the exact H x W x 3 colour, where the file keeps it exactly
    alpha: np.ndarray | None   # the exact alpha plane, where the file keeps it exactly
    has_alpha: bool
    gray: bool


def _make(mode: str, bits: int, fmt: str, height: int, width: int, seed: int) -> Source:
    rng = np.random.default_rng(seed)
    top = 65535 if bits == 16 else 255
    dtype = np.uint16 if bits == 16 else np.uint8
    rgb = rng.integers(0, top + 1, (height, width, 3), dtype=dtype)
    alpha = rng.integers(0, top + 1, (height, width), dtype=dtype)
    alpha.flat[0] = 0  # at least one transparent pixel: WebP drops an alpha that is all opaque
    gray = rgb[..., 0]
    buf = io.BytesIO()
    color: np.ndarray | None = None
    plane: np.ndarray | None = None
    if bits == 16:
        planes = {"I;16": gray, "LA": np.dstack([gray, alpha]), "RGB": rgb,
                  "RGBA": np.dstack([rgb, alpha])}[mode]
        planes = planes.copy()  # fresh strides: libpng refuses a 1 x 1 view with a slice's strides
        if fmt == "PNG":
            buf.write(png_encode(planes))
        elif mode == "I;16":
            tifffile.imwrite(buf, planes, photometric="minisblack")
        else:
            tifffile.imwrite(buf, planes, photometric="rgb",
                             extrasamples=["unassalpha"] if mode == "RGBA" else None)
        color = np.repeat(gray[..., None], 3, axis=2) if mode in ("I;16", "LA") else rgb
        plane = alpha if mode in ("LA", "RGBA") else None
    else:
        if mode in ("P", "PT"):
            image = Image.fromarray(rgb).quantize(colors=16 if mode == "PT" else 256)
            options: dict[str, object] = {}
            if mode == "PT":
                image.info["transparency"] = 0  # what every writer (WebP too) looks at
            image.putpixel((0, 0), 0)
            lut = np.asarray(image.getpalette("RGB"), dtype=np.uint8).reshape(-1, 3)
            color = lut[np.asarray(image)]
            if mode == "PT":
                plane = np.where(np.asarray(image) == 0, 0, 255).astype(np.uint8)
        else:
            arrays = {"L": gray, "LA": np.dstack([gray, alpha]), "RGB": rgb,
                      "RGBA": np.dstack([rgb, alpha])}
            image = Image.fromarray(np.ascontiguousarray(arrays[mode]), mode)
            options = {}
            color = np.repeat(gray[..., None], 3, axis=2) if mode in ("L", "LA") else rgb
            plane = alpha if mode in ("LA", "RGBA") else None
        if fmt == "WEBP":
            options["lossless"] = True
        image.save(buf, fmt, **options)
    has_alpha = mode in ("LA", "RGBA", "PT")
    gray_source = mode in ("L", "LA", "I;16") and fmt != "WEBP"  # WebP stores grey as RGB(A)
    exact = fmt in LOSSLESS or (fmt == "WEBP")  # WebP written losslessly above
    if fmt == "GIF" and mode == "P":
        exact = False  # Pillow may rewrite the palette of a GIF (it is still a palette image)
    if fmt == "WEBP" and has_alpha:
        exact = False  # lossless WebP may drop the colour under fully transparent pixels
    return Source(mode, bits, fmt, buf.getvalue(), height, width, color if exact else None,
                  plane if exact or fmt == "WEBP" else None, has_alpha, gray_source)


@st.composite
def sources(draw: st.DrawFn) -> Source:
    mode, bits = draw(st.sampled_from(sorted(SOURCES)))
    fmt = draw(st.sampled_from(SOURCES[(mode, bits)]))
    # 1 x N and N x 1 come up often: they are where off-by-one and squeeze bugs live.
    height = draw(st.one_of(st.just(1), SIDE))
    width = draw(st.one_of(st.just(1), SIDE))
    return _make(mode, bits, fmt, height, width, draw(st.integers(0, 2**32 - 1)))


def _planes(data: bytes) -> np.ndarray:
    """What an encoded output holds, as H x W x C (C = 1..4), at its own bit depth."""
    if data.startswith(b"\x89PNG"):
        array = imagecodecs.png_decode(data)
    else:
        array = np.asarray(Image.open(io.BytesIO(data)))
    return array if array.ndim == 3 else array[..., None]


@PROPS
@given(sources())
def test_decode_keeps_size_alpha_and_depth(src: Source) -> None:
    picture = decode(src.data, BIG)
    assert (picture.height, picture.width) == (src.height, src.width)
    assert picture.color.shape == (src.height, src.width, 3)
    assert picture.color.flags.c_contiguous
    assert (picture.alpha is not None) == src.has_alpha
    assert picture.bit_depth == src.bits
    assert picture.gray == src.gray
    if src.color is not None:
        np.testing.assert_array_equal(picture.color, src.color)
    if src.alpha is not None:
        assert picture.alpha is not None
        np.testing.assert_array_equal(picture.alpha, src.alpha)


@PROPS
@given(sources(), st.sampled_from(list(OutputFormat)))
def test_round_trip_keeps_size_alpha_and_16bit_png(src: Source, fmt: OutputFormat) -> None:
    picture = decode(src.data, BIG)
    out = encode(picture, fmt)
    planes = _planes(out)
    assert planes.shape[:2] == (src.height, src.width)
    channels = planes.shape[2]
    keeps_alpha = fmt is not OutputFormat.JPEG
    assert (channels in (2, 4)) == (src.has_alpha and keeps_alpha), (channels, src)
    again = decode(out, BIG)
    assert (again.height, again.width) == (src.height, src.width)
    if fmt is OutputFormat.PNG:
        # PNG is lossless at every depth: what was decoded comes back sample for sample.
        assert again.bit_depth == picture.bit_depth
        np.testing.assert_array_equal(again.color, picture.color)
        if picture.alpha is not None:
            np.testing.assert_array_equal(again.alpha, picture.alpha)
        if src.bits == 16 and src.color is not None:
            assert planes.dtype == np.uint16
            np.testing.assert_array_equal(again.color, src.color)
    else:
        assert again.bit_depth == 8  # JPEG and WebP are 8-bit formats


# --- damaged files: only the codec's own errors ---------------------------------------------------


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A valid small file, cut short and/or with some bytes overwritten (headers included)."""
    mode, bits = draw(st.sampled_from(sorted(SOURCES)))
    fmt = draw(st.sampled_from(SOURCES[(mode, bits)] + (("JPEG",) if mode == "RGB" else ())))
    src = _make(mode, bits, fmt, draw(st.integers(1, 40)), draw(st.integers(1, 40)),
                draw(st.integers(0, 2**32 - 1)))
    data = bytearray(src.data)
    cut = draw(st.integers(0, len(data)))
    if draw(st.booleans()):
        data = data[:cut]
    for _ in range(draw(st.integers(0, 6))):
        if data:
            # bias towards the first 64 bytes: that is where sizes, depths and offsets live
            limit = min(len(data), 64) if draw(st.booleans()) else len(data)
            data[draw(st.integers(0, limit - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=250, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(damaged())
def test_damaged_files_raise_only_codec_errors(data: bytes) -> None:
    try:
        picture = decode(data, 4096 * 4096)
    except codec.CodecError:
        return
    # Decoded after all (the damage hit pixels, not structure): a well-formed picture that encodes.
    assert picture.color.ndim == 3 and picture.color.shape[2] == 3
    assert picture.alpha is None or picture.alpha.shape == picture.color.shape[:2]
    for fmt in OutputFormat:
        assert encode(picture, fmt)


# --- 16-bit TIFF: tifffile parses the tags again, after Pillow ------------------------------------


def _tiff16(alpha: bool) -> bytes:
    planes = np.random.default_rng(0).integers(0, 65536, (6, 5, 4 if alpha else 3), dtype=np.uint16)
    buf = io.BytesIO()
    tifffile.imwrite(buf, planes, photometric="rgb", extrasamples=["unassalpha"] if alpha else None)
    return buf.getvalue()


def _entries(data: bytes) -> list[int]:
    """Offsets of the 12-byte entries of the first IFD of a little-endian TIFF."""
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    return list(range(ifd + 2, ifd + 2 + 12 * count, 12))


def _rewrite(data: bytes, at: int, *, kind: int | None = None, count: int | None = None,
             value: int | None = None) -> bytes:
    """Overwrite the type, count or (32-bit) value field of the IFD entry at offset ``at``."""
    out = bytearray(data)
    for offset, fmt, number in ((2, "<H", kind), (4, "<I", count), (8, "<I", value)):
        if number is not None:
            struct.pack_into(fmt, out, at + offset, number)
    return bytes(out)


def _retag(data: bytes, tag: int, **fields: int) -> bytes:
    at = next(at for at in _entries(data) if struct.unpack_from("<H", data, at)[0] == tag)
    return _rewrite(data, at, **fields)


def test_16bit_tiff_with_unreadable_photometric_is_unsupported() -> None:
    # Found by the fuzzing: with the tag's type damaged tifffile reports photometric as a plain 0
    # (an int, no .name): an AttributeError, a 500, before the fix.
    data = _retag(_retag(_tiff16(False), 262, kind=0x6703), 277, kind=0x7E03)
    with pytest.raises(codec.UnsupportedImageError, match="photometric 0"):
        decode(data, BIG)


@pytest.mark.parametrize("alpha", [False, True])
def test_16bit_tiff_whose_tags_disagree_with_pillow_is_damaged(alpha: bool) -> None:
    # Found by the fuzzing: ImageLength with two values. Pillow takes one; tifffile keeps the tuple
    # and failed with a TypeError (a 500) before the fix; now tifffile's view of the page must match
    # the size Pillow's pixel-limit check passed, before it allocates anything.
    data = _retag(_tiff16(alpha), 257, count=2)
    with pytest.raises(codec.ImageDecodeError, match="disagree"):
        decode(data, BIG)


@st.composite
def retagged_tiffs(draw: st.DrawFn) -> bytes:
    """A valid small TIFF (Pillow's 8-bit or tifffile's 16-bit writer, every mode TIFF holds) with a
    few IFD entries' type, count or value overwritten: damage that byte-level fuzzing rarely hits."""
    mode, bits = draw(st.sampled_from(sorted(k for k, fmts in SOURCES.items() if "TIFF" in fmts)))
    data = _make(mode, bits, "TIFF", draw(st.integers(1, 12)), draw(st.integers(1, 12)), 0).data
    interesting = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5, 8, 16, 255, 256, 65535, 2**31, 2**32 - 1]),
                            st.integers(0, 2**32 - 1))
    entries = _entries(data)
    for _ in range(draw(st.integers(1, 3))):
        field_ = draw(st.sampled_from(["kind", "count", "value"]))
        number = draw(interesting)
        data = _rewrite(data, draw(st.sampled_from(entries)),
                        **{field_: number % 65536 if field_ == "kind" else number})
    return data


@settings(max_examples=300, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(retagged_tiffs())
def test_retagged_tiff_raises_only_codec_errors(data: bytes) -> None:
    try:
        picture = decode(data, 4096 * 4096)
    except codec.CodecError:
        return
    assert picture.color.ndim == 3 and picture.color.shape[2] == 3
    assert picture.height * picture.width <= 4096 * 4096


# --- narrow noisy images: imagecodecs' own output-size guess omits the per-row filter byte ----------


@pytest.mark.parametrize(("width", "dtype"), [(1, np.uint8), (2, np.uint8), (1, np.uint16)])
def test_png_encode_of_narrow_noisy_images(width: int, dtype: type) -> None:
    grey = np.random.default_rng(3).integers(0, np.iinfo(dtype).max + 1, (600, width), dtype=dtype)
    picture = codec.Picture(np.repeat(grey[..., None], 3, axis=2), None, True, "PNG")
    np.testing.assert_array_equal(imagecodecs.png_decode(encode(picture, OutputFormat.PNG)), grey)
