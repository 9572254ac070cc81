"""AVIF in and out, HEIC/HEIF in, and metadata (EXIF, XMP, ICC) kept or stripped (no Triton).

Each check goes the gateway's way: decode -> "upscale" (every pixel repeated 4 x 4, numpy) ->
encode -> read the output back (Pillow, and ``decode`` again).
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pillow_heif
import pytest
import tifffile
from PIL import Image, ImageCms, PngImagePlugin, TiffImagePlugin

from imdsr.imaging import codec
from imdsr.imaging.codec import Metadata, OutputFormat, Picture, decode, encode
from imdsr.imaging.png_writer import chunk as png_chunk

BIG = 10**8
MAKE, MODEL = 271, 272
EXIF_IFD = 0x8769
PIXEL_X, PIXEL_Y = 40962, 40963
LOSSY = (OutputFormat.JPEG, OutputFormat.WEBP, OutputFormat.AVIF)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP_MARK = b"imdsr-test-creator"


def _blocks(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    """Flat 8 x 8 blocks of random colours: lossy codecs keep them close, so colours can be
    compared (noise would not survive AVIF or HEIC at any sensible quality)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (-(-height // 8), -(-width // 8), channels), dtype=np.uint8)
    return np.ascontiguousarray(small.repeat(8, 0).repeat(8, 1)[:height, :width])


def _save(array: np.ndarray, fmt: str, **options: object) -> bytes:
    mode = "L" if array.ndim == 2 else {3: "RGB", 4: "RGBA"}[array.shape[2]]
    image = Image.fromarray(array, mode)
    buf = io.BytesIO()
    if fmt == "HEIF":  # written by pillow-heif itself
        pillow_heif.from_pillow(image).save(buf, **options)
    else:
        image.save(buf, fmt, **options)
    return buf.getvalue()


def _upscale(picture: Picture) -> Picture:
    def x4(plane: np.ndarray | None) -> np.ndarray | None:
        return None if plane is None else np.ascontiguousarray(plane.repeat(4, 0).repeat(4, 1))
    return picture.with_planes(x4(picture.color), x4(picture.alpha))


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _exif(data: bytes) -> Image.Exif:
    return _open(data).getexif()


def _close(a: np.ndarray, b: np.ndarray, tolerance: float) -> None:
    diff = np.abs(a.astype(np.int32) - b.astype(np.int32)).mean()
    assert diff < tolerance, f"mean abs difference {diff:.2f} >= {tolerance}"


# --- AVIF -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [3, 4])
def test_avif_round_trip_keeps_size_colour_and_alpha(channels: int) -> None:
    planes = _blocks(24, 40, channels)
    # 4:4:4 here: 4:2:0 (our writer's choice, Pillow's default) blurs colour across 8-pixel blocks
    picture = decode(_save(planes, "AVIF", quality=95, subsampling="4:4:4"), BIG)
    assert picture.source_format == "AVIF" and picture.bit_depth == 8 and not picture.gray
    assert (picture.height, picture.width) == (24, 40)
    assert (picture.alpha is not None) == (channels == 4)
    _close(picture.color, planes[..., :3], 6)
    if channels == 4:
        _close(picture.alpha, planes[..., 3], 6)
    assert codec.default_format(picture.source_format) is OutputFormat.AVIF

    big = _upscale(picture)
    out = encode(big, OutputFormat.AVIF, quality=95)
    image = _open(out)
    assert image.format == "AVIF" and image.size == (160, 96)
    assert image.mode == ("RGBA" if channels == 4 else "RGB")
    again = decode(out, BIG)
    assert (again.height, again.width) == (96, 160) and again.bit_depth == 8
    _close(again.color, big.color, 6)
    if channels == 4:
        assert again.alpha is not None
        _close(again.alpha, big.alpha, 6)


def test_avif_grey_stays_grey_and_grey_with_alpha_keeps_alpha() -> None:
    grey = _blocks(16, 24, 1)[..., 0]
    picture = decode(_save(grey, "AVIF", quality=95), BIG)
    assert picture.gray and picture.alpha is None
    _close(picture.color[..., 0], grey, 4)
    assert _open(encode(picture, OutputFormat.AVIF)).mode == "L"  # monochrome AV1, 4:0:0

    alpha = _blocks(16, 24, 1, seed=1)[..., 0]
    grey_alpha = Picture(np.repeat(grey[..., None], 3, axis=2), alpha, True, "PNG")
    image = _open(encode(grey_alpha, OutputFormat.AVIF, quality=95))
    assert image.mode == "RGBA"
    _close(np.asarray(image)[..., 3], alpha, 4)


def test_avif_is_chosen_by_name_suffix_and_accept() -> None:
    assert OutputFormat.AVIF.value == "avif" and OutputFormat.AVIF.content_type == "image/avif"
    for name in ("avif", "AVIF", ".avif", "image/avif", " image/AVIF "):
        assert OutputFormat.named(name) is OutputFormat.AVIF, name
    assert codec.format_for_path("out/photo_x4.avif") is OutputFormat.AVIF
    assert codec.format_for_path("photo.AVIF") is OutputFormat.AVIF
    assert codec.from_accept("image/avif,image/webp,image/apng,*/*;q=0.8") is OutputFormat.AVIF
    assert codec.from_accept("image/webp;q=0.5, image/avif;q=0.9") is OutputFormat.AVIF
    assert codec.from_accept("image/avif;q=0.5, image/png") is OutputFormat.PNG
    assert codec.from_accept("image/avif;q=0") is None
    assert codec.default_format("AVIF") is OutputFormat.AVIF
    assert 0 < codec.DEFAULT_QUALITY[OutputFormat.AVIF] <= 100


def test_avif_side_limit_is_what_readers_open() -> None:
    # MAX_SIDE[AVIF] is the largest side libavif's default reader opens: at the limit the encoded
    # file comes back, one pixel more and it is written but cannot be read.
    limit = codec.MAX_SIDE[OutputFormat.AVIF]
    line = Picture(np.full((1, limit, 3), 90, np.uint8), None, False, "PNG")
    assert decode(encode(line, OutputFormat.AVIF), BIG).width == limit
    over = io.BytesIO()
    Image.new("RGB", (limit + 1, 1), (90, 90, 90)).save(over, "AVIF")
    with pytest.raises(codec.CodecError):
        decode(over.getvalue(), BIG)


# --- HEIC / HEIF (input only) ---------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_heic_input(channels: int) -> None:
    planes = _blocks(24, 40, channels)
    planes = planes[..., 0] if channels == 1 else planes
    data = _save(planes, "HEIF", quality=95)
    assert data[4:12] in (b"ftypheic", b"ftypheix")  # really HEIC (HEVC), from pillow-heif
    picture = decode(data, BIG)
    assert picture.source_format == "HEIF" and picture.bit_depth == 8
    assert (picture.height, picture.width) == (24, 40)
    assert picture.gray == (channels == 1)
    assert (picture.alpha is not None) == (channels == 4)
    rgb = np.repeat(planes[..., None], 3, axis=2) if channels == 1 else planes[..., :3]
    _close(picture.color, rgb, 6)
    if channels == 4:
        _close(picture.alpha, planes[..., 3], 3)

    fmt = codec.default_format(picture.source_format)
    assert fmt is OutputFormat.JPEG  # HEIC is lossy and never written
    big = _upscale(picture)
    out = encode(big, fmt)
    assert _open(out).size == (160, 96)
    expected = big.color
    if big.alpha is not None:  # JPEG has no alpha: the codec composites over white
        a = big.alpha[..., None] / 255.0
        expected = np.rint(big.color * a + 255.0 * (1.0 - a)).astype(np.uint8)
    _close(decode(out, BIG).color, expected, 4)


def test_heic_pixel_limit_and_damage() -> None:
    data = _save(_blocks(24, 40, 3), "HEIF")
    with pytest.raises(codec.TooManyPixelsError):
        decode(data, 24 * 40 - 1)
    with pytest.raises(codec.ImageDecodeError):  # a HEIC by its brand, but cut short
        decode(data[: len(data) // 2], BIG)


@pytest.mark.parametrize("fmt", ["AVIF", "HEIF"])
def test_damaged_avif_and_heic_raise_only_codec_errors(fmt: str) -> None:
    rng = np.random.default_rng(7)
    source = _save(_blocks(23, 31, 4), fmt, quality=50)
    outcomes = set()
    for _ in range(120):
        data = bytearray(source)
        if rng.random() < 0.5:
            data = data[: rng.integers(0, len(data) + 1)]
        for _ in range(rng.integers(0, 6)):
            if data:  # half the time in the container's boxes (the first ~400 bytes)
                limit = min(len(data), 400) if rng.random() < 0.5 else len(data)
                data[rng.integers(0, limit)] = rng.integers(0, 256)
        try:
            picture = decode(bytes(data), 4096 * 4096)
        except codec.CodecError as exc:
            outcomes.add(type(exc).__name__)
            continue
        outcomes.add("decoded")
        assert picture.color.ndim == 3 and picture.color.shape[2] == 3
    assert "ImageDecodeError" in outcomes  # the damage was seen, and never as anything else


# --- EXIF -----------------------------------------------------------------------------------------


def _tagged_exif(width: int, height: int, orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[codec.ORIENTATION_TAG] = orientation
    exif[MAKE] = "Canon"
    exif[MODEL] = "EOS R5"
    exif.get_ifd(EXIF_IFD).update({PIXEL_X: width, PIXEL_Y: height})
    return exif.tobytes()


def _marked(height: int = 24, width: int = 40) -> np.ndarray:
    """Grey, with a red square in the stored top-left corner: where it lands shows the rotation."""
    planes = np.full((height, width, 3), 128, np.uint8)
    planes[:8, :8] = (255, 0, 0)
    return planes


def _red_corner(color: np.ndarray) -> str:
    corners = {"top-left": color[:8, :8], "top-right": color[:8, -8:],
               "bottom-left": color[-8:, :8], "bottom-right": color[-8:, -8:]}
    red = [name for name, block in corners.items()
           if block[..., 0].mean() > 200 and block[..., 1].mean() < 60]
    assert len(red) == 1, red
    return red[0]


def _with_exif(fmt: str, planes: np.ndarray, exif: bytes) -> bytes:
    return _save(planes, fmt, exif=exif, quality=95)


@pytest.mark.parametrize("source", ["JPEG", "PNG", "WEBP", "AVIF", "HEIF"])
def test_exif_orientation_applied_and_reset(source: str) -> None:
    data = _with_exif(source, _marked(), _tagged_exif(40, 24))
    picture = decode(data, BIG)
    # orientation 6: the stored image turned 90 degrees clockwise is what is shown
    assert (picture.height, picture.width) == (40, 24)
    assert _red_corner(picture.color) == "top-right"
    exif = Image.Exif()
    exif.load(picture.exif)
    assert exif[codec.ORIENTATION_TAG] == 1 and (exif[MAKE], exif[MODEL]) == ("Canon", "EOS R5")
    assert exif.get_ifd(EXIF_IFD)[PIXEL_X] == 24 and exif.get_ifd(EXIF_IFD)[PIXEL_Y] == 40


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_exif_kept_with_orientation_1_and_true_size(fmt: OutputFormat) -> None:
    big = _upscale(decode(_with_exif("JPEG", _marked(), _tagged_exif(40, 24)), BIG))
    out = encode(big, fmt, metadata=Metadata.KEEP)
    exif = _exif(out)
    assert (exif[MAKE], exif[MODEL]) == ("Canon", "EOS R5")
    # AVIF carries orientation as irot/imir boxes: Pillow's writer takes the tag out of the EXIF
    assert exif.get(codec.ORIENTATION_TAG, 1) == 1
    assert (exif.get_ifd(EXIF_IFD)[PIXEL_X], exif.get_ifd(EXIF_IFD)[PIXEL_Y]) == (96, 160)
    again = decode(out, BIG)  # not turned a second time by whoever opens the output
    assert (again.height, again.width) == (160, 96)
    assert _red_corner(again.color) == "top-right"
    assert again.exif is not None


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_exif_stripped(fmt: OutputFormat) -> None:
    big = _upscale(decode(_with_exif("JPEG", _marked(), _tagged_exif(40, 24)), BIG))
    assert big.exif is not None
    out = encode(big, fmt, metadata=Metadata.STRIP)
    image = _open(out)
    assert "exif" not in image.info and not image.getexif()
    assert decode(out, BIG).exif is None
    assert _red_corner(decode(out, BIG).color) == "top-right"  # the pixels keep the orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_applied_once(orientation: int) -> None:
    # Pillow 13 turns a TIFF itself while loading it (and reports 5-8 with the sides swapped);
    # tifffile (16-bit) reads the pixels as stored. Both must come out as the PNG reference does.
    planes = _marked()
    exif = Image.Exif()
    exif[codec.ORIENTATION_TAG] = orientation
    expected = decode(_save(planes, "PNG", exif=exif.tobytes()), BIG).color
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[codec.ORIENTATION_TAG] = orientation
    info[MAKE] = "Canon"
    eight = decode(_save(planes, "TIFF", tiffinfo=info), BIG)
    np.testing.assert_array_equal(eight.color, expected)
    buf = io.BytesIO()
    tifffile.imwrite(buf, planes.astype(np.uint16) * 257, photometric="rgb",
                     extratags=[(codec.ORIENTATION_TAG, 3, 1, orientation, True)])
    sixteen = decode(buf.getvalue(), BIG)
    assert sixteen.bit_depth == 16
    np.testing.assert_array_equal(codec.to_8bit(sixteen.color), expected)
    # a TIFF's EXIF is its whole first IFD: the tags of its own pixel layout do not travel on
    kept = Image.Exif()
    kept.load(eight.exif)
    assert kept[MAKE] == "Canon" and kept.get(codec.ORIENTATION_TAG, 1) == 1
    assert not {256, 257, 258, 259, 262, 273, 277, 278, 279, 284} & set(kept)


def test_exif_with_only_an_orientation_is_not_carried() -> None:
    exif = Image.Exif()
    exif[codec.ORIENTATION_TAG] = 3
    picture = decode(_with_exif("JPEG", _marked(), exif.tobytes()), BIG)
    assert _red_corner(picture.color) == "bottom-right" and picture.exif is None


# --- malformed EXIF: dropped, never a failed request -------------------------------------------


def _jpeg_with_app1(payload: bytes) -> bytes:
    jpeg = _save(_marked(), "JPEG", quality=95)
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


MALFORMED = {
    "not TIFF at all": b"Exif\x00\x00this is not a TIFF header",
    "IFD offset past the end": b"Exif\x00\x00MM\x00*\xff\xff\xff\x00",
    "entries past the end": b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\x7f\x12\x01\x03\x00",
    "Exif IFD pointer to nowhere": b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01"
                                   b"\x87\x69\x00\x04\x00\x00\x00\x01\x7f\xff\xff\xff\x00\x00\x00\x00",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
@pytest.mark.parametrize("container", ["JPEG", "PNG"])
def test_malformed_exif_does_not_fail(name: str, container: str) -> None:
    payload = MALFORMED[name]
    if container == "JPEG":
        data = _jpeg_with_app1(payload)
    else:
        png = _save(_marked(), "PNG")
        data = png[:33] + png_chunk(b"eXIf", payload.removeprefix(b"Exif\x00\x00")) + png[33:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about the broken block; that is expected
        picture = decode(data, BIG)
        assert (picture.height, picture.width) == (24, 40)
        assert _red_corner(picture.color) == "top-left"
        for fmt in OutputFormat:
            out = encode(_upscale(picture), fmt, metadata=Metadata.KEEP)
            assert _open(out).size == (160, 96)


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_unreadable_exif_on_a_picture_is_dropped_at_encode(fmt: OutputFormat) -> None:
    picture = Picture(_marked(), None, False, "PNG", exif=b"Exif\x00\x00garbage", xmp=b"<x/>")
    image = _open(encode(picture, fmt))
    assert image.size == (40, 24) and not image.getexif()


# --- XMP ------------------------------------------------------------------------------------------


def _xmp(width: int, height: int, orientation: int = 6) -> bytes:
    return (
        b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:exif="http://ns.adobe.com/exif/1.0/" '
        b'xmlns:dc="http://purl.org/dc/elements/1.1/" '
        b'tiff:Orientation="%d" exif:PixelXDimension="%d">'
        b"<exif:PixelYDimension>%d</exif:PixelYDimension>"
        b"<dc:creator><rdf:Seq><rdf:li>%s</rdf:li></rdf:Seq></dc:creator>"
        b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
        % (orientation, width, height, XMP_MARK))


def _source_with_xmp(fmt: str) -> bytes:
    exif = _tagged_exif(40, 24)
    if fmt == "PNG":  # Pillow does not write XMP into PNG: an iTXt chunk, as Adobe's tools do
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", _xmp(40, 24).decode("utf-8"))
        return _save(_marked(), "PNG", pnginfo=info, exif=exif)
    return _save(_marked(), fmt, xmp=_xmp(40, 24), exif=exif, quality=95)


@pytest.mark.parametrize("source", ["PNG", "JPEG", "WEBP", "AVIF"])
def test_xmp_read_with_orientation_1_and_true_size(source: str) -> None:
    picture = decode(_source_with_xmp(source), BIG)
    assert picture.xmp is not None and XMP_MARK in picture.xmp
    assert b'tiff:Orientation="1"' in picture.xmp
    assert b'exif:PixelXDimension="24"' in picture.xmp
    assert b"<exif:PixelYDimension>40</exif:PixelYDimension>" in picture.xmp


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_xmp_kept(fmt: OutputFormat) -> None:
    big = _upscale(decode(_source_with_xmp("JPEG"), BIG))
    out = encode(big, fmt, metadata=Metadata.KEEP)
    xmp = _open(out).info.get("xmp")
    assert xmp is not None and XMP_MARK in xmp
    assert b'tiff:Orientation="1"' in xmp and b'tiff:Orientation="6"' not in xmp
    assert b'exif:PixelXDimension="96"' in xmp
    assert b"<exif:PixelYDimension>160</exif:PixelYDimension>" in xmp
    assert decode(out, BIG).xmp == xmp.rstrip(b"\x00")


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_xmp_stripped(fmt: OutputFormat) -> None:
    big = _upscale(decode(_source_with_xmp("JPEG"), BIG))
    assert big.xmp is not None
    out = encode(big, fmt, metadata=Metadata.STRIP)
    assert "xmp" not in _open(out).info
    assert XMP_MARK not in out  # not hidden anywhere else in the file either
    assert b"Canon" not in out


def test_oversized_xmp_is_dropped_from_jpeg_only() -> None:
    xmp = _xmp(40, 24) + b" " * 70_000  # more than one JPEG APP1 segment holds
    picture = Picture(_marked(), None, False, "JPEG", exif=_tagged_exif(40, 24), xmp=xmp)
    jpeg = _open(encode(picture, OutputFormat.JPEG))
    assert "xmp" not in jpeg.info and jpeg.getexif()[MAKE] == "Canon"  # EXIF still goes
    for fmt in (OutputFormat.PNG, OutputFormat.WEBP, OutputFormat.AVIF):
        assert XMP_MARK in _open(encode(picture, fmt)).info["xmp"]


# --- ICC: kept in both modes ---------------------------------------------------------------------


@pytest.mark.parametrize("metadata", list(Metadata))
@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_icc_kept_in_both_modes(fmt: OutputFormat, metadata: Metadata) -> None:
    data = _save(_marked(), "JPEG", icc_profile=SRGB, exif=_tagged_exif(40, 24), xmp=_xmp(40, 24))
    picture = decode(data, BIG)
    assert picture.icc_profile == SRGB
    assert _open(encode(_upscale(picture), fmt, metadata=metadata)).info.get("icc_profile") == SRGB


@pytest.mark.parametrize("source", ["AVIF", "HEIF"])
def test_icc_read_from_avif_and_heic(source: str) -> None:
    options: dict[str, object] = {"icc_profile": SRGB, "quality": 95}
    assert decode(_save(_marked(), source, **options), BIG).icc_profile == SRGB


# --- PNG: the chunks themselves ---------------------------------------------------------------------


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of every chunk, each CRC checked."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(png):
        (length,) = struct.unpack_from(">I", png, at)
        kind, body = png[at + 4:at + 8], png[at + 8:at + 8 + length]
        (crc,) = struct.unpack_from(">I", png, at + 8 + length)
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        at += 12 + length
    return chunks


@pytest.mark.parametrize("bits", [8, 16])
def test_png_metadata_chunks(bits: int) -> None:
    picture = _upscale(decode(_save(_marked(), "JPEG", icc_profile=SRGB, exif=_tagged_exif(40, 24),
                                    xmp=_xmp(40, 24)), BIG))
    if bits == 16:
        picture = picture.with_planes(picture.color.astype(np.uint16) * 257, None)
    kinds = [kind for kind, _ in _chunks(encode(picture, OutputFormat.PNG))]
    assert kinds[:4] == [b"IHDR", b"iCCP", b"eXIf", b"iTXt"]  # all before IDAT
    assert kinds.index(b"IDAT") > 3 and kinds[-1] == b"IEND"
    body = dict(_chunks(encode(picture, OutputFormat.PNG)))
    assert body[b"eXIf"][:4] in (b"MM\x00*", b"II*\x00")  # the TIFF header, no "Exif\0\0"
    assert body[b"iTXt"].startswith(b"XML:com.adobe.xmp\x00\x00\x00\x00\x00<?xpacket")
    stripped = encode(picture, OutputFormat.PNG, metadata=Metadata.STRIP)
    kinds = [kind for kind, _ in _chunks(stripped)]
    assert b"iCCP" in kinds and b"eXIf" not in kinds and b"iTXt" not in kinds
    assert encode(picture, OutputFormat.PNG, metadata="strip") == stripped  # the query's plain string
