"""The JPEG quality estimate from quantisation tables, and the gateway's choice built on it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imdsr.imaging.jpeg_quality import CHROMA, LUMA, estimate_from_tables, estimate_quality, ijg_table
from service.model_choice import jpeg_candidate
from service.settings import Settings


def _jpeg(quality: int | None = None, subsampling: int = 2, grey: bool = False, **kw: object) -> bytes:
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8))
    buf = io.BytesIO()
    (im.convert("L") if grey else im).save(buf, "JPEG", subsampling=subsampling,
                                           **({"quality": quality} if quality else {}), **kw)
    return buf.getvalue()


@pytest.mark.parametrize("subsampling", [0, 2])
def test_every_pillow_quality_is_recovered_exactly(subsampling: int) -> None:
    for q in range(1, 101):
        got = estimate_quality(_jpeg(q, subsampling))
        assert got is not None and (got.quality, got.exact) == (q, True), (q, got)


def test_greyscale_has_one_table_and_is_recovered() -> None:
    got = estimate_quality(_jpeg(37, grey=True))
    assert got is not None and (got.quality, got.exact) == (37, True)


def test_the_ijg_scaling_matches_the_standard_at_50_and_is_all_ones_at_100() -> None:
    assert ijg_table(LUMA, 50) == LUMA and ijg_table(CHROMA, 50) == CHROMA
    assert set(ijg_table(LUMA, 100)) == {1}


def test_an_encoders_own_tables_get_the_closest_quality_not_exact() -> None:
    # A camera-style table: IJG quality 60 with every entry nudged, as encoders with tuned
    # tables differ from libjpeg's.
    own = [max(1, v + (1 if i % 3 else -1)) for i, v in enumerate(ijg_table(LUMA, 60))]
    got = estimate_from_tables({0: own, 1: list(ijg_table(CHROMA, 60))})
    assert got is not None and not got.exact and abs(got.quality - 60) <= 3
    # written into a real file with Pillow's qtables, read back the same way
    data = _jpeg(qtables=[own, list(ijg_table(CHROMA, 60))])
    assert estimate_quality(data) == got


def test_non_jpegs_and_broken_headers_give_none() -> None:
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    assert estimate_quality(png.getvalue()) is None
    assert estimate_quality(b"\xff\xd8\xff\xe0 truncated") is None
    assert estimate_quality(b"") is None
    assert estimate_from_tables({}) is None and estimate_from_tables({0: [0] * 64}) is None


def test_the_jpeg_model_takes_jpegs_below_the_threshold_only() -> None:
    s = Settings(jpeg_model="c16nla_real", jpeg_quality_below=80)
    low = jpeg_candidate(_jpeg(50), s)
    assert low is not None and (low.model, low.reason) == ("c16nla_real", "jpeg-quality=50")
    assert jpeg_candidate(_jpeg(79), s) is not None
    assert jpeg_candidate(_jpeg(80), s) is None and jpeg_candidate(_jpeg(95), s) is None
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    assert jpeg_candidate(png.getvalue(), s) is None
    assert jpeg_candidate(_jpeg(20), Settings(jpeg_model="")) is None  # routing off
