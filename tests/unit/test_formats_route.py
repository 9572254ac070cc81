"""``GET /formats``: the codec's format table as the gateway serves it (the web page reads it).

The route needs no Triton: the app is built and asked in-process, its lifespan (the gRPC channel)
never started.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from imdsr.imaging.codec import FORMATS, OutputFormat
from service.app import create_app
from service.settings import Settings


def _client(**settings: object) -> TestClient:
    return TestClient(create_app(Settings(triton_url="127.0.0.1:1", **settings)))


def test_every_output_format_is_listed_with_its_facts() -> None:
    answer = _client(avif_quality=55).get("/formats")
    assert answer.status_code == 200
    listed = answer.json()["formats"]
    assert [f["name"] for f in listed] == [fmt.value for fmt in OutputFormat]
    for entry in listed:
        fmt = OutputFormat(entry["name"])
        spec = FORMATS[fmt]
        assert entry["content_type"] == fmt.content_type
        assert entry["extension"] == spec.extension and f".{entry['extension']}" == fmt.suffix
        assert (entry["label"], entry["max_side"], entry["animated"]) == \
            (spec.label, spec.max_side, spec.animated)
    # the quality is this gateway's (its settings), not the codec's starting value
    quality = {f["name"]: f["quality"] for f in listed}
    assert quality == {"png": None, "jpeg": 92, "webp": 90, "avif": 55}


def test_open_without_an_api_key_like_health() -> None:
    client = _client(api_keys=["s3cret"])
    assert client.get("/models").status_code == 401  # the key guards the rest
    assert client.get("/formats").status_code == 200


@pytest.mark.parametrize("field", ["name", "content_type", "extension", "quality"])
def test_documented_in_openapi(field: str) -> None:
    schema = _client().get("/openapi.json").json()
    answer = schema["paths"]["/formats"]["get"]["responses"]["200"]["content"]["application/json"]
    assert answer["schema"]["$ref"].endswith("/FormatList")
    info = schema["components"]["schemas"]["FormatInfo"]["properties"][field]
    assert info.get("description"), field
