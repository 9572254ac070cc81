"""Image files <-> arrays, for every image a person might send.

Decoding gives a :class:`Picture`: RGB colour (what goes through the network), an optional alpha
plane (upscaled on its own), whether the source was grayscale, its bit depth and ICC profile.
Pillow does the 8-bit work; 16-bit colour, which Pillow narrows to 8 bits, goes through libpng
(imagecodecs) for PNG and tifffile for TIFF, so 16 bits in means 16 bits out.
"""

from __future__ import annotations

import io
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

# Pillow's names of the formats we accept (MPO is a multi-picture JPEG, DIB a BMP body).
INPUT_FORMATS = frozenset({"PNG", "JPEG", "MPO", "WEBP", "BMP", "DIB", "TIFF", "GIF"})
ORIENTATION_TAG = 274


class OutputFormat(StrEnum):
    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"

    @property
    def content_type(self) -> str:
        return f"image/{self.value}"

    @classmethod
    def named(cls, name: str) -> OutputFormat | None:
        """The format a file suffix, a media type or a short name means (".jpg", "image/jpeg",
        "jpg" -> JPEG); None for anything else."""
        key = name.strip().lower().removeprefix("image/").removeprefix(".")
        return _FORMAT_NAMES.get(key)


_FORMAT_NAMES = {"png": OutputFormat.PNG, "jpeg": OutputFormat.JPEG, "jpg": OutputFormat.JPEG,
                 "webp": OutputFormat.WEBP}
# Lossy quality when a request names none (the gateway's settings start from these).
DEFAULT_QUALITY = {OutputFormat.JPEG: 92, OutputFormat.WEBP: 90}


class PngMode(StrEnum):
    """PNG compression: the speed/size trade-off of ``POST /upscale?png=``."""

    FAST = "fast"
    SMALL = "small"


# Measured on 1024x1024 upscaled photos (docs/PERFORMANCE.md, "PNG"): zlib's run-length strategy
# after the Paeth filter encodes in ~28 ms, 0-3% above the smallest zlib makes at level 9 (~50x
# longer); Pillow's default (level 6, adaptive filters) took 270-330 ms and was larger than both.
# `small` tries each candidate and keeps the smallest file, so it is never larger than `fast`.
_PNG_FAST = {"level": 1, "strategy": imagecodecs.PNG.STRATEGY.RLE, "filter": imagecodecs.PNG.FILTER.PAETH}
_PNG_CANDIDATES: dict[PngMode, tuple[dict[str, int], ...]] = {
    PngMode.FAST: (_PNG_FAST,),
    PngMode.SMALL: (_PNG_FAST, {"level": 9, "filter": imagecodecs.PNG.FILTER.PAETH},
                    {"level": 9, "strategy": imagecodecs.PNG.STRATEGY.FILTERED}),
}


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


@dataclass(frozen=True)
class Picture:
    color: np.ndarray             # H x W x 3 RGB, uint8 or uint16
    alpha: np.ndarray | None      # H x W, same dtype as colour
    gray: bool                    # source had no colour: encode back as grayscale
    source_format: str            # Pillow format name of the input ("PNG", "JPEG", ...)
    icc_profile: bytes | None = None

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


def decode(data: bytes, max_pixels: int) -> Picture:
    """Decode ``data``, applying EXIF orientation; refuse more than ``max_pixels`` pixels."""
    image = _open(data)
    if image.format not in INPUT_FORMATS:
        raise UnsupportedImageError(f"unsupported image format {image.format}")
    width, height = image.size
    if width * height > max_pixels:
        raise TooManyPixelsError(
            f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
    icc = image.info.get("icc_profile") or None
    orientation = _orientation(image)
    try:
        if _is_16bit_colour(image, data):
            color, alpha, gray = _decode_16bit(data, image.format)
        else:
            color, alpha, gray, icc = _decode_pillow(image, icc)
    except CodecError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, RuntimeError,
            IndexError, zlib.error, imagecodecs.PngError) as exc:
        raise ImageDecodeError(f"cannot decode {image.format} data: {exc}") from exc
    color = _orient(color, orientation)
    alpha = None if alpha is None else _orient(alpha, orientation)
    return Picture(np.ascontiguousarray(color), alpha if alpha is None else
                   np.ascontiguousarray(alpha), gray, image.format, icc)


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
        raise UnsupportedImageError("not a recognised image (PNG, JPEG, WebP, BMP, TIFF, GIF)"
                                    ) from exc
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise ImageDecodeError(f"cannot read image header: {exc}") from exc


SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00",
              b"MM\x00*")


def _has_known_signature(data: bytes) -> bool:
    return data.startswith(SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _orientation(image: Image.Image) -> int:
    try:
        value = int(image.getexif().get(ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block must not fail an otherwise good image
        return 1
    return value if 1 <= value <= 8 else 1


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


def _decode_16bit(data: bytes, fmt: str) -> tuple[np.ndarray, np.ndarray | None, bool]:
    if fmt == "PNG":
        array = imagecodecs.png_decode(data)
    else:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages.first
            if page.photometric not in (tifffile.PHOTOMETRIC.RGB, tifffile.PHOTOMETRIC.MINISBLACK):
                raise UnsupportedImageError(f"16-bit TIFF with photometric {page.photometric.name}")
            array = page.asarray()
            if array.ndim == 3 and page.planarconfig == tifffile.PLANARCONFIG.SEPARATE:
                array = np.moveaxis(array, 0, -1)
    if array.dtype != np.uint16 or array.ndim != 3 or array.shape[2] not in (2, 3, 4):
        raise UnsupportedImageError(f"unsupported 16-bit layout {array.shape} {array.dtype}")
    channels = array.shape[2]
    if channels == 2:
        return _gray_to_rgb(array[..., 0]), array[..., 1], True
    return array[..., :3], (array[..., 3] if channels == 4 else None), False


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
    """Same family as the input: lossy stays lossy, everything lossless becomes PNG."""
    return {"JPEG": OutputFormat.JPEG, "MPO": OutputFormat.JPEG, "WEBP": OutputFormat.WEBP}.get(
        source_format, OutputFormat.PNG)


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
) -> bytes:
    """Encode ``picture``: 16-bit only as PNG; grayscale, alpha and ICC kept where fmt allows."""
    if fmt is OutputFormat.PNG:
        return _png(picture, png)
    color = to_8bit(picture.color)
    alpha = None if picture.alpha is None else to_8bit(picture.alpha)
    if fmt is OutputFormat.JPEG and alpha is not None:
        # JPEG has no alpha: composite over white, as image viewers show transparency.
        a = alpha[..., None].astype(np.float32) / 255.0
        color = np.rint(color * a + 255.0 * (1.0 - a)).astype(np.uint8)
        alpha = None
    if picture.gray and fmt is not OutputFormat.WEBP:  # WebP has no grayscale mode
        image = Image.fromarray(_gray_of(color), "L")
    elif alpha is not None:
        rgba = _interleaved(picture) if picture.bit_depth == 8 else None
        image = Image.fromarray(rgba if rgba is not None else np.dstack([color, alpha]), "RGBA")
    else:
        image = Image.fromarray(color, "RGB")
    options: dict[str, object] = {}
    if picture.icc_profile:
        options["icc_profile"] = picture.icc_profile
    buffer = io.BytesIO()
    if fmt is OutputFormat.JPEG:
        image.save(buffer, "JPEG", quality=quality or DEFAULT_QUALITY[fmt], **options)
    else:
        image.save(buffer, "WEBP", quality=quality or DEFAULT_QUALITY[fmt], **options)
    return buffer.getvalue()


def _interleaved(picture: Picture) -> np.ndarray | None:
    """The HxWx4 buffer colour and alpha are views of, when they are (the pipeline's output)."""
    base = picture.color.base
    if (picture.alpha is not None and base is not None and picture.alpha.base is base
            and base.shape == (*picture.color.shape[:2], 4)):
        return base
    return None


def _png(picture: Picture, mode: PngMode) -> bytes:
    """PNG of any bit depth through libpng (imagecodecs): grey, alpha and ICC kept, 16-bit exact."""
    color = _gray_of(picture.color)[..., None] if picture.gray else picture.color
    rgba = None if picture.gray else _interleaved(picture)
    if rgba is not None:
        planes = rgba
    else:
        planes = color if picture.alpha is None else np.dstack([color, picture.alpha])
    if planes.shape[2] == 1:
        planes = planes[..., 0]
    planes = np.ascontiguousarray(planes)
    data = min((imagecodecs.png_encode(planes, **options) for options in _PNG_CANDIDATES[mode]), key=len)
    return _with_icc(data, picture.icc_profile) if picture.icc_profile else data


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _with_icc(png: bytes, icc: bytes) -> bytes:
    """Insert an iCCP chunk right after IHDR (signature 8 bytes + IHDR chunk 25 bytes)."""
    chunk = _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    return png[:33] + chunk + png[33:]
