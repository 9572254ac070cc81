"""Image files <-> arrays, for every image a person might send.

Decoding gives a :class:`Picture`: RGB colour (what goes through the network), an optional alpha
plane (upscaled on its own), whether the source was grayscale, its bit depth, ICC profile, EXIF and
XMP. Pillow does the 8-bit work (AVIF included; HEIC/HEIF through pillow-heif's opener, registered
below); 16-bit colour, which Pillow narrows to 8 bits, goes through libpng (imagecodecs) for PNG and
tifffile for TIFF, so 16 bits in means 16 bits out.

Metadata: the EXIF orientation is applied to the pixels, so the kept EXIF (and XMP) says
orientation 1, and its image-size tags are rewritten to the size actually encoded. ``encode`` writes
EXIF, XMP and ICC where the output format holds them (:class:`Metadata` ``keep``), or the ICC
profile alone (``strip``: what colour correctness needs). Metadata that cannot be parsed or written
is dropped, never an error.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
import zlib
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from imdsr.imaging import png_writer

try:  # the `serve` extra; without it HEIC/HEIF is simply not recognised
    import pillow_heif
except ImportError:  # pragma: no cover - every environment that serves has it
    pillow_heif = None
else:
    # Once, at import: Pillow then opens HEIC/HEIF (primary image, 8 bits, libheif's orientation
    # transforms applied and the EXIF orientation set to 1). Thumbnails, depth maps and auxiliary
    # images are never used: not decoded.
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

# Pillow's names of the formats we accept (MPO is a multi-picture JPEG, DIB a BMP body; HEIF is
# pillow-heif's name for HEIC/HEIF).
INPUT_FORMATS = frozenset({"PNG", "JPEG", "MPO", "WEBP", "BMP", "DIB", "TIFF", "GIF", "AVIF", "HEIF"})
ORIENTATION_TAG = 274


class OutputFormat(StrEnum):
    """The formats answers are written in; what each one is and holds is its :data:`FORMATS` row."""

    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"
    AVIF = "avif"

    @property
    def spec(self) -> FormatSpec:
        return FORMATS[self]

    @property
    def content_type(self) -> str:
        return FORMATS[self].media_type

    @property
    def suffix(self) -> str:
        """The file suffix its files are written with (".jpg")."""
        return f".{FORMATS[self].extension}"

    @property
    def lossy(self) -> bool:
        return FORMATS[self].quality is not None

    @classmethod
    def named(cls, name: str) -> OutputFormat | None:
        """The format a file suffix, a media type or a short name means (".jpg", "image/jpeg",
        "jpg" -> JPEG); None for anything else."""
        key = name.strip().lower().removeprefix("image/").removeprefix(".")
        return _FORMAT_NAMES.get(key)


@dataclass(frozen=True)
class FormatSpec:
    """One output format: every fact of it that the codec, the gateway and the clients use.

    ``quality`` None means lossless; ``max_side`` None, a side larger than anything served;
    ``default_for``: Pillow's names of the input formats answered in this one when a request names
    no format (lossy stays lossy, everything lossless becomes PNG)."""

    label: str                   # as people write it ("WebP"): the web page's choice
    media_type: str              # the answer's Content-Type
    extension: str               # what its files are named with, without the dot ("jpg")
    writer: str                  # Pillow's name of its encoder
    quality: int | None          # the lossy quality when a request names none
    max_side: int | None         # the largest side it holds
    animated: bool               # holds an animation
    default_for: tuple[str, ...]


# The one table of output formats; the codec's other tables below are views of it.
# Qualities (the gateway's settings start from these): AVIF is on Pillow's 0-100 scale (its default
# 75): 80 gave 45.4 dB PSNR at 44% of JPEG 92's bytes (46.2 dB) on a 2048 x 2048 upscaled photo.
# Sides: PNG's is 2^31 - 1, never the limit here. AVIF: libaom encodes sides up to 65536, but
# libavif's readers (Pillow's, browsers') refuse a side over 32768 by default
# (AVIF_DEFAULT_IMAGE_DIMENSION_LIMIT; checked with Pillow 13 / libavif 1.4), so an AVIF wider than
# that could be written but not opened. Animation: WebP, and PNG as APNG.
# HEIC (lossy, and not written here) comes back as JPEG.
FORMATS: dict[OutputFormat, FormatSpec] = {
    OutputFormat.PNG: FormatSpec(
        label="PNG", media_type="image/png", extension="png", writer="PNG", quality=None,
        max_side=None, animated=True, default_for=("PNG", "BMP", "DIB", "TIFF", "GIF")),
    OutputFormat.JPEG: FormatSpec(
        label="JPEG", media_type="image/jpeg", extension="jpg", writer="JPEG", quality=92,
        max_side=65500, animated=False, default_for=("JPEG", "MPO", "HEIF")),
    OutputFormat.WEBP: FormatSpec(
        label="WebP", media_type="image/webp", extension="webp", writer="WEBP", quality=90,
        max_side=16383, animated=True, default_for=("WEBP",)),
    OutputFormat.AVIF: FormatSpec(
        label="AVIF", media_type="image/avif", extension="avif", writer="AVIF", quality=80,
        max_side=32768, animated=False, default_for=("AVIF",)),
}
# what OutputFormat.named takes: the name and the file extension ("jpeg", "jpg")
_FORMAT_NAMES = {name: fmt for fmt, spec in FORMATS.items() for name in (fmt.value, spec.extension)}
MAX_SIDE = {fmt: spec.max_side for fmt, spec in FORMATS.items() if spec.max_side is not None}
# Lossy quality when a request names none (lossy formats only).
DEFAULT_QUALITY = {fmt: spec.quality for fmt, spec in FORMATS.items() if spec.quality is not None}
# Output formats that hold an animation, with Pillow's writer names.
ANIMATED_FORMATS = {fmt: spec.writer for fmt, spec in FORMATS.items() if spec.animated}
_DEFAULT_FOR = {source: fmt for fmt, spec in FORMATS.items() for source in spec.default_for}
# libaom speed (0 slowest .. 10): Pillow's default. The same 4-Mpixel photo on 2 cores: 6 ->
# 1.1-1.3 s, 224 KiB; 8 -> 0.5 s, 258 KiB; 9 -> 0.2 s, 269 KiB.
AVIF_SPEED = 6


class Metadata(StrEnum):
    """What ``encode`` writes besides the pixels (``POST /upscale?metadata=``)."""

    KEEP = "keep"    # EXIF, XMP and the ICC profile, where the output format holds them
    STRIP = "strip"  # the ICC profile only: the colours stay right, nothing else goes out


class PngMode(StrEnum):
    """PNG compression: the speed/size trade-off of ``POST /upscale?png=``."""

    FAST = "fast"
    SMALL = "small"


# Measured on 1024x1024 upscaled photos (docs/PERFORMANCE.md, "PNG"): `fast` is png_writer's
# Average filter + libdeflate level 1 (~15 ms, ~5% above libpng's fastest); `small` tries libpng's
# strongest settings beside it and keeps the smallest file, so it is never larger than `fast`.
# Pillow's default (level 6, adaptive filters) took 270-330 ms and was larger than all of them.
# libpng's fastest (36-38 ms a 1024x1024 answer): `fast` above _PNG_WRITER_MAX_BYTES, where
# png_writer's whole-picture buffers (the filtered rows and libdeflate's output, each about the
# picture's size) would hold ~3.1x the output (tests/integration/test_memory.py; admission
# reserves 2.5x) while libpng streams its rows.
_PNG_STREAMING = {"level": 1, "strategy": imagecodecs.PNG.STRATEGY.RLE,
                  "filter": imagecodecs.PNG.FILTER.PAETH}
_PNG_WRITER_MAX_BYTES = 16 << 20  # ~5.6 Mpx of 8-bit RGB; the usual answer is 1-4 Mpx
_PNG_SMALL = ({"level": 9, "filter": imagecodecs.PNG.FILTER.PAETH},
              {"level": 9, "strategy": imagecodecs.PNG.STRATEGY.FILTERED}, _PNG_STREAMING)


def format_for_path(path: str | Path) -> OutputFormat | None:
    """The output format a file name asks for by its suffix, if any."""
    return OutputFormat.named(Path(path).suffix) if Path(path).suffix else None


class CodecError(ValueError):
    """Base of the codec's errors; the gateway maps each to its HTTP status."""


class UnsupportedImageError(CodecError):
    """Not an image, or an image format/mode we do not handle (415)."""


class ImageDecodeError(CodecError):
    """A format we handle, but the data cannot be decoded (400)."""


class TooManyPixelsError(CodecError):
    """More pixels than allowed; raised from the header, before decoding (413)."""


class TooManyFramesError(CodecError):
    """An animation with more frames than allowed (422)."""


@dataclass(frozen=True)
class Picture:
    color: np.ndarray             # H x W x 3 RGB, uint8 or uint16
    alpha: np.ndarray | None      # H x W, same dtype as colour
    gray: bool                    # source had no colour: encode back as grayscale
    source_format: str            # Pillow format name of the input ("PNG", "JPEG", ...)
    icc_profile: bytes | None = None
    # b"Exif\0\0" + TIFF structure: orientation 1 (applied to the pixels), no thumbnail
    exif: bytes | None = None
    xmp: bytes | None = None      # the XMP packet (UTF-8 XML), orientation 1

    @property
    def height(self) -> int:
        return self.color.shape[0]

    @property
    def width(self) -> int:
        return self.color.shape[1]

    @property
    def bit_depth(self) -> int:
        return 16 if self.color.dtype == np.uint16 else 8

    def with_planes(self, color: np.ndarray, alpha: np.ndarray | None) -> Picture:
        return replace(self, color=color, alpha=alpha)


# ---------------------------------------------------------------------------------------------
# Decoding


@dataclass(frozen=True)
class Animation:
    """The frames of an animated GIF, WebP or PNG, each whole (disposal applied), and timing."""

    frames: tuple[Picture, ...]
    durations_ms: tuple[int, ...]
    loop: int  # 0: for ever

    def with_frames(self, frames: list[Picture]) -> Animation:
        return replace(self, frames=tuple(frames))


def decode_animation(data: bytes, max_pixels: int, max_frames: int) -> Animation | None:
    """The frames of ``data`` when it is animated (else None); every frame's pixels count against
    ``max_pixels``, and more than ``max_frames`` frames is refused, both before decoding them."""
    image = _open(data)
    frames = getattr(image, "n_frames", 1)
    if not getattr(image, "is_animated", False) or frames < 2:
        return None
    if frames > max_frames:
        raise TooManyFramesError(f"the animation has {frames} frames; at most {max_frames} are served")
    width, height = image.size
    if frames * width * height > max_pixels:
        raise TooManyPixelsError(f"{frames} frames of {width}x{height} = {frames * width * height} "
                                 f"pixels; the limit is {max_pixels} for all frames together")
    pictures, durations = [], []
    try:
        for index in range(frames):
            image.seek(index)
            rgba = np.asarray(image.convert("RGBA"))
            alpha = rgba[..., 3] if (rgba[..., 3] < 255).any() else None
            pictures.append(Picture(np.ascontiguousarray(rgba[..., :3]), None if alpha is None else
                                    np.ascontiguousarray(alpha), False, image.format))
            durations.append(int(image.info.get("duration", 100) or 100))
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        raise ImageDecodeError(f"cannot decode frame {len(pictures)} of the animation: {exc}") from exc
    return Animation(tuple(pictures), tuple(durations), int(image.info.get("loop", 0) or 0))


def encode_animation(animation: Animation, fmt: OutputFormat, quality: int | None = None) -> bytes:
    """An animated WebP or PNG (APNG) of 8-bit frames, timing and loop kept."""
    if fmt not in ANIMATED_FORMATS:
        raise UnsupportedImageError(f"{fmt.value} cannot hold an animation; use webp or png")
    images = []
    for frame in animation.frames:
        color = to_8bit(frame.color)
        alpha = None if frame.alpha is None else to_8bit(frame.alpha)
        images.append(Image.fromarray(np.dstack([color, alpha]) if alpha is not None else color,
                                      "RGBA" if alpha is not None else "RGB"))
    buffer = io.BytesIO()
    options: dict[str, object] = {"save_all": True, "append_images": images[1:],
                                  "duration": list(animation.durations_ms), "loop": animation.loop}
    if fmt is OutputFormat.WEBP:
        options["quality"] = quality or DEFAULT_QUALITY[fmt]
    images[0].save(buffer, ANIMATED_FORMATS[fmt], **options)
    return buffer.getvalue()


def decode(data: bytes, max_pixels: int) -> Picture:
    """Decode ``data``, applying EXIF orientation; refuse more than ``max_pixels`` pixels.

    The input's ICC profile, EXIF and XMP come with the planes (EXIF and XMP made true of the
    oriented picture; either dropped, never an error, when it cannot be read)."""
    image = _open(data)
    if image.format not in INPUT_FORMATS:
        raise UnsupportedImageError(f"unsupported image format {image.format}")
    width, height = image.size
    if width * height > max_pixels:
        raise TooManyPixelsError(
            f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
    icc = image.info.get("icc_profile") or None
    exif = _exif_of(image)
    orientation = _orientation(exif)
    try:
        if _is_16bit_colour(image, data):
            color, alpha, gray = _decode_16bit(data, image.format, _stored_size(image))
        else:
            tiff_oriented = image.format == "TIFF" and ORIENTATION_TAG in image.tag_v2
            color, alpha, gray, icc = _decode_pillow(image, icc)
            if tiff_oriented and ORIENTATION_TAG not in image.tag_v2:
                # Pillow (13) turns a TIFF itself while loading it, and then drops the tag:
                # turning it again here gave the wrong picture (6 came out as 6 twice).
                orientation = 1
    except CodecError:
        raise
    # TypeError, KeyError, ArithmeticError: what Pillow's decoders raise on some damaged TIFF tags
    # (a string or rational where an offset belongs: found by tests/unit/test_codec_properties.py);
    # they are damaged data (400), not a server error.
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, RuntimeError, IndexError,
            TypeError, KeyError, ArithmeticError, zlib.error, imagecodecs.PngError) as exc:
        raise ImageDecodeError(f"cannot decode {image.format} data: {exc}") from exc
    color = _orient(color, orientation)
    alpha = None if alpha is None else _orient(alpha, orientation)
    height, width = color.shape[:2]
    return Picture(np.ascontiguousarray(color), alpha if alpha is None else
                   np.ascontiguousarray(alpha), gray, image.format, icc,
                   _exif_bytes(exif, width, height), _xmp_bytes(_xmp_of(image), width, height))


def _open(data: bytes) -> Image.Image:
    if not data:
        raise ImageDecodeError("empty body")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it; treat the warning as the error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooManyPixelsError(str(exc)) from exc
    except UnidentifiedImageError as exc:
        if _has_known_signature(data):  # one of ours by its magic bytes, but broken
            raise ImageDecodeError("image data is damaged (header cannot be read)") from exc
        raise UnsupportedImageError(
            "not a recognised image (PNG, JPEG, WebP, AVIF, HEIC, BMP, TIFF, GIF)") from exc
    # RuntimeError: what libavif (Pillow's AVIF plugin) and libheif (pillow-heif) raise on a
    # damaged container, already while reading the header.
    except (OSError, SyntaxError, ValueError, struct.error, RuntimeError) as exc:
        raise ImageDecodeError(f"cannot read image header: {exc}") from exc


SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00",
              b"MM\x00*")
# ISO-BMFF major brands of AVIF and HEIC/HEIF files (after the "ftyp" box type at bytes 4-8).
HEIF_BRANDS = frozenset({b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx",
                         b"mif1", b"msf1"})


def _has_known_signature(data: bytes) -> bool:
    return (data.startswith(SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
            or (data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS))


# --- metadata: EXIF and XMP, made true of the oriented (and later upscaled) picture -------------

_EXIF_IFD = 0x8769
# Exif IFD PixelXDimension, PixelYDimension: the size tags EXIF has (rewritten to the true size).
_EXIF_SIZE = (40962, 40963)
# IFD0 tags that describe how a TIFF stores its pixels (size, depth, compression, strips, tiles,
# sub-IFDs, JPEG tables): a TIFF input's EXIF is its whole IFD0, and in the output they would lie
# (EXIF itself leaves them out of compressed files). ICC (34675) and XMP (700) travel on their own;
# Photoshop's resources (34377) and layers (37724) describe the old pixels.
_TIFF_LAYOUT_TAGS = frozenset({254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280,
                               281, 284, 317, 320, 322, 323, 324, 325, 330, 338, 339, 340, 341, 347,
                               513, 514, 530, 700, 34377, 34675, 37724})


def _exif_of(image: Image.Image) -> Image.Exif | None:
    try:
        exif = image.getexif()
    except Exception:  # noqa: BLE001 - a broken EXIF block must not fail an otherwise good image
        return None
    return exif if len(exif) else None


def _orientation(exif: Image.Exif | None) -> int:
    try:
        value = int(exif.get(ORIENTATION_TAG, 1)) if exif is not None else 1
    except Exception:  # noqa: BLE001 - see _exif_of
        return 1
    return value if 1 <= value <= 8 else 1


def _exif_bytes(exif: Image.Exif | bytes | None, width: int, height: int) -> bytes | None:
    """``exif`` re-serialised for a ``width`` x ``height`` picture whose orientation is applied:
    orientation 1, the Exif IFD's size tags (where present) giving that size, no TIFF layout tags,
    no thumbnail (Pillow writes IFD0 and its Exif/GPS/Interop IFDs only). None when there is
    nothing else in it or it cannot be read or written: metadata is never worth a failed
    request."""
    if not exif:
        return None
    try:
        if not isinstance(exif, Image.Exif):
            exif, data = Image.Exif(), exif
            exif.load(data)
        if ORIENTATION_TAG in exif:
            exif[ORIENTATION_TAG] = 1
        for tag in _TIFF_LAYOUT_TAGS.intersection(exif):
            del exif[tag]
        if _EXIF_IFD in exif:
            sub = exif.get_ifd(_EXIF_IFD)
            for tag, value in zip(_EXIF_SIZE, (width, height), strict=True):
                if tag in sub:
                    sub[tag] = value
        if set(exif) <= {ORIENTATION_TAG}:
            return None  # an orientation and nothing else: it said what is now in the pixels
        return exif.tobytes()
    except Exception:  # noqa: BLE001 - malformed EXIF is dropped
        return None


def _xmp_of(image: Image.Image) -> bytes | None:
    xmp = image.info.get("xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8", "replace")
    return xmp if isinstance(xmp, bytes) else None  # a damaged TIFF tag can give anything


# tiff:Orientation and the XMP copies of the size tags, as attributes or as elements.
_XMP_TAGS = {name: (re.compile(rb"""(%s\s*=\s*["'])\s*\d+\s*(["'])""" % name),
                    re.compile(rb"(<%s>)\s*\d+\s*(</%s>)" % (name, name)))
             for name in (b"tiff:Orientation", b"tiff:ImageWidth", b"tiff:ImageLength",
                          b"exif:PixelXDimension", b"exif:PixelYDimension")}


def _xmp_bytes(xmp: bytes | None, width: int, height: int) -> bytes | None:
    """``xmp`` with orientation 1 and its size properties (where present) giving the size."""
    xmp = xmp.rstrip(b"\x00") if xmp else None
    if not xmp:
        return None
    values = {b"tiff:Orientation": 1, b"tiff:ImageWidth": width, b"tiff:ImageLength": height,
              b"exif:PixelXDimension": width, b"exif:PixelYDimension": height}
    for name, patterns in _XMP_TAGS.items():
        if name in xmp:
            for pattern in patterns:
                xmp = pattern.sub(rb"\g<1>%d\g<2>" % values[name], xmp)
    return xmp


def _orient(plane: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an H x W [x C] array, as ImageOps.exif_transpose does."""
    if orientation in (5, 7):  # transpose / transverse swap the axes
        plane = plane.swapaxes(0, 1)
        return plane if orientation == 5 else plane[::-1, ::-1]
    return {
        1: lambda p: p,
        2: lambda p: p[:, ::-1],
        3: lambda p: p[::-1, ::-1],
        4: lambda p: p[::-1],
        6: lambda p: np.rot90(p, -1),  # 90 degrees clockwise
        8: lambda p: np.rot90(p, 1),
    }[orientation](plane)


def _stored_size(image: Image.Image) -> tuple[int, int]:
    """Width and height as the pixels are stored. Pillow (13) reports a TIFF with orientation 5-8
    turned (it turns the pixels while loading them); tifffile reads them as stored."""
    if image.format == "TIFF":
        size = image.tag_v2.get(256), image.tag_v2.get(257)
        if all(isinstance(side, int) for side in size) and size[0] * size[1] == image.size[0] * image.size[1]:
            return size
    return image.size


def _is_16bit_colour(image: Image.Image, data: bytes) -> bool:
    """Whether Pillow would narrow this image: 16-bit samples other than plain grayscale."""
    if image.format == "PNG":
        # IHDR: bit depth at byte 24, colour type at 25 (0 gray, 2 RGB, 4 gray+alpha, 6 RGBA).
        return len(data) > 25 and data[24] == 16 and data[25] in (2, 4, 6)
    if image.format == "TIFF":
        bits = image.tag_v2.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        return max(bits) == 16 and len(bits) > 1
    return False


def _decode_16bit(data: bytes, fmt: str, size: tuple[int, int]
                  ) -> tuple[np.ndarray, np.ndarray | None, bool]:
    array = imagecodecs.png_decode(data) if fmt == "PNG" else _tiff_16bit(data, size)
    if array.dtype != np.uint16 or array.ndim != 3 or array.shape[2] not in (2, 3, 4):
        raise UnsupportedImageError(f"unsupported 16-bit layout {array.shape} {array.dtype}")
    channels = array.shape[2]
    if channels == 2:
        return _gray_to_rgb(array[..., 0]), array[..., 1], True
    return array[..., :3], (array[..., 3] if channels == 4 else None), False


def _tiff_16bit(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """The first page of a 16-bit TIFF through tifffile, which reads the tags on its own.

    Hostile files found by tests/unit/test_codec_properties.py: tifffile fails on damaged tags with
    TypeError or OverflowError as well as TiffFileError, and an unreadable photometric comes back as
    a plain int (no ``.name``: an AttributeError here before), so every failure of its parser is a
    damaged file (400), not a 500. And what tifffile would allocate is checked first against what
    Pillow's header check passed (``size``, at most 4 samples of 16 bits), so no tag Pillow did not
    look at (depth, samples per pixel) can make it allocate more than the pixel limit allows.
    """
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages.first
            photometric = page.photometric
            if photometric not in (tifffile.PHOTOMETRIC.RGB, tifffile.PHOTOMETRIC.MINISBLACK):
                name = getattr(photometric, "name", photometric)
                raise UnsupportedImageError(f"16-bit TIFF with photometric {name}")
            width, height = size
            if ((page.imagewidth, page.imagelength) != (width, height) or page.imagedepth != 1
                    or page.dtype != np.uint16 or page.size > width * height * 4):
                raise ImageDecodeError(f"16-bit TIFF tags disagree with its {width}x{height} header")
            array = page.asarray()
            if array.ndim == 3 and page.planarconfig == tifffile.PLANARCONFIG.SEPARATE:
                array = np.moveaxis(array, 0, -1)
            return array
    except CodecError:
        raise
    except Exception as exc:  # noqa: BLE001 - see above: any parser failure means damaged data
        raise ImageDecodeError(f"cannot decode TIFF data: {exc}") from exc


def _decode_pillow(
    image: Image.Image, icc: bytes | None
) -> tuple[np.ndarray, np.ndarray | None, bool, bytes | None]:
    image.load()  # GIF, and any multi-frame file, stays on its first frame
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return _gray_to_rgb(np.asarray(image).astype(np.uint16)), None, True, icc
    if mode == "I":
        # 32-bit integer gray: Pillow's mode for some 16-bit files; values beyond 16 bits clip.
        values = np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
        return _gray_to_rgb(values), None, True, icc
    if mode == "F":
        raise UnsupportedImageError("floating-point images are not supported")
    keyed = "transparency" in image.info  # a colour-key or palette entry marks transparency
    if mode in ("LA", "La") or (mode == "L" and keyed):
        la = np.asarray(image.convert("LA"))
        return _gray_to_rgb(la[..., 0]), la[..., 1], True, icc
    if mode in ("1", "L"):
        return _gray_to_rgb(np.asarray(image.convert("L"))), None, True, icc
    if mode in ("PA", "RGBA", "RGBa") or (mode in ("P", "RGB") and keyed):
        rgba = np.asarray(image.convert("RGBA"))
        return rgba[..., :3], rgba[..., 3], False, icc
    if mode in ("CMYK", "LAB"):
        # The embedded profile describes the original colour space, not the RGB we produce.
        icc = None
    return np.asarray(image.convert("RGB")), None, False, icc


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


# ---------------------------------------------------------------------------------------------
# Encoding


def default_format(source_format: str) -> OutputFormat:
    """Same family as the input (``FormatSpec.default_for``): lossy stays lossy, everything
    lossless becomes PNG. HEIC (lossy, and not written here) becomes JPEG."""
    return _DEFAULT_FOR.get(source_format, OutputFormat.PNG)


def default_format_for_path(path: str | Path) -> OutputFormat:
    """:func:`default_format` of a file judged by its suffix, as Pillow (and pillow-heif) register
    suffixes: what a client can predict without decoding (".heic" -> JPEG, unknown -> PNG). The
    gateway decides by the bytes, so a misnamed file can come back in another format."""
    return default_format(Image.registered_extensions().get(Path(path).suffix.lower(), ""))


def from_accept(accept: str | None) -> OutputFormat | None:
    """The most preferred format an ``Accept`` header names explicitly (wildcards name none)."""
    best: tuple[float, OutputFormat] | None = None
    for item in (accept or "").split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        fmt = OutputFormat.named(media) if media.lower().startswith("image/") else None
        if fmt is not None and q > 0 and (best is None or q > best[0]):
            best = (q, fmt)
    return best[1] if best else None


def to_8bit(plane: np.ndarray) -> np.ndarray:
    if plane.dtype == np.uint8:
        return plane
    # round(x / 257): 65535 -> 255 exactly, and 257 * v -> v for every 8-bit v.
    return ((plane.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _gray_of(color: np.ndarray) -> np.ndarray:
    # The network turns gray into (nearly) gray; the channel mean removes the small tint.
    return np.rint(color.mean(axis=2, dtype=np.float32)).astype(color.dtype)


def encode(
    picture: Picture,
    fmt: OutputFormat,
    quality: int | None = None,
    png: PngMode = PngMode.FAST,
    metadata: Metadata = Metadata.KEEP,
) -> bytes:
    """Encode ``picture``: 16-bit only as PNG; grayscale, alpha and ICC kept where fmt allows, and
    with ``metadata`` keep its EXIF and XMP too (their size tags rewritten to the picture's size)."""
    exif = xmp = None
    if Metadata(metadata) is Metadata.KEEP:
        exif = _exif_bytes(picture.exif, picture.width, picture.height)
        xmp = _xmp_bytes(picture.xmp, picture.width, picture.height)
    if fmt is OutputFormat.PNG:
        return _png(picture, png, exif, xmp)
    color = to_8bit(picture.color)
    alpha = None if picture.alpha is None else to_8bit(picture.alpha)
    if fmt is OutputFormat.JPEG and alpha is not None:
        # JPEG has no alpha: composite over white, as image viewers show transparency.
        a = alpha[..., None].astype(np.float32) / 255.0
        color = np.rint(color * a + 255.0 * (1.0 - a)).astype(np.uint8)
        alpha = None
    if picture.gray and alpha is None and fmt is not OutputFormat.WEBP:  # WebP has no grey mode
        image = Image.fromarray(_gray_of(color), "L")
    elif alpha is not None:
        rgba = _interleaved(picture) if picture.bit_depth == 8 else None
        image = Image.fromarray(rgba if rgba is not None else np.dstack([color, alpha]), "RGBA")
    else:
        image = Image.fromarray(color, "RGB")
    options: dict[str, object] = {"quality": quality or DEFAULT_QUALITY[fmt]}
    if picture.icc_profile:
        options["icc_profile"] = picture.icc_profile
    if fmt is OutputFormat.JPEG:
        # One APP1 segment each (Pillow refuses more; extended XMP is not written): drop, not fail.
        exif = exif if exif and len(exif) <= _JPEG_SEGMENT else None
        xmp = xmp if xmp and len(xmp) <= _JPEG_SEGMENT - len(_JPEG_XMP_ID) else None
    if fmt is OutputFormat.AVIF:
        options["speed"] = AVIF_SPEED
    if exif:
        options["exif"] = exif
    if xmp:
        options["xmp"] = xmp
    buffer = io.BytesIO()
    image.save(buffer, FORMATS[fmt].writer, **options)
    return buffer.getvalue()


_JPEG_SEGMENT = 65533  # the data bytes one JPEG marker segment holds
_JPEG_XMP_ID = b"http://ns.adobe.com/xap/1.0/\x00"


def _interleaved(picture: Picture) -> np.ndarray | None:
    """The HxWx4 buffer colour and alpha are views of, when they are (the pipeline's output)."""
    base = picture.color.base
    if (picture.alpha is not None and base is not None and picture.alpha.base is base
            and base.shape == (*picture.color.shape[:2], 4)):
        return base
    return None


def _png(picture: Picture, mode: PngMode, exif: bytes | None = None, xmp: bytes | None = None
         ) -> bytes:
    """PNG of any bit depth through libpng (imagecodecs): grey, alpha, ICC, EXIF and XMP kept,
    16-bit exact."""
    color = _gray_of(picture.color)[..., None] if picture.gray else picture.color
    rgba = None if picture.gray else _interleaved(picture)
    if rgba is not None:
        planes = rgba
    else:
        planes = color if picture.alpha is None else np.dstack([color, picture.alpha])
    if planes.shape[2] == 1:
        planes = planes[..., 0]
    planes = np.ascontiguousarray(planes)
    chunks = b""
    if picture.icc_profile:
        chunks += png_writer.chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(picture.icc_profile))
    if exif:  # eXIf holds the TIFF structure itself, without the "Exif\0\0" of JPEG's APP1
        chunks += png_writer.chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00"))
    if xmp:  # iTXt: keyword, NUL, uncompressed (0, 0), no language, no translated keyword, text
        chunks += png_writer.chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp)
    # imagecodecs sizes its output buffer from the sample bytes alone, without the filter byte that
    # starts every row: narrow noisy images overflowed it. Give it the worst case (zlib's stored
    # blocks add 5 bytes per 64 KiB) plus room for the headers.
    bound = planes.nbytes + planes.shape[0] + planes.nbytes // 256 + 4096
    writer = png_writer.encode_png(planes, chunks) if planes.nbytes <= _PNG_WRITER_MAX_BYTES else None
    if writer is not None and PngMode(mode) is PngMode.FAST:
        return writer
    # libpng: the candidates of `small`, or (a picture too large for the writer) `fast` itself.
    options = _PNG_SMALL if PngMode(mode) is PngMode.SMALL else (_PNG_STREAMING,)
    smallest = min((imagecodecs.png_encode(planes, out=bound, **o) for o in options), key=len)
    if writer is not None and len(smallest) + len(chunks) >= len(writer):
        return writer
    return _after_ihdr(smallest, chunks) if chunks else smallest


def _after_ihdr(png: bytes, chunks: bytes) -> bytes:
    """Insert ``chunks`` right after IHDR (signature 8 bytes + IHDR chunk 25 bytes): iCCP must come
    before PLTE and IDAT, eXIf before IDAT; iTXt may go anywhere. One copy of the file (views, not
    slices: a large output is not held three times)."""
    view = memoryview(png)
    return b"".join((view[:33], chunks, view[33:]))
