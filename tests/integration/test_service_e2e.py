"""End to end: real HTTP to the real gateway (uvicorn), real Triton behind it (CPU, ONNX Runtime).

Images are tiny and most requests use the smallest variant: two shared cores.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator

import httpx
import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image

from service.settings import Settings
from tests.support.gateway import Gateway
from triton_host.launcher import free_ports

pytestmark = pytest.mark.triton

RNG = np.random.default_rng(0)
H, W = 21, 26  # neither a multiple of 4 nor of 32
SMALL = "c4"


@pytest.fixture(scope="module")
def gateway(triton_server) -> Iterator[Gateway]:  # noqa: ANN001
    settings = Settings(triton_url=triton_server.grpc_url, max_concurrent_requests=32,
                        max_request_bytes=2_000_000)
    with Gateway(settings) as gw:
        yield gw


def _photo(h: int = H, w: int = W) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    base = 128 + 90 * np.sin(x / 3.0) * np.cos(y / 4.0)
    return np.clip(base[..., None] + RNG.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def _post(gw: Gateway, data: bytes, **params: object) -> httpx.Response:
    params.setdefault("model", SMALL)
    return httpx.post(f"{gw.url}/upscale", content=data, params=params,
                      headers={"Content-Type": "application/octet-stream"}, timeout=120)


def _tiff16(planes: np.ndarray) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, planes, photometric="rgb")
    return buf.getvalue()


RGBA = np.dstack([_photo(), RNG.integers(0, 256, (H, W), dtype=np.uint8)])
RGB16 = (_photo().astype(np.uint16) * 257 + RNG.integers(0, 257, (H, W, 3))).astype(np.uint16)

# name -> (input bytes, expected content type, expected PIL mode or "16-bit planes")
CASES = {
    "png-rgb": (_save(Image.fromarray(_photo()), "PNG"), "image/png", "RGB"),
    "png-rgba": (_save(Image.fromarray(RGBA, "RGBA"), "PNG"), "image/png", "RGBA"),
    "png-gray": (_save(Image.fromarray(_photo()[..., 0]), "PNG"), "image/png", "L"),
    "png-gray-alpha": (_save(Image.fromarray(RGBA[..., [0, 3]], "LA"), "PNG"), "image/png",
                       "LA"),
    "png-palette": (_save(Image.fromarray(_photo()).convert("P"), "PNG"), "image/png", "RGB"),
    "png-16": (imagecodecs.png_encode(RGB16), "image/png", 3),
    "png-16-gray": (imagecodecs.png_encode(np.ascontiguousarray(RGB16[..., 0])), "image/png", 1),
    "tiff-16": (_tiff16(RGB16), "image/png", 3),
    "tiff-8": (_save(Image.fromarray(_photo()), "TIFF"), "image/png", "RGB"),
    "jpeg": (_save(Image.fromarray(_photo()), "JPEG"), "image/jpeg", "RGB"),
    "jpeg-gray": (_save(Image.fromarray(_photo()[..., 0]), "JPEG"), "image/jpeg", "L"),
    "webp-alpha": (_save(Image.fromarray(RGBA, "RGBA"), "WEBP", lossless=True), "image/webp",
                   "RGBA"),
    "bmp": (_save(Image.fromarray(_photo()), "BMP"), "image/png", "RGB"),
    "gif": (_save(Image.fromarray(_photo()).convert("P"), "GIF"), "image/png", "RGB"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_formats_round_trip(gateway: Gateway, name: str) -> None:
    data, content_type, mode = CASES[name]
    r = _post(gateway, data)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == content_type
    assert r.headers["x-output-size"] == f"{4 * W}x{4 * H}"
    if isinstance(mode, int):  # 16 bits in, 16 bits out
        planes = imagecodecs.png_decode(r.content)
        assert planes.dtype == np.uint16 and planes.shape[:2] == (4 * H, 4 * W)
        assert (planes.shape[2] if planes.ndim == 3 else 1) == mode
        assert r.headers["x-bit-depth"] == "16"
    else:
        image = Image.open(io.BytesIO(r.content))
        assert image.mode == mode and image.size == (4 * W, 4 * H)


def test_exif_orientation_and_outscale(gateway: Gateway) -> None:
    exif = Image.Exif()
    exif[274] = 6  # rotate 90 degrees clockwise: width and height swap
    data = _save(Image.fromarray(_photo()), "JPEG", exif=exif.tobytes())
    r = _post(gateway, data, outscale=2.5, format="png")
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (round(H * 2.5), round(W * 2.5))


def test_multipart_and_default_model(gateway: Gateway) -> None:
    files = {"image": ("x.png", CASES["png-rgb"][0], "image/png")}
    r = httpx.post(f"{gateway.url}/upscale", files=files, data={"format": "webp"}, timeout=120)
    assert r.status_code == 200, r.text
    assert r.headers["x-model"] == "c16nla" and r.headers["content-type"] == "image/webp"


def test_tiling_through_triton_is_seamless(gateway: Gateway) -> None:
    """Small tiles (many, batched by Triton) against one whole-image tile: within one level."""
    data = _save(Image.fromarray(_photo(100, 130)), "PNG")
    whole = _post(gateway, data, model="c16nla")
    tiled = _post(gateway, data, model="c16nla", tile=32)
    assert whole.headers["x-tiles"] == "1" and int(tiled.headers["x-tiles"]) >= 4
    a = np.asarray(Image.open(io.BytesIO(whole.content))).astype(int)
    b = np.asarray(Image.open(io.BytesIO(tiled.content))).astype(int)
    assert np.abs(a - b).max() <= 1


def test_tile_larger_than_the_model_accepts_is_422(gateway: Gateway, triton_server) -> None:  # noqa: ANN001
    """The limit comes from Triton (the model's config.pbtxt), not from the gateway's settings."""
    from export.serving import load_serving

    window = load_serving().window
    data = _save(Image.fromarray(_photo(40, 500)), "PNG")
    largest = window - 2 * 32
    r = _post(gateway, data, tile=largest + 32)
    assert r.status_code == 422 and r.json()["error"] == "invalid_parameter", r.text
    assert f"up to {window} px" in r.json()["detail"][0]["msg"]
    assert r.json()["detail"][0]["max_tile"] == largest
    ok = _post(gateway, data, tile=largest)
    assert ok.status_code == 200 and ok.headers["x-tiles"] == "2", ok.text
    # a gateway configured with a tile too big for the engine shrinks it instead of failing
    settings = Settings(triton_url=triton_server.grpc_url, tile=1024)
    with Gateway(settings) as big:
        r = _post(big, data)
        assert r.status_code == 200 and r.headers["x-tiles"] == "2", r.text


def test_one_pixel_image(gateway: Gateway) -> None:
    r = _post(gateway, _save(Image.fromarray(_photo(1, 1)), "PNG"))
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (4, 4)


def test_twenty_concurrent_requests(gateway: Gateway) -> None:
    data = CASES["png-rgb"][0]

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=300) as client:
            return await asyncio.gather(*(client.post(
                f"{gateway.url}/upscale", content=data, params={"model": SMALL},
                headers={"Content-Type": "image/png"}) for _ in range(20)))

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 20
    assert len({r.content for r in responses}) == 1  # same answer under load


@pytest.mark.parametrize(("data", "params", "status", "code"), [
    (b"GIF89a but not really", {}, 400, "corrupt_image"),
    (b"plain text, not an image", {}, 415, "unsupported_media_type"),
    (CASES["png-rgb"][0], {"model": "nope"}, 422, "unknown_model"),
    (CASES["png-rgb"][0], {"quality": 0}, 422, "invalid_parameter"),
    (b"\x00" * 2_000_001, {}, 413, "payload_too_large"),
], ids=["corrupt", "unsupported", "unknown-model", "bad-param", "too-large"])
def test_client_errors(gateway: Gateway, data: bytes, params: dict, status: int, code: str
                       ) -> None:
    r = _post(gateway, data, **params)
    assert r.status_code == status and r.json()["error"] == code, r.text


def test_triton_unavailable_is_503(triton_server) -> None:  # noqa: ANN001
    (dead,) = free_ports(1)
    with Gateway(Settings(triton_url=f"127.0.0.1:{dead}")) as gw:
        r = _post(gw, CASES["png-rgb"][0])
        assert r.status_code == 503 and r.json()["error"] == "triton_unavailable"
        assert int(r.headers["retry-after"]) > 0
        assert httpx.get(f"{gw.url}/readyz").status_code == 503


def test_triton_timeout_is_504(triton_server) -> None:  # noqa: ANN001
    settings = Settings(triton_url=triton_server.grpc_url, triton_timeout_s=0.001)
    with Gateway(settings) as gw:
        r = _post(gw, CASES["png-rgb"][0])
    assert r.status_code == 504 and r.json()["error"] == "triton_timeout"


def test_over_concurrency_is_429(triton_server) -> None:  # noqa: ANN001
    settings = Settings(triton_url=triton_server.grpc_url, max_concurrent_requests=1)
    data = _save(Image.fromarray(_photo(90, 90)), "PNG")

    async def burst(url: str) -> list[int]:
        async with httpx.AsyncClient(timeout=300) as client:
            rs = await asyncio.gather(*(client.post(f"{url}/upscale", content=data,
                                                    params={"model": "c16nla", "tile": 32})
                                        for _ in range(4)))
        return sorted(r.status_code for r in rs)

    with Gateway(settings) as gw:
        statuses = asyncio.run(burst(gw.url))
    assert statuses[0] == 200 and 429 in statuses


def test_ready_models_and_metrics_move(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{gateway.url}/readyz").json()["ready"] is True
    models = {m["variant"]: m for m in httpx.get(f"{gateway.url}/models").json()["models"]}
    assert models["c16nla"]["ready"] and models["c16nla"]["default"] and SMALL in models

    def count() -> float:
        text = httpx.get(f"{gateway.url}/metrics").text
        line = 'imdsr_gateway_requests_total{model="c4",route="/upscale",status="200"}'
        return next((float(x.split()[-1]) for x in text.splitlines() if x.startswith(line)), 0.0)

    before = count()
    assert _post(gateway, CASES["png-rgb"][0]).status_code == 200
    assert count() == before + 1
    text = httpx.get(f"{gateway.url}/metrics").text
    for name in ("imdsr_gateway_stage_duration_seconds_count{stage=\"infer\"}",
                 "imdsr_gateway_tiles_per_request_count", "imdsr_gateway_requests_in_flight",
                 "imdsr_gateway_input_pixels_sum"):
        assert name in text


@pytest.mark.parametrize("name", ["png-rgba", "png-16", "png-gray-alpha", "png-icc"])
def test_local_infer_and_the_gateway_agree(gateway: Gateway, triton_server, name: str,  # noqa: ANN001
                                           tmp_path) -> None:  # noqa: ANN001
    """`imdsr infer` (PyTorch) and `POST /upscale` (Triton) share one picture pipeline: the same
    mode, bit depth, alpha and ICC profile, and pixels within one level (ORT vs PyTorch)."""
    from PIL import ImageCms
    from typer.testing import CliRunner

    from imdsr.cli import app

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = (_save(Image.fromarray(_photo()), "PNG", icc_profile=icc) if name == "png-icc"
            else CASES[name][0])
    src = tmp_path / "in.png"
    src.write_bytes(data)
    served = _post(gateway, data, format="png")
    assert served.status_code == 200, served.text
    result = CliRunner().invoke(app, ["infer", "--variant", SMALL, "--weights",
                                      str(triton_server.weights[SMALL]), "--format", "png", str(src),
                                      "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    local = (tmp_path / "out" / "in_x4.png").read_bytes()

    a, b = imagecodecs.png_decode(served.content), imagecodecs.png_decode(local)
    assert a.shape == b.shape and a.dtype == b.dtype == (np.uint16 if name == "png-16" else np.uint8)
    top = 257 if name == "png-16" else 1  # one 8-bit level
    assert np.abs(a.astype(np.int64) - b).max() <= top
    with Image.open(io.BytesIO(served.content)) as s, Image.open(io.BytesIO(local)) as m:
        assert s.mode == m.mode and s.info.get("icc_profile") == m.info.get("icc_profile")
