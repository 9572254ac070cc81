"""``POST /upscale``'s parameters are defined once (``service.schemas.UpscaleOptions``); the CLI
``imdsr upscale`` and the HTTP client ``service.client.UpscaleParams`` are held to it here.

Every field must be an option of the real ``imdsr`` app and a field of the client's parameters by
the same name; the CLI takes every value of each enum field, refuses any other, and refuses before
any request exactly what the schema's bounds refuse. A field added to the schema without its option fails.
Accepted values are told from refused ones by the exit status: 2 is a usage error, 1 the request
that then fails (the gateway URL is a loopback port nobody listens on).
"""

from __future__ import annotations

import dataclasses
import socket
import typing
from enum import Enum
from pathlib import Path

import annotated_types
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner, Result

from imdsr.cli import app
from imdsr.imaging.codec import OutputFormat
from service.client import UpscaleParams, output_name
from service.schemas import UpscaleOptions

FIELDS = list(UpscaleOptions.model_fields)


def _upscale_options() -> set[str]:
    """Every option name of the real app's ``upscale`` command, as typer built it."""
    command = typer.main.get_command(app).commands["upscale"]  # type: ignore[attr-defined]
    return {name for param in command.params for name in param.opts}


def _enums_of(field: str) -> list[type[Enum]]:
    """The enums a field takes (``format``: a picture's and a clip's)."""
    annotation = UpscaleOptions.model_fields[field].annotation
    return [kind for kind in (annotation, *typing.get_args(annotation))
            if isinstance(kind, type) and issubclass(kind, Enum)]


def _bounds(field: str) -> dict[str, float]:
    """The schema's numeric constraints of ``field``: ge, gt, le, lt, multiple_of."""
    found: dict[str, float] = {}
    for item in UpscaleOptions.model_fields[field].metadata:
        for key in ("ge", "gt", "le", "lt", "multiple_of"):
            if isinstance(item, getattr(annotated_types, key.title().replace("_", ""))):
                found[key] = getattr(item, key)
    return found


def _is_float(field: str) -> bool:
    return float in typing.get_args(UpscaleOptions.model_fields[field].annotation)


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vocabulary") / "photo.png"
    Image.new("RGB", (8, 8), (120, 60, 30)).save(path)
    return path


@pytest.fixture(scope="module")
def nobody() -> str:
    """A loopback URL where nothing listens: a request there fails at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _run(nobody: str, photo: Path, tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["upscale", nobody, str(photo), "-o", str(tmp_path / "out"),
                                    "--retries", "0", *args])


def test_every_query_parameter_is_an_option_of_imdsr_upscale() -> None:
    missing = [f"--{field}" for field in FIELDS if f"--{field}" not in _upscale_options()]
    assert not missing, f"POST /upscale takes them, imdsr upscale does not offer {missing}"


def test_the_client_sends_every_query_parameter_by_its_name() -> None:
    names = {f.name for f in dataclasses.fields(UpscaleParams)} - {"api_key"}
    assert names == set(FIELDS)
    # what the client puts in the URL is what the gateway's schema reads back, value for value
    # (outscale and width/height exclude each other: two requests)
    sized = UpscaleParams(model="c4", format="avif", quality=50, png="small", width=100, height=60,
                          fit="cover", metadata="strip", alpha="bicubic", crf=20, tile=64,
                          api_key="k")
    scaled = UpscaleParams(outscale=2.5)
    for params in (sized, scaled):
        query = params.query()
        parsed = UpscaleOptions.model_validate(query)
        assert parsed.model_dump(mode="json", include=set(query)) == query
    assert set(sized.query()) | set(scaled.query()) == set(FIELDS)
    assert "api_key" not in sized.query() and sized.headers() == {"X-API-Key": "k"}
    assert UpscaleParams().query() == {}  # nothing given: the gateway's defaults


ENUM_CASES = [(f, m.value) for f in FIELDS for e in _enums_of(f) for m in e]


@pytest.mark.parametrize(("field", "value"), ENUM_CASES)
def test_the_cli_takes_every_value_the_gateway_takes(field: str, value: str, nobody: str,
                                                     photo: Path, tmp_path: Path) -> None:
    result = _run(nobody, photo, tmp_path, f"--{field}", value)
    assert result.exit_code == 1, result.output  # accepted; then no gateway answers
    assert "1 failed" in result.stdout


@pytest.mark.parametrize("field", [f for f in FIELDS if _enums_of(f)])
def test_the_cli_refuses_a_value_the_gateway_refuses(field: str, nobody: str, photo: Path,
                                                     tmp_path: Path) -> None:
    result = _run(nobody, photo, tmp_path, f"--{field}", "nonsense")
    assert result.exit_code == 2 and f"--{field}" in result.output, result.output


def _bound_cases() -> list[tuple[str, str, bool]]:
    """(field, value, accepted) at and just beyond each of the schema's bounds."""
    cases: list[tuple[str, str, bool]] = []
    for field in FIELDS:
        bounds = _bounds(field)
        step = 0.5 if _is_float(field) else 1
        if "ge" in bounds:
            cases += [(field, str(bounds["ge"]), True), (field, str(bounds["ge"] - step), False)]
        if "gt" in bounds:
            cases += [(field, str(bounds["gt"] + step), True), (field, str(bounds["gt"]), False)]
        if "le" in bounds:
            cases += [(field, str(bounds["le"]), True), (field, str(bounds["le"] + step), False)]
        if "multiple_of" in bounds:  # a value within the range that is not a multiple
            cases.append((field, str(bounds.get("ge", bounds["multiple_of"]) + 1), False))
    return cases


BOUND_CASES = _bound_cases()


def test_the_bound_cases_cover_every_numeric_field() -> None:
    numeric = {f for f in FIELDS if _bounds(f)}
    assert numeric >= {"quality", "outscale", "width", "height", "crf", "tile"}
    assert {field for field, _, _ in BOUND_CASES} == numeric


@pytest.mark.parametrize(("field", "value", "accepted"), BOUND_CASES)
def test_the_cli_bounds_are_the_schemas(field: str, value: str, accepted: bool, nobody: str,
                                        photo: Path, tmp_path: Path) -> None:
    result = _run(nobody, photo, tmp_path, f"--{field}", value)
    if accepted:
        assert result.exit_code == 1 and "1 failed" in result.stdout, result.output
    else:  # refused before any request: nothing written, the option named
        assert result.exit_code == 2 and f"--{field}" in result.output, result.output
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_output_names_use_the_codecs_extension(fmt: OutputFormat) -> None:
    assert output_name(Path("a/photo.png"), fmt.value) == f"photo_x4{fmt.suffix}"
    assert output_name(Path("a/photo.png"), fmt.spec.extension) == f"photo_x4{fmt.suffix}"
