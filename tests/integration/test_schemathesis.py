"""Schemathesis over the gateway's own OpenAPI schema, against the live gateway and the real Triton.

The schema is loaded from ``GET /openapi.json`` of the running gateway (uvicorn on loopback, the app
from ``service.app.create_app``), and every operation in it gets generated requests: query values
inside and outside their declared ranges, raw ``image/*`` and multipart bodies of arbitrary bytes.

Checks, on every response:

- ``not_a_server_error``: no 5xx at all. 503/504 are documented, but only for a Triton outage or a
  timeout; this Triton is up and the bodies are tiny, so any 5xx here is a bug.
- ``status_code_conformance``: the status is one the schema documents for that operation.
- ``content_type_conformance`` and ``response_schema_conformance``: the body is of a documented
  media type (JSON errors are ``{"error", "detail"}``; images ``image/png|jpeg|webp``) and, where
  JSON, validates against the documented schema.

Not used: ``positive_data_acceptance`` (a schema-valid body is arbitrary bytes, which the gateway
rightly refuses with 400/415: a schema cannot say "a decodable image") and the stateful/links
phases (the API has no resources to link).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from service.settings import Settings
from tests.support.gateway import Gateway

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def gateway_url(triton_server) -> Iterator[str]:  # noqa: ANN001
    # Small limits: an arbitrary body is refused quickly; default model c4 keeps any image cheap.
    settings = Settings(triton_url=triton_server.grpc_url, default_model="c4",
                        max_request_bytes=256 * 1024, max_input_pixels=256 * 256)
    with Gateway(settings) as gw:
        yield gw.url


@pytest.fixture(scope="module")
def api_schema(gateway_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")


# Every operation of the schema, each run on its own (one pytest item per operation and mode, so a
# failure names its route). Not schemathesis.pytest.from_fixture: its lazy loader sets pytest's private
# Function._nodeid, gone in pytest 9 (AttributeError); operation.as_strategy() is the same
# generation, driven by hypothesis's own @given.
OPERATIONS = [("POST", "/upscale"), ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/models"),
              ("GET", "/metrics"), ("GET", "/formats"), ("POST", "/jobs"), ("GET", "/jobs/{job_id}"),
              ("GET", "/jobs/{job_id}/result"), ("DELETE", "/jobs/{job_id}")]
RUNS = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in (("POST", "/upscale"), ("POST", "/jobs"))
]  # the operations with inputs to get wrong


def test_schema_lists_exactly_these_operations(api_schema: schemathesis.BaseSchema) -> None:
    """A new route must be added to OPERATIONS (the run below would silently skip it)."""
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path", "mode"), RUNS,
                         ids=[f"{m} {p} {mode.value}" for m, p, mode in RUNS])
def test_gateway_conforms_to_its_schema(api_schema: schemathesis.BaseSchema, method: str, path: str,
                                        mode: GenerationMode) -> None:
    operation = api_schema[path][method]
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])
    seen: list[int] = []

    @settings(max_examples=25, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        seen.append(case.call_and_validate(checks=checks, timeout=60).status_code)

    run()
    assert seen, "schemathesis generated no request"
