"""A JPEG's encoder quality, estimated from its quantisation tables (no pixel is decoded).

Almost every encoder (libjpeg and libjpeg-turbo behind Pillow, browsers, GIMP, ImageMagick, most
phones' software paths) scales the two example tables of the JPEG standard (ITU T.81, Annex K)
by the IJG quality formula: ``s = 5000 / q`` below 50, else ``200 - 2q``; each entry is
``(base * s + 50) // 100`` clamped to 1..255. So the quality is the ``q`` whose scaled tables are
closest to the file's. Encoders with tables of their own (some cameras, Photoshop's 0-12 scale)
have no exact ``q``; the closest one by mean log ratio of the entries still says how coarse the
quantisation is, which is what the gateway's model choice needs (service/model_choice.py), and
``exact`` says which case it was.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

# ITU T.81 Annex K, natural (row-major) order, as Pillow's ``quantization`` gives them.
LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)
CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
    *([99] * 32),
)


@dataclass(frozen=True)
class JpegQuality:
    quality: int       # 1..100 on the IJG scale
    exact: bool        # the tables are exactly the IJG tables at that quality


def ijg_table(base: tuple[int, ...], quality: int) -> tuple[int, ...]:
    """``base`` scaled to ``quality`` as libjpeg does (``jpeg_quality_scaling``, baseline)."""
    q = min(max(quality, 1), 100)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return tuple(min(max((b * scale + 50) // 100, 1), 255) for b in base)


def _distance(tables: list[tuple[int, ...]], quality: int) -> float:
    """Mean |log ratio| between the file's tables and the IJG ones at ``quality``."""
    total, n = 0.0, 0
    for table, base in zip(tables, (LUMA, CHROMA), strict=False):
        for got, want in zip(table, ijg_table(base, quality), strict=True):
            total += abs(math.log(got / want))
            n += 1
    return total / n


def estimate_from_tables(tables: dict[int, list[int]] | dict[int, tuple[int, ...]]) -> JpegQuality | None:
    """The closest IJG quality to ``tables`` (Pillow's ``quantization``: index -> 64 entries in
    natural order); None when there is no usable table."""
    usable = [tuple(tables[i]) for i in sorted(tables)[:2] if len(tables[i]) == 64]
    if not usable or any(min(t) < 1 for t in usable):
        return None
    best = min(range(1, 101), key=lambda q: (_distance(usable, q), -q))
    exact = all(t == ijg_table(base, best) for t, base in zip(usable, (LUMA, CHROMA), strict=False))
    return JpegQuality(best, exact)


def estimate_quality(data: bytes) -> JpegQuality | None:
    """The quality of the JPEG ``data`` from its header; None for anything that is not a JPEG
    with quantisation tables (other formats, a corrupt header: the decoder reports those)."""
    if not data.startswith(b"\xff\xd8"):
        return None
    try:
        with Image.open(io.BytesIO(data)) as im:
            tables = getattr(im, "quantization", None)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    return estimate_from_tables(tables) if tables else None
