"""JPEG uploads with no `model=` go to the JPEG-robust model below the quality threshold (issue 27),
through the gateway and the session's real Triton (which serves every registry variant)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.app import create_app
from service.settings import Settings


def _photo() -> Image.Image:
    from skimage import data

    return Image.fromarray(np.ascontiguousarray(data.astronaut()[120:152, 180:220]))


def _encoded(fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    _photo().save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def client(triton_server) -> TestClient:  # noqa: ANN001
    settings = Settings(triton_url=triton_server.grpc_url, default_model="c4",
                        jpeg_model="c16nla_real", jpeg_quality_below=80)
    with TestClient(create_app(settings)) as c:
        yield c


def _post(client: TestClient, body: bytes, content_type: str, **params: object) -> dict:
    r = client.post("/upscale", content=body, params=params, headers={"Content-Type": content_type})
    assert r.status_code == 200, r.text
    return r.headers


def test_a_compressed_jpeg_gets_the_jpeg_model_and_says_why(client: TestClient) -> None:
    headers = _post(client, _encoded("JPEG", quality=40), "image/jpeg")
    assert headers["x-model"] == "c16nla_real" and headers["x-model-reason"] == "jpeg-quality=40"


def test_fine_jpegs_pngs_and_an_explicit_model_keep_their_model(client: TestClient) -> None:
    headers = _post(client, _encoded("JPEG", quality=92), "image/jpeg")
    assert (headers["x-model"], headers["x-model-reason"]) == ("c4", "default")
    headers = _post(client, _encoded("PNG"), "image/png")
    assert (headers["x-model"], headers["x-model-reason"]) == ("c4", "default")
    headers = _post(client, _encoded("JPEG", quality=40), "image/jpeg", model="c4")
    assert (headers["x-model"], headers["x-model-reason"]) == ("c4", "asked")


def test_a_jpeg_model_triton_does_not_serve_falls_back_to_the_default(triton_server) -> None:  # noqa: ANN001
    settings = Settings(triton_url=triton_server.grpc_url, default_model="c4",
                        jpeg_model="not_served", jpeg_quality_below=80)
    with TestClient(create_app(settings)) as c:
        headers = _post(c, _encoded("JPEG", quality=40), "image/jpeg")
    assert (headers["x-model"], headers["x-model-reason"]) == ("c4", "default")
