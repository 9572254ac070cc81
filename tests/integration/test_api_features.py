"""What users of upscalers ask for, through the real gateway and Triton: target sizes, alpha through
the network, strict parameters, ETags, API keys, CORS and request ids."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import imagecodecs
import numpy as np
import pytest
from PIL import Image

from service.settings import Settings
from tests.support.gateway import Gateway

RNG = np.random.default_rng(7)


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, "PNG")
    return buf.getvalue()


PHOTO = _png(np.clip(128 + RNG.normal(0, 40, (30, 40, 3)), 0, 255).astype(np.uint8))  # 40x30


@pytest.fixture(scope="module")
def api(triton_server) -> Iterator[httpx.Client]:  # noqa: ANN001
    with Gateway(Settings(triton_url=triton_server.grpc_url, default_model="c4")) as gw, \
            httpx.Client(base_url=gw.url, timeout=120) as client:
        yield client


def _post(client: httpx.Client, data: bytes = PHOTO, **params: object) -> httpx.Response:
    return client.post("/upscale", content=data, params=params, headers={"Content-Type": "image/png"})


@pytest.mark.parametrize(("params", "size"), [
    ({}, "160x120"),
    ({"width": 100}, "100x75"),                                   # one side: aspect kept
    ({"height": 60}, "80x60"),
    ({"width": 100, "height": 100}, "100x75"),                    # inside (default)
    ({"width": 100, "height": 100, "fit": "cover"}, "100x100"),   # filled, overflow cropped
    ({"width": 100, "height": 40, "fit": "fill"}, "100x40"),      # stretched
    ({"outscale": 2}, "80x60"),
])
def test_target_sizes(api: httpx.Client, params: dict, size: str) -> None:
    r = _post(api, **params)
    assert r.status_code == 200, r.text
    assert r.headers["x-output-size"] == size
    assert Image.open(io.BytesIO(r.content)).size == tuple(map(int, size.split("x")))


@pytest.mark.parametrize("params", [
    {"width": 0}, {"height": -5}, {"outscale": 2, "width": 100}, {"fit": "stretch", "width": 9},
    {"colour": "red"}, {"widht": 100},
])
def test_nonsense_and_unknown_parameters_are_422(api: httpx.Client, params: dict) -> None:
    r = _post(api, **params)
    assert r.status_code == 422 and r.json()["error"] == "invalid_parameter", r.text
    unknown = set(params) - {"width", "height", "outscale", "fit"}
    for name in unknown:
        assert any(name in d["loc"] for d in r.json()["detail"]), r.json()


def test_target_size_counts_against_the_output_limit(api: httpx.Client) -> None:
    r = _post(api, width=60000, height=60000, fit="fill")
    assert r.status_code == 413 and r.json()["error"] == "image_too_large"


def test_alpha_goes_through_the_network(api: httpx.Client) -> None:
    alpha = np.zeros((30, 40), np.uint8)
    alpha[8:22, 10:30] = 255  # a cut-out with hard edges
    rgba = np.dstack([np.full((30, 40, 3), 90, np.uint8), alpha])
    model = imagecodecs.png_decode(_post(api, _png(rgba, "RGBA"), alpha="model").content)
    bicubic = imagecodecs.png_decode(_post(api, _png(rgba, "RGBA"), alpha="bicubic").content)
    # alpha=model is exactly the network's answer for the alpha plane as a grey image
    grey = imagecodecs.png_decode(_post(api, _png(np.repeat(alpha[..., None], 3, axis=2))).content)
    expect = np.rint(grey.mean(axis=2)).astype(np.uint8)
    assert np.abs(model[..., 3].astype(int) - expect).max() <= 1
    assert not np.array_equal(model[..., 3], bicubic[..., 3])


def test_etag_if_none_match_vary_and_cache_control(api: httpx.Client) -> None:
    first, again = _post(api), _post(api)
    tag = first.headers["etag"]
    assert tag.startswith('"') and tag == again.headers["etag"] and first.content == again.content
    assert first.headers["vary"] == "Accept" and "max-age" in first.headers["cache-control"]
    fixed = _post(api, format="png")
    assert "vary" not in fixed.headers and fixed.headers["etag"] != tag  # options are in the tag
    assert _post(api, width=100).headers["etag"] != tag
    r = api.post("/upscale", content=PHOTO, headers={"Content-Type": "image/png", "If-None-Match": tag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == tag
    other = api.post("/upscale", content=PHOTO, headers={"Content-Type": "image/png",
                                                            "If-None-Match": '"nope"'})
    assert other.status_code == 200


def test_request_ids(api: httpx.Client) -> None:
    mine = api.post("/upscale", content=PHOTO, headers={"Content-Type": "image/png",
                                                         "X-Request-ID": "job-42.a"})
    assert mine.headers["x-request-id"] == "job-42.a"
    made = api.get("/healthz").headers["x-request-id"]
    assert len(made) == 32 and int(made, 16) >= 0
    hostile = api.get("/healthz", headers={"X-Request-ID": "x" * 300}).headers["x-request-id"]
    assert hostile != "x" * 300 and len(hostile) == 32
    error = _post(api, width=0)
    assert error.status_code == 422 and len(error.headers["x-request-id"]) == 32


def test_api_keys_and_cors(triton_server) -> None:  # noqa: ANN001
    settings = Settings(triton_url=triton_server.grpc_url, default_model="c4", api_keys=["s3cret"],
                        cors_origins=["http://app.example"])
    with Gateway(settings) as gw, httpx.Client(base_url=gw.url, timeout=120) as client:
        denied = _post(client)
        assert denied.status_code == 401 and denied.json()["error"] == "unauthorized"
        assert client.get("/models").status_code == 401
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
        ok = client.post("/upscale", content=PHOTO, headers={"Content-Type": "image/png",
                                                              "X-API-Key": "s3cret"})
        assert ok.status_code == 200
        wrong = client.post("/upscale", content=PHOTO, headers={"Content-Type": "image/png",
                                                                 "X-API-Key": "s3cret2"})
        assert wrong.status_code == 401
        pre = client.options("/upscale", headers={"Origin": "http://app.example",
                                                   "Access-Control-Request-Method": "POST"})
        assert pre.headers["access-control-allow-origin"] == "http://app.example"
        stranger = client.options("/upscale", headers={"Origin": "http://evil.example",
                                                        "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in stranger.headers


def test_no_cors_by_default(api: httpx.Client) -> None:
    r = api.get("/healthz", headers={"Origin": "http://app.example"})
    assert "access-control-allow-origin" not in r.headers


def test_avif_out_and_heic_in(api: httpx.Client) -> None:
    import pillow_heif

    avif = api.post("/upscale", content=PHOTO, params={"format": "avif"},
                    headers={"Content-Type": "image/png"})
    assert avif.status_code == 200 and avif.headers["content-type"] == "image/avif"
    assert Image.open(io.BytesIO(avif.content)).size == (160, 120)
    by_accept = api.post("/upscale", content=PHOTO, headers={"Content-Type": "image/png",
                                                             "Accept": "image/avif"})
    assert by_accept.headers["content-type"] == "image/avif" and by_accept.headers["vary"] == "Accept"
    heif = pillow_heif.from_pillow(Image.open(io.BytesIO(PHOTO)).convert("RGB"))
    buf = io.BytesIO()
    heif.save(buf, quality=90)
    heic = api.post("/upscale", content=buf.getvalue(), headers={"Content-Type": "image/heic"})
    assert heic.status_code == 200 and heic.headers["content-type"] == "image/jpeg"  # lossy family
    assert heic.headers["x-output-size"] == "160x120"


def test_metadata_keep_and_strip(api: httpx.Client) -> None:
    from PIL import ImageCms

    exif = Image.Exif()
    exif[0x010F] = "ImdsrCam"  # Make
    exif[0x0112] = 6           # Orientation: rotate 90 on display
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    Image.open(io.BytesIO(PHOTO)).save(buf, "JPEG", exif=exif.tobytes(), icc_profile=icc)
    kept = api.post("/upscale", content=buf.getvalue(), headers={"Content-Type": "image/jpeg"})
    out = Image.open(io.BytesIO(kept.content))
    assert out.size == (120, 160)  # orientation applied to the pixels...
    assert out.getexif().get(0x010F) == "ImdsrCam" and out.getexif().get(0x0112, 1) == 1  # ...reset
    assert out.info.get("icc_profile") == icc
    stripped = api.post("/upscale", content=buf.getvalue(), params={"metadata": "strip"},
                        headers={"Content-Type": "image/jpeg"})
    out = Image.open(io.BytesIO(stripped.content))
    assert 0x010F not in out.getexif() and out.info.get("icc_profile") == icc  # ICC stays


def _gif(frames: int, size: tuple[int, int] = (16, 12)) -> bytes:
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    images = [Image.new("RGB", size, colours[i % 3]) for i in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=[40, 50, 60][:frames],
                   loop=0)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "writer"), [(None, "WEBP"), ("webp", "WEBP"), ("png", "PNG")])
def test_animations_keep_every_frame(api: httpx.Client, fmt: str | None, writer: str) -> None:
    params = {"format": fmt} if fmt else {}
    r = api.post("/upscale", content=_gif(3), params=params, headers={"Content-Type": "image/gif"})
    assert r.status_code == 200, r.text
    assert r.headers["x-frames"] == "3" and r.headers["x-output-size"] == "64x48"
    out = Image.open(io.BytesIO(r.content))
    assert out.format == writer and out.n_frames == 3 and out.size == (64, 48)
    for index, channel in enumerate((0, 1, 2)):  # each frame is its own colour, x4
        out.seek(index)
        mean = np.asarray(out.convert("RGB"), dtype=float).reshape(-1, 3).mean(axis=0)
        assert mean.argmax() == channel, (index, mean)
        assert out.info.get("duration") in (40 + 10 * index, None) or writer == "PNG"


def test_animation_limits(api: httpx.Client, triton_server) -> None:  # noqa: ANN001
    jpeg = api.post("/upscale", content=_gif(3), params={"format": "jpeg"},
                    headers={"Content-Type": "image/gif"})
    assert jpeg.status_code == 422 and "animation" in str(jpeg.json()["detail"])
    settings = Settings(triton_url=triton_server.grpc_url, default_model="c4", max_frames=2)
    with Gateway(settings) as gw:
        capped = httpx.post(f"{gw.url}/upscale", content=_gif(3), headers={"Content-Type": "image/gif"})
        assert capped.status_code == 422 and "at most 2" in str(capped.json()["detail"])
    settings = Settings(triton_url=triton_server.grpc_url, default_model="c4", max_input_pixels=500)
    with Gateway(settings) as gw:  # 3 frames x 192 px = 576 > 500, though each frame fits
        r = httpx.post(f"{gw.url}/upscale", content=_gif(3), headers={"Content-Type": "image/gif"})
        assert r.status_code == 413 and "all frames" in r.json()["detail"]
