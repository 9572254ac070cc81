"""``imdsr upscale URL PATH... -o OUTDIR``: the real CLI against the real gateway and a real Triton.

A folder of small real photos (scikit-image's, ~48 px; PNG, JPEG, WebP, nested two deep) with a
text file and a corrupt PNG among them goes through ``imdsr.cli.app``: top level only without
``-r``, the structure kept with it, skipping what is done, ``--overwrite``, ``--format``, the
gateway's reason for the corrupt file, retries after 429, options refused before any request, and
every query parameter of ``POST /upscale`` (UpscaleOptions' fields) reaching the gateway.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from imdsr.cli import app
from service.schemas import VIDEO_ONLY, UpscaleOptions
from service.settings import Settings
from tests.support.gateway import Gateway

MODEL = "c4"
SIDE = 48

# name -> (skimage photo, Pillow format); the folder: top level, sub/, sub/deeper/
PHOTOS = {
    "astronaut.png": "astronaut",
    "coffee.jpg": "coffee",
    "sub/chelsea.webp": "chelsea",
    "sub/deeper/camera.png": "camera",       # grey
    "sub/deeper/rocket.jpeg": "rocket",
}
TOP = ["astronaut.png", "coffee.jpg"]
OUTPUTS = {"astronaut.png": "astronaut_x4.png", "coffee.jpg": "coffee_x4.jpg",
           "sub/chelsea.webp": "sub/chelsea_x4.webp", "sub/deeper/camera.png": "sub/deeper/camera_x4.png",
           "sub/deeper/rocket.jpeg": "sub/deeper/rocket_x4.jpg"}


def _small(name: str) -> Image.Image:
    import skimage.data

    pixels: np.ndarray = getattr(skimage.data, name)()
    image = Image.fromarray(pixels)
    h = max(8, round(SIDE * image.height / image.width))
    return image.resize((SIDE, h), Image.LANCZOS)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for rel, name in PHOTOS.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        _small(name).save(path, quality=90)
    (root / "notes.txt").write_text("not an image\n")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
    return root


@pytest.fixture(scope="module")
def gateway(triton_server) -> Iterator[Gateway]:  # noqa: ANN001 - TritonHandle
    with Gateway(Settings(triton_url=triton_server.grpc_url, default_model=MODEL)) as gw:
        yield gw


def _upscale(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["upscale", *map(str, args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    # usage errors come in a rich box: its borders and line breaks are dropped
    return result.exit_code, result.stdout, re.sub(r"[\s│╭╮╰╯─]+", " ", result.stderr)


def _summary(stdout: str) -> tuple[int, int, int]:
    found = re.search(r"(\d+) done, (\d+) skipped, (\d+) failed", stdout)
    assert found, stdout
    done, skipped, failed = map(int, found.groups())
    return done, skipped, failed


def _assert_x4(source: Path, output: Path, fmt: str | None = None) -> None:
    with Image.open(source) as src, Image.open(output) as out:
        assert out.size == (4 * src.width, 4 * src.height), (output, out.size)
        if fmt:
            assert out.format == fmt, (output, out.format)


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _metric(gateway: Gateway, prefix: str) -> float:
    text = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def test_folder_top_level_only_without_recursive(gateway: Gateway, photos: Path,
                                                 tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = _upscale(gateway.url, photos, "-o", out, "--model", MODEL)
    assert code == 1, (stdout, stderr)  # the corrupt PNG failed
    assert _summary(stdout) == (2, 0, 1)
    assert _files(out) == {OUTPUTS[name] for name in TOP}
    for name in TOP:
        _assert_x4(photos / name, out / OUTPUTS[name])
    # the failure names the file and the gateway's {"error", "detail"}; the .txt was never sent
    assert re.search(r"broken\.png: HTTP 400 corrupt_image: \S", stderr), stderr
    assert "notes.txt" not in stdout + stderr


def test_recursive_keeps_structure_then_skips_then_overwrites(gateway: Gateway, photos: Path,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = _upscale(gateway.url, photos, "-o", out, "-r", "-j", "3")
    assert code == 1 and _summary(stdout) == (5, 0, 1), (stdout, stderr)
    assert _files(out) == set(OUTPUTS.values())
    for rel, output in OUTPUTS.items():
        _assert_x4(photos / rel, out / output, fmt="PNG" if output.endswith(".png") else None)
    assert Image.open(out / "coffee_x4.jpg").format == "JPEG"
    assert Image.open(out / "sub/chelsea_x4.webp").format == "WEBP"

    # A second run skips every output already there (an existing, non-empty file counts as done:
    # the stand-in below stays), and tries the failed one again.
    stand_in = out / OUTPUTS["coffee.jpg"]
    stand_in.write_bytes(b"kept")
    code, stdout, stderr = _upscale(gateway.url, photos, "-o", out, "-r")
    assert code == 1 and _summary(stdout) == (0, 5, 1), (stdout, stderr)
    assert "skipped" in stdout and "broken.png" in stderr
    assert stand_in.read_bytes() == b"kept"

    # An empty output is not done.
    (out / OUTPUTS["astronaut.png"]).write_bytes(b"")
    code, stdout, _ = _upscale(gateway.url, photos, "-o", out, "-r")
    assert _summary(stdout) == (1, 4, 1)
    _assert_x4(photos / "astronaut.png", out / OUTPUTS["astronaut.png"])

    code, stdout, stderr = _upscale(gateway.url, photos, "-o", out, "-r", "--overwrite")
    assert code == 1 and _summary(stdout) == (5, 0, 1), (stdout, stderr)
    _assert_x4(photos / "coffee.jpg", stand_in, fmt="JPEG")
    assert _files(out) == set(OUTPUTS.values())  # no temporary files left behind


def test_format_webp_names_and_content(gateway: Gateway, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    inputs = [photos / rel for rel in PHOTOS]  # files named one by one: flat under OUTDIR
    code, stdout, stderr = _upscale(gateway.url, *inputs, "-o", out, "--format", "webp",
                                    "--model", MODEL, "--quality", "80")
    assert code == 0 and _summary(stdout) == (5, 0, 0), (stdout, stderr)
    assert _files(out) == {f"{Path(rel).stem}_x4.webp" for rel in PHOTOS}
    for rel in PHOTOS:
        _assert_x4(photos / rel, out / f"{Path(rel).stem}_x4.webp", fmt="WEBP")


def test_single_file_to_folder_and_to_exact_path(gateway: Gateway, photos: Path,
                                                 tmp_path: Path) -> None:
    source = photos / "astronaut.png"
    code, stdout, stderr = _upscale(gateway.url, source, "-o", tmp_path / "out", "--model", MODEL)
    assert code == 0, (stdout, stderr)
    assert _files(tmp_path / "out") == {"astronaut_x4.png"}
    _assert_x4(source, tmp_path / "out/astronaut_x4.png", fmt="PNG")
    assert f"model {MODEL}" in stdout  # the one-file line: sizes, type, model, tiles

    exact = tmp_path / "elsewhere" / "result.jpg"  # -o names the file: its suffix sets the format
    code, stdout, stderr = _upscale(gateway.url, source, "-o", exact)
    assert code == 0, (stdout, stderr)
    assert _files(tmp_path / "elsewhere") == {"result.jpg"}
    _assert_x4(source, exact, fmt="JPEG")

    # --model goes to the gateway: another variant, and an unknown one with the gateway's reason
    code, stdout, stderr = _upscale(gateway.url, source, "-o", tmp_path / "c8", "--model", "c8")
    assert code == 0 and "model c8" in stdout, (stdout, stderr)
    code, stdout, stderr = _upscale(gateway.url, source, "-o", tmp_path / "none", "--model", "nosuch")
    assert code == 1 and _summary(stdout) == (0, 0, 1), (stdout, stderr)
    assert "astronaut.png: HTTP 422 unknown_model" in stderr and "nosuch" in stderr
    assert not (tmp_path / "none").exists()

    # -o naming a file with several inputs is refused
    code, _, stderr = _upscale(gateway.url, source, photos / "coffee.jpg", "-o", tmp_path / "x.png")
    assert code == 2 and "names a file" in stderr


def test_same_stem_inputs_do_not_overwrite_each_other(gateway: Gateway, photos: Path,
                                                      tmp_path: Path) -> None:
    folder = tmp_path / "twins"
    folder.mkdir()
    _small("astronaut").save(folder / "photo.png")
    _small("coffee").save(folder / "photo.jpg")
    out = tmp_path / "out"
    code, stdout, stderr = _upscale(gateway.url, folder, "-o", out, "--format", "png")
    assert code == 0 and _summary(stdout) == (2, 0, 0), (stdout, stderr)
    assert _files(out) == {"photo_x4.png", "photo_png_x4.png"}


def test_size_options_go_to_the_gateway(gateway: Gateway, photos: Path, tmp_path: Path) -> None:
    inputs = [photos / "astronaut.png", photos / "coffee.jpg"]
    code, stdout, stderr = _upscale(gateway.url, *inputs, "-o", tmp_path / "box", "--width", "100",
                                    "--height", "60", "--fit", "fill")
    assert code == 0 and _summary(stdout) == (2, 0, 0), (stdout, stderr)
    for output in ("astronaut_x4.png", "coffee_x4.jpg"):
        assert Image.open(tmp_path / "box" / output).size == (100, 60)
    # what the gateway refuses (422, JSON body) fails each file with its reason
    code, stdout, stderr = _upscale(gateway.url, *inputs, "-o", tmp_path / "both", "--width", "100",
                                    "--outscale", "2")
    assert code == 1 and _summary(stdout) == (0, 0, 2), (stdout, stderr)
    assert stderr.count(": HTTP 422 ") == 2 and "outscale" in stderr, stderr


# --- every query parameter of POST /upscale goes through ------------------------------------------


@dataclass(frozen=True)
class Answer:
    body: bytes
    model: str
    tiles: str


def _pil(answer: Answer) -> Image.Image:
    return Image.open(io.BytesIO(answer.body))


def _zlib_level(answer: Answer) -> int:
    """The FLEVEL bits of the first IDAT's zlib header: 0 fastest .. 3 maximum compression."""
    start = answer.body.index(b"IDAT") + 4
    return answer.body[start + 1] >> 6


# field -> (the options asked for, the same request without the field, what shows the field's
# effect on the answer). Each feature is exact: pixels may differ by a level between runs (tiles
# batch differently), the JPEG tables, zlib level, sizes, EXIF, alpha by bicubic and headers do not.
PASS_THROUGH: dict[str, tuple[dict[str, str], dict[str, str], Callable[[Answer], object]]] = {
    "model": ({"model": "rlfn"}, {}, lambda a: a.model),
    "format": ({"format": "webp"}, {}, lambda a: _pil(a).format),
    "quality": ({"format": "jpeg", "quality": "40"}, {"format": "jpeg"},
                lambda a: _pil(a).quantization),
    "png": ({"png": "small"}, {}, _zlib_level),
    "outscale": ({"outscale": "2"}, {}, lambda a: _pil(a).size),
    "width": ({"width": "100"}, {}, lambda a: _pil(a).size),
    "height": ({"height": "60"}, {}, lambda a: _pil(a).size),
    "fit": ({"width": "100", "height": "60", "fit": "cover"}, {"width": "100", "height": "60"},
            lambda a: _pil(a).size),
    "metadata": ({"metadata": "strip"}, {}, lambda a: dict(_pil(a).getexif())),
    "alpha": ({"alpha": "bicubic"}, {}, lambda a: _pil(a).getchannel("A").tobytes()),
    "tile": ({"tile": "32"}, {}, lambda a: a.tiles),
}


@pytest.fixture(scope="module")
def rgba_with_exif(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 128x96 photo (two tiles of 32, one of the default) with a sharp-edged disc of alpha and
    an EXIF block."""
    image = _small("astronaut").resize((128, 96)).convert("RGBA")
    yy, xx = np.mgrid[:96, :128]
    image.putalpha(Image.fromarray(np.where((yy - 48) ** 2 + (xx - 64) ** 2 < 1600, 255, 0)
                                   .astype(np.uint8)))
    exif = Image.Exif()
    exif[0x0131] = "imdsr test"  # Software
    path = tmp_path_factory.mktemp("rgba") / "disc.png"
    image.save(path, exif=exif)
    return path


def _direct(gateway: Gateway, photo: Path, params: dict[str, str]) -> Answer:
    r = httpx.post(f"{gateway.url}/upscale", params=params, content=photo.read_bytes(),
                   headers={"Content-Type": "image/png"}, timeout=120)
    assert r.status_code == 200, r.text
    return Answer(r.content, r.headers["x-model"], r.headers["x-tiles"])


def test_pass_through_cases_cover_every_query_parameter() -> None:
    # A clip's own (crf) reach the gateway in tests/integration/test_video_jobs.py.
    assert set(PASS_THROUGH) == set(UpscaleOptions.model_fields) - set(VIDEO_ONLY)


@pytest.mark.parametrize("field", list(PASS_THROUGH))
def test_every_query_parameter_reaches_the_gateway(gateway: Gateway, rgba_with_exif: Path,
                                                   tmp_path: Path, field: str) -> None:
    asked, without, feature = PASS_THROUGH[field]
    options = [arg for name, value in asked.items() for arg in (f"--{name}", value)]
    code, stdout, stderr = _upscale(gateway.url, rgba_with_exif, "-o", tmp_path, *options)
    assert code == 0, (stdout, stderr)
    (written,) = tmp_path.iterdir()
    shown = re.search(r"model (\S+), (\d+) tiles", stdout)
    assert shown, stdout
    by_cli = Answer(written.read_bytes(), *shown.groups())
    expected = feature(_direct(gateway, rgba_with_exif, asked))
    assert feature(by_cli) == expected
    assert feature(_direct(gateway, rgba_with_exif, without)) != expected  # the field matters


def test_retries_after_429(triton_server, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    """One request at a time in the gateway, four in flight from the CLI: the refused ones come
    back after Retry-After and every file is done."""
    settings = Settings(triton_url=triton_server.grpc_url, default_model=MODEL,
                        max_concurrent_requests=1)
    with Gateway(settings) as gw:
        before = _metric(gw, 'imdsr_gateway_rejected_requests_total{reason="concurrency"}')
        code, stdout, stderr = _upscale(gw.url, *[photos / rel for rel in PHOTOS],
                                        "-o", tmp_path / "out", "-j", "4")
        after = _metric(gw, 'imdsr_gateway_rejected_requests_total{reason="concurrency"}')
    assert code == 0 and _summary(stdout) == (5, 0, 0), (stdout, stderr)
    assert after > before  # some were answered 429 and retried


@pytest.mark.parametrize("bad", [["--fit", "nonsense"], ["--format", "gif"], ["-j", "0"],
                                 ["--quality", "101"], ["--tile", "48"], ["--outscale", "0"],
                                 ["--alpha", "none"]])
def test_bad_options_refused_before_any_request(gateway: Gateway, photos: Path, tmp_path: Path,
                                                bad: list[str]) -> None:
    requests = 'imdsr_gateway_requests_total{route="/upscale"'
    before = _metric(gateway, requests)
    code, stdout, stderr = _upscale(gateway.url, photos, "-o", tmp_path / "out", *bad)
    assert code == 2, (stdout, stderr)
    assert bad[0] in stderr
    assert not (tmp_path / "out").exists()
    assert _metric(gateway, requests) == before
