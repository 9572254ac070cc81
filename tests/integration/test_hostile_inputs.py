"""Hostile inputs against the real gateway (uvicorn on loopback) and the real Triton.

Every input here is made by the test (no binary fixtures). Each one gets its documented status and
error code, never a 500, a crash or a hang, and the request after it is served normally (200).

What the gateway does, decided here:

- The real format is sniffed from the bytes; ``Content-Type`` only says "this is a raw image body"
  (``image/*`` or ``application/octet-stream``) or "multipart". A PNG sent as ``image/jpeg`` is
  upscaled as the PNG it is (and answered as PNG, its own family); a PNG sent as ``text/plain`` is
  refused with 415 ``unsupported_media_type``, as is anything that is not an image we read.
- Decompression bombs (PNG, 16-bit PNG, TIFF, JPEG headers claiming 100000 x 100000, or just over
  the gateway's ``max_input_pixels``) are refused from the header with 413 ``image_too_large``:
  no pixel decoder runs at all (checked by watching Pillow's, libpng's and tifffile's decoders).
- An animated GIF with more frames than ``max_frames`` (100) is refused with 422 naming the cap;
  shorter animations are upscaled frame by frame (tests/integration/test_api_features.py).
- CMYK JPEG comes out as RGB with its colours converted; 16-bit PNG comes out 16-bit; palette with
  a transparent entry keeps its alpha; EXIF orientation is applied (a 90-degree tag swaps the sides).
- A body over ``max_request_bytes`` sent slowly without Content-Length gets 413
  ``payload_too_large`` as soon as the limit passes, and the connection is closed (the client stops
  uploading), not after the client has sent everything.
- ``model`` must match ``^[a-z0-9_]{1,64}$``: path characters get 422 before anything else runs;
  ``outscale`` must be a finite number in (0, 16]: 0, negative, NaN, inf and huge get 422.
"""

from __future__ import annotations

import builtins
import io
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import imagecodecs
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, event, given, settings
from PIL import Image, ImageFile, TiffImagePlugin

from service.settings import Settings
from tests.support.gateway import Gateway
from tests.unit.test_codec_properties import Source, sources

LIMIT = 64 * 1024          # max_request_bytes of the strict gateway
MAX_PIXELS = 512 * 512     # max_input_pixels of the strict gateway


# --- the gateways ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict(triton_server) -> Iterator[httpx.Client]:  # noqa: ANN001
    """The gateway with small limits, so that going over them is cheap."""
    settings = Settings(triton_url=triton_server.grpc_url, default_model="c4",
                        max_request_bytes=LIMIT, max_input_pixels=MAX_PIXELS)
    with Gateway(settings) as gw, httpx.Client(base_url=gw.url, timeout=60) as client:
        yield client


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


VALID = _save(Image.new("RGB", (8, 6), (200, 100, 50)), "PNG")


def _still_serves(client: httpx.Client) -> None:
    r = client.post("/upscale?model=c4", content=VALID, headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    assert r.headers["x-output-size"] == "32x24"


def _refused(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["error"] == code and body["detail"], body


def _image(r: httpx.Response) -> Image.Image:
    assert r.status_code == 200, r.text[:500]
    return Image.open(io.BytesIO(r.content))


# --- inputs -----------------------------------------------------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int, bits: int = 8, colour_type: int = 2) -> bytes:
    """A PNG with a valid IHDR claiming ``width`` x ``height`` and a tiny (valid zlib) IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, bits, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))


def tiff_header_only(width: int, height: int) -> bytes:
    """A little-endian baseline TIFF whose one IFD claims ``width`` x ``height`` 8-bit grey pixels
    in one strip of 16 bytes."""
    entries = [  # tag, type (3 SHORT, 4 LONG), value
        (256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
        (273, 4, 8), (277, 3, 1), (278, 4, height), (279, 4, 16)]
    ifd_offset = 8 + 16
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        packed = struct.pack("<I", value) if kind == 4 else struct.pack("<HH", value, 0)
        ifd += struct.pack("<HHI", tag, kind, 1) + packed
    return b"II*\x00" + struct.pack("<I", ifd_offset) + b"\x00" * 16 + ifd + b"\x00" * 4


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG whose SOF0 frame header is rewritten to claim ``width`` x ``height``."""
    data = bytearray(_save(Image.new("RGB", (16, 16), (10, 20, 30)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def noise_png(width: int, height: int, mode: str = "RGB", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return _save(Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode),
                 "PNG")


# --- the corpus: (name, request, check) -------------------------------------------------------------


@dataclass
class Case:
    name: str
    body: Callable[[], bytes]
    content_type: str = "image/png"
    query: str = "model=c4"
    status: int = 200
    code: str | None = None
    check: Callable[[httpx.Response], None] | None = field(default=None, repr=False)


def _sniffed_png(r: httpx.Response) -> None:
    assert r.headers["content-type"] == "image/png"  # the PNG's own family, not the declared JPEG
    assert r.headers["x-output-size"] == "280x200" and _image(r).size == (280, 200)


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (16, 12), (255, 0, 0))]
    for i in range(1, 300):  # blue, each with its own white pixel (Pillow merges identical frames)
        frame = Image.new("RGB", (16, 12), (0, 0, 255))
        frame.putpixel((i % 16, i // 16 % 12), (255, 255, 255))
        frames.append(frame)
    data = _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=20, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 300
    return data


def _cmyk(r: httpx.Response) -> None:
    image = _image(r)
    assert image.mode == "RGB" and image.size == (96, 64)
    mean = np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(mean, (0, 255, 255), atol=12)  # CMYK (255, 0, 0, 0) is cyan


def png16() -> bytes:
    planes = np.empty((16, 24, 4), np.uint16)
    planes[..., :3] = (1000, 30000, 60000)   # no multiple of 257: an 8-bit detour would show
    planes[..., 3] = 65535
    planes[:, :8, 3] = 0                      # left third transparent
    return imagecodecs.png_encode(planes)


def _png16(r: httpx.Response) -> None:
    assert r.headers["content-type"] == "image/png" and r.headers["x-bit-depth"] == "16"
    out = imagecodecs.png_decode(r.content)
    assert out.dtype == np.uint16 and out.shape == (64, 96, 4)
    opaque = out[8:-8, 40:-8]
    np.testing.assert_allclose(opaque[..., :3].reshape(-1, 3).mean(axis=0), (1000, 30000, 60000),
                               atol=800)
    assert (opaque[..., 3] == 65535).all() and (out[:, :24, 3] == 0).all()
    assert (opaque[..., :3] % 257 != 0).any()  # real 16-bit samples, not 8-bit ones widened


def palette_transparent() -> bytes:
    image = Image.new("P", (24, 16), 0)
    image.putpalette([0, 0, 0, 0, 200, 0] + [0, 0, 0] * 254)
    image.paste(1, (12, 0, 24, 16))  # right half: index 1 (green); left half: index 0 (transparent)
    return _save(image, "PNG", transparency=0)


def _palette(r: httpx.Response) -> None:
    image = _image(r)
    assert image.mode == "RGBA" and image.size == (96, 64)
    out = np.asarray(image)
    assert (out[:, :40, 3] == 0).all() and (out[:, 56:, 3] == 255).all()
    np.testing.assert_allclose(out[:, 56:, :3].reshape(-1, 3).mean(axis=0), (0, 200, 0), atol=12)


def exif_rotated_jpeg() -> bytes:
    image = Image.new("RGB", (40, 24), (255, 0, 0))
    image.paste((0, 0, 255), (20, 0, 40, 24))  # left red, right blue
    exif = Image.Exif()
    exif[274] = 6  # "rotate 90 degrees clockwise to display": the left side ends up on top
    return _save(image, "JPEG", exif=exif, quality=95)


def _rotated(r: httpx.Response) -> None:
    assert r.headers["x-input-size"] == "24x40" and r.headers["x-output-size"] == "96x160"
    out = np.asarray(_image(r).convert("RGB"), dtype=np.float64)
    assert out.shape == (160, 96, 3)
    np.testing.assert_allclose(out[:64].reshape(-1, 3).mean(axis=0), (255, 0, 0), atol=25)
    np.testing.assert_allclose(out[96:].reshape(-1, 3).mean(axis=0), (0, 0, 255), atol=25)


def _names(param: str, finite: bool = False) -> Callable[[httpx.Response], None]:
    """The 422 names the one parameter that is wrong (and, for NaN/inf, why)."""
    def check(r: httpx.Response) -> None:
        (error,) = r.json()["detail"]
        assert error["loc"] == ["query", param]
        if finite:  # NaN and inf are named as what they are, not as "over 16"
            assert "finite" in error["msg"], error
    return check


RNG_BYTES = np.random.default_rng(7).bytes(4000)
RGB = Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8))

CORPUS = [
    Case("empty-body", lambda: b"", status=400, code="corrupt_image"),
    Case("random-bytes", lambda: RNG_BYTES, status=415, code="unsupported_media_type"),
    Case("random-bytes-octet-stream", lambda: RNG_BYTES, "application/octet-stream",
         status=415, code="unsupported_media_type"),
    Case("truncated-png", lambda: _save(RGB, "PNG")[:120], status=400, code="corrupt_image"),
    Case("truncated-jpeg", lambda: _save(RGB, "JPEG")[:300], "image/jpeg",
         status=400, code="corrupt_image"),
    Case("truncated-webp", lambda: _save(RGB, "WEBP")[:80], "image/webp",
         status=400, code="corrupt_image"),
    Case("png-as-text-plain", lambda: noise_png(70, 50), "text/plain",
         status=415, code="unsupported_media_type"),
    Case("png-as-image-jpeg", lambda: noise_png(70, 50), "image/jpeg", check=_sniffed_png),
    Case("animated-gif-300-frames", animated_gif, "image/gif", query="model=c4&format=png",
         status=422, code="invalid_parameter"),
    Case("cmyk-jpeg", lambda: _save(Image.new("CMYK", (24, 16), (255, 0, 0, 0)), "JPEG", quality=95),
         "image/jpeg", query="model=c4&format=png", check=_cmyk),
    # alpha=bicubic: these check that alpha survives exactly (the network's alpha is not exact)
    Case("png-16bit-rgba", png16, query="model=c4&alpha=bicubic", check=_png16),
    Case("png-palette-transparency", palette_transparent, query="model=c4&alpha=bicubic",
         check=_palette),
    Case("jpeg-exif-rotated", exif_rotated_jpeg, "image/jpeg", query="model=c4&format=png",
         check=_rotated),
] + [
    Case(f"model-{name}", lambda: VALID, query=query, status=422, code="invalid_parameter",
         check=_names("model"))
    for name, query in [("dotdot-passwd", "model=../etc/passwd"), ("slash", "model=a/b"),
                        ("encoded-dotdot", "model=%2e%2e"), ("encoded-slash", "model=..%2Fetc%2Fpasswd"),
                        ("absolute", "model=/etc/passwd"), ("backslash", "model=..%5Cwin")]
] + [
    Case(f"outscale-{value}", lambda: VALID, query=f"model=c4&outscale={value}", status=422,
         code="invalid_parameter", check=_names("outscale", finite="n" in value.lower()))
    for value in ("0", "-1", "nan", "NaN", "inf", "-inf", "1e308", "16.01")
]


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_hostile_input(strict: httpx.Client, case: Case) -> None:
    r = strict.post(f"/upscale?{case.query}", content=case.body(),
                    headers={"Content-Type": case.content_type})
    if case.code is not None:
        _refused(r, case.status, case.code)
    else:
        assert r.status_code == case.status, r.text[:500]
    if case.check is not None:
        case.check(r)
    _still_serves(strict)


# --- decompression bombs: refused from the header, before any pixel is decoded ---------------------


BOMBS = {
    "png-100000x100000": lambda: png_header_only(100_000, 100_000),
    "png16-100000x100000": lambda: png_header_only(100_000, 100_000, bits=16, colour_type=6),
    "png-just-over-limit": lambda: png_header_only(MAX_PIXELS // 256 + 1, 256),
    "png-1x-over-limit": lambda: png_header_only(MAX_PIXELS + 1, 1, colour_type=0),
    "tiff-100000x100000": lambda: tiff_header_only(100_000, 100_000),
    "tiff-just-over-limit": lambda: tiff_header_only(MAX_PIXELS // 256 + 1, 256),
    "jpeg-65000x65000": lambda: jpeg_claiming(65_000, 65_000),
}


@pytest.mark.parametrize("make", BOMBS.values(), ids=list(BOMBS))
def test_decompression_bomb_refused_from_header(strict: httpx.Client, make: Callable[[], bytes],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[str] = []

    def watch(name: str, real: Callable) -> Callable:
        def wrapper(*args: object, **kwargs: object) -> object:
            decoded.append(name)
            return real(*args, **kwargs)
        return wrapper

    data = make()
    assert len(data) < 2000  # the bomb is the header's claim, not the upload
    with monkeypatch.context() as m:
        m.setattr(ImageFile.ImageFile, "load", watch("Pillow", ImageFile.ImageFile.load))
        m.setattr(TiffImagePlugin.TiffImageFile, "load", watch("Pillow", TiffImagePlugin.TiffImageFile.load))
        m.setattr(imagecodecs, "png_decode", watch("libpng", imagecodecs.png_decode))
        m.setattr(tifffile, "TiffFile", watch("tifffile", tifffile.TiffFile))
        start = time.perf_counter()
        r = strict.post("/upscale?model=c4", content=data, headers={"Content-Type": "image/png"})
        elapsed = time.perf_counter() - start
    _refused(r, 413, "image_too_large")
    assert decoded == [], f"pixel decoders ran on a bomb: {decoded}"
    assert elapsed < 5, elapsed
    _still_serves(strict)


def test_bomb_just_under_the_limit_is_decoded(strict: httpx.Client) -> None:
    """The counterpart of the bombs: a header at the limit is not refused (the check is not
    simply "refuse big headers"); this one is damaged (tiny IDAT), so it is a 400."""
    r = strict.post("/upscale?model=c4", content=png_header_only(MAX_PIXELS // 256, 256),
                    headers={"Content-Type": "image/png"})
    _refused(r, 400, "corrupt_image")
    _still_serves(strict)


# --- multipart ----------------------------------------------------------------------------------


MULTIPART = [
    ("no-file-field", {"data": {"model": "c4"}, "files": {"other": ("a.png", VALID, "image/png")}},
     422, "invalid_parameter"),
    ("image-as-text-field", {"data": {"image": "not a file"}, "files": {"x": ("a", b"1", "text/plain")}},
     422, "invalid_parameter"),
    ("model-path-in-form", {"data": {"model": "../etc/passwd"}, "files": {"image": ("a.png", VALID)}},
     422, "invalid_parameter"),
    ("outscale-nan-in-form", {"data": {"outscale": "nan"}, "files": {"image": ("a.png", VALID)}},
     422, "invalid_parameter"),
    ("outscale-zero-in-form", {"data": {"outscale": "0"}, "files": {"image": ("a.png", VALID)}},
     422, "invalid_parameter"),
    ("file-over-limit", {"files": {"image": ("a.png", b"\x89PNG" + b"\x00" * LIMIT, "image/png")}},
     413, "payload_too_large"),
]


@pytest.mark.parametrize(("request_kwargs", "status", "code"), [m[1:] for m in MULTIPART],
                         ids=[m[0] for m in MULTIPART])
def test_hostile_multipart(strict: httpx.Client, request_kwargs: dict, status: int, code: str) -> None:
    _refused(strict.post("/upscale?model=c4", **request_kwargs), status, code)
    _still_serves(strict)


@pytest.mark.parametrize("content_type", ["multipart/form-data",                 # no boundary
                                          "multipart/form-data; boundary=xyz"])  # none in the body
def test_malformed_multipart(strict: httpx.Client, content_type: str) -> None:
    r = strict.post("/upscale?model=c4", content=b"garbage\r\n--\r\n", headers={"Content-Type": content_type})
    _refused(r, 400, "bad_request")
    _still_serves(strict)


def test_model_with_path_characters_reads_nothing(strict: httpx.Client,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``model`` never reaches a file system call: the gateway (in this process) opens no path."""
    opened: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(path: object, *args: object, **kwargs: object) -> object:
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    def spy_os_open(path: object, *args: object, **kwargs: object) -> int:
        opened.append(str(path))
        return real_os_open(path, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(builtins, "open", spy_open)
        m.setattr(io, "open", spy_open)
        m.setattr(os, "open", spy_os_open)
        for query in ("model=../etc/passwd", "model=%2e%2e%2fetc%2fpasswd", "model=a/b"):
            r = strict.post(f"/upscale?{query}", content=VALID, headers={"Content-Type": "image/png"})
            _refused(r, 422, "invalid_parameter")
        r = strict.post("/upscale", data={"model": "../../etc/passwd"}, files={"image": ("a.png", VALID)})
        _refused(r, 422, "invalid_parameter")
    assert not [p for p in opened if "passwd" in p or p.startswith(("..", "a/b"))], opened
    _still_serves(strict)


# --- a slow body over the byte limit ------------------------------------------------------------


CHUNK = 4096
CHUNKS = 64  # 256 KiB in all, four times the limit; 50 ms apart: 3.2 s if all were sent


def _slow(sent: list[int], prefix: bytes = b"", suffix: bytes = b"") -> Iterator[bytes]:
    if prefix:
        yield prefix
    for i in range(CHUNKS):
        sent.append(i)
        time.sleep(0.05)
        yield (b"\x89PNG\r\n\x1a\n" if i == 0 else b"") + b"\x00" * (CHUNK - (8 if i == 0 else 0))
    if suffix:
        yield suffix


@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
def test_slow_body_over_limit_refused_when_limit_passes(strict: httpx.Client, multipart: bool) -> None:
    sent: list[int] = []
    if multipart:
        boundary = "hostileboundary"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
                "Content-Type: image/png\r\n\r\n").encode()
        body = _slow(sent, head, f"\r\n--{boundary}--\r\n".encode())
        content_type = f"multipart/form-data; boundary={boundary}"
    else:
        body, content_type = _slow(sent), "image/png"
    start = time.perf_counter()
    # No Content-Length (a generator body goes chunked): only counting the bytes can catch it.
    r = strict.post("/upscale?model=c4", content=body, headers={"Content-Type": content_type})
    elapsed = time.perf_counter() - start
    _refused(r, 413, "payload_too_large")
    assert r.headers.get("connection") == "close"
    passed_at = LIMIT // CHUNK + 1
    # The answer came while the client was still uploading: a few chunks after the limit, not all.
    assert passed_at <= len(sent) < CHUNKS, (len(sent), passed_at)
    assert elapsed < CHUNKS * 0.05 * 0.75, elapsed
    _still_serves(strict)


def test_concurrent_hostile_and_valid(strict: httpx.Client) -> None:
    """Hostile requests in parallel with valid ones: the valid ones are all served."""
    statuses: list[int] = []
    lock = threading.Lock()

    def hostile(i: int) -> None:
        body = [b"", RNG_BYTES, png_header_only(100_000, 100_000), _save(RGB, "PNG")[:100]][i % 4]
        r = strict.post("/upscale?model=c4", content=body, headers={"Content-Type": "image/png"})
        with lock:
            statuses.append(r.status_code)

    threads = [threading.Thread(target=hostile, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for _ in range(3):
        _still_serves(strict)
    for t in threads:
        t.join(timeout=60)
    assert sorted(set(statuses)) == [400, 413, 415], statuses


# --- narrow outputs the PNG encoder once overflowed on, outputs too wide for their format ---------


def test_narrow_noisy_output_png(strict: httpx.Client) -> None:
    data = noise_png(1, 600, "L")  # grey 1 x 600 -> outscale 1: a 1-px-wide noisy grey PNG
    r = strict.post("/upscale?model=c4&outscale=1", content=data, headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text


def test_output_wider_than_webp_allows(strict: httpx.Client) -> None:
    data = _save(Image.new("RGB", (4096, 2), (40, 80, 120)), "PNG")
    r = strict.post("/upscale?model=c4&format=webp", content=data, headers={"Content-Type": "image/png"})
    assert r.status_code == 413 and r.json()["error"] == "image_too_large", r.text[:300]
    assert "16383" in r.json()["detail"]


# --- property: any size, mode, depth and format through the whole service -----------------------


@pytest.fixture(scope="module")
def roomy(triton_server) -> Iterator[httpx.Client]:  # noqa: ANN001
    """Default limits: a 300 x 300 16-bit RGBA noise image is ~700 KB."""
    with (Gateway(Settings(triton_url=triton_server.grpc_url, default_model="c4")) as gw,
          httpx.Client(base_url=gw.url, timeout=120) as client):
        yield client


CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "TIFF": "image/tiff",
                 "GIF": "image/gif"}


@settings(max_examples=15, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(src=sources())
def test_any_image_upscales_exactly_4x(roomy: httpx.Client, src: Source) -> None:
    event(f"{src.mode}/{src.bits} {src.fmt} {src.width}x{src.height}")  # --hypothesis-show-statistics
    r = roomy.post("/upscale?model=c4", content=src.data,
                   headers={"Content-Type": CONTENT_TYPES[src.fmt]})
    assert r.status_code == 200, (r.status_code, r.text[:300], src.mode, src.bits, src.fmt)
    assert r.headers["x-input-size"] == f"{src.width}x{src.height}"
    assert r.headers["x-output-size"] == f"{4 * src.width}x{4 * src.height}"
    fmt = r.headers["content-type"]
    if fmt == "image/png":
        planes = imagecodecs.png_decode(r.content)
        planes = planes if planes.ndim == 3 else planes[..., None]
    else:
        planes = np.asarray(Image.open(io.BytesIO(r.content)))
        planes = planes if planes.ndim == 3 else planes[..., None]
    assert planes.shape[:2] == (4 * src.height, 4 * src.width)
    assert (planes.shape[2] in (2, 4)) == (src.has_alpha and fmt != "image/jpeg")
    sixteen = src.bits == 16 and fmt == "image/png"
    assert r.headers["x-bit-depth"] == ("16" if sixteen else "8")
    assert planes.dtype == (np.uint16 if sixteen else np.uint8)
