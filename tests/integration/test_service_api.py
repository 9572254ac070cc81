"""The gateway's HTTP behaviour in-process (TestClient) against the real Triton: routes, errors, limits."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from service.app import create_app
from service.settings import Settings
from training.models import get_variant


def _png(w: int = 70, h: int = 50, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def _flat_png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (20, 40, 60)).save(buf, "PNG")
    return buf.getvalue()


def _app(triton, **overrides: object) -> FastAPI:  # noqa: ANN001
    """The gateway in-process against the session's real Triton; c4 keeps two cores quick."""
    settings = {"triton_url": triton.grpc_url, "default_model": "c4", "tile": 32, "tile_context": 0,
                **overrides}
    return create_app(Settings(**settings))


@pytest.fixture(scope="module")
def client(triton_server) -> TestClient:  # noqa: ANN001
    with TestClient(_app(triton_server)) as c:
        yield c


def test_raw_body_round_trip(client: TestClient) -> None:
    r = client.post("/upscale", content=_png(), headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-input-size"] == "70x50" and r.headers["x-output-size"] == "280x200"
    assert r.headers["x-model"] == "c4"
    # tile 32, no context, on the image padded to its 64-px window bucket (128x64): 4 x 2 tiles
    assert int(r.headers["x-tiles"]) == 8
    assert "infer;dur=" in r.headers["server-timing"]
    assert Image.open(io.BytesIO(r.content)).size == (280, 200)


def test_multipart_with_form_options(client: TestClient) -> None:
    r = client.post("/upscale", files={"image": ("a.png", _png(), "image/png")},
                    data={"format": "jpeg", "model": "c4", "outscale": "2"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg" and r.headers["x-model"] == "c4"
    assert Image.open(io.BytesIO(r.content)).size == (140, 100)


def test_accept_header_picks_format(client: TestClient) -> None:
    r = client.post("/upscale", content=_png(), headers={"Content-Type": "image/png",
                                                         "Accept": "image/webp"})
    assert r.headers["content-type"] == "image/webp"


def test_outscale_fractional(client: TestClient) -> None:
    r = client.post("/upscale?outscale=3.5", content=_png(), headers={"Content-Type": "image/png"})
    assert Image.open(io.BytesIO(r.content)).size == (245, 175)


ERROR_CASES = [
    (b"not an image at all", "image/png", "", 415, "unsupported_media_type"),
    (_png()[:60], "image/png", "", 400, "corrupt_image"),
    (b"", "image/png", "", 400, "corrupt_image"),
    (_png(), "text/plain", "", 415, "unsupported_media_type"),
    (_png(), "image/png", "?model=nope", 422, "unknown_model"),
    (_png(), "image/png", "?format=gif", 422, "invalid_parameter"),
    (_png(), "image/png", "?outscale=-1", 422, "invalid_parameter"),
    (_png(), "image/png", "?tile=33", 422, "invalid_parameter"),
    (_flat_png(400, 300), "image/png", "", 413, "image_too_large"),
    (_png(100, 80), "image/png", "?outscale=16", 413, "image_too_large"),
    (b"x" * 300_000, "image/png", "", 413, "payload_too_large"),
]


@pytest.mark.parametrize(("body", "ctype", "params", "status", "code"), ERROR_CASES,
                         ids=[f"{c[4]}-{i}" for i, c in enumerate(ERROR_CASES)])
def test_errors_are_json(triton_server, body: bytes, ctype: str, params: str, status: int,
                         code: str) -> None:
    app = _app(triton_server, max_input_pixels=100_000, max_output_pixels=1_000_000,
               max_request_bytes=200_000)
    with TestClient(app) as c:
        r = c.post(f"/upscale{params}", content=body, headers={"Content-Type": ctype})
    assert r.status_code == status, r.text
    assert r.json()["error"] == code and r.json()["detail"]


def test_multipart_without_image_field(client: TestClient) -> None:
    r = client.post("/upscale", data={"model": "c4"}, files={"other": ("a", b"x", "text/plain")})
    assert r.status_code == 422 and r.json()["error"] == "invalid_parameter"


def test_request_timeout(triton_server) -> None:  # noqa: ANN001
    # An estimate that says "fast" gets the request admitted; the deadline then ends it with 504.
    app = _app(triton_server, default_model="c16nla", request_timeout_s=0.05,
               seconds_per_mpx={"c16nla": 1e-6})
    with TestClient(app) as c:
        r = c.post("/upscale", content=_png(160, 160), headers={"Content-Type": "image/png"})
    assert r.status_code == 504 and r.json()["error"] == "request_timeout"


def test_request_that_cannot_finish_in_time_is_refused_up_front(triton_server) -> None:  # noqa: ANN001
    app = _app(triton_server, default_model="c16nla", request_timeout_s=0.05)
    with TestClient(app) as c:
        r = c.post("/upscale", content=_png(160, 160), headers={"Content-Type": "image/png"})
    assert r.status_code == 413 and r.json()["error"] == "image_too_large"
    assert "model time" in r.json()["detail"]


def test_health_ready_models_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    models = client.get("/models").json()["models"]
    assert {"c16nla", "c4"} <= {m["variant"] for m in models}
    assert all(m["scale"] == 4 and m["ready"] for m in models)
    # each served model says when to pick it, as its registry entry does (through config.pbtxt)
    assert all(m["use_when"] == get_variant(m["variant"]).use_when for m in models)
    client.post("/upscale", content=_png(), headers={"Content-Type": "image/png"})
    text = client.get("/metrics").text
    assert 'imdsr_gateway_requests_total{model="c4",route="/upscale",status="200"}' in text
    assert "imdsr_gateway_stage_duration_seconds_bucket" in text
    assert client.get("/docs").status_code == 200


def test_unknown_route_is_json(client: TestClient) -> None:
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
