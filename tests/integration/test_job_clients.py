"""The clients of the gateway's jobs (issue 25, item 4) against the real gateway and a real Triton.

``imdsr upscale --jobs`` (``imdsr.cli.app``) on a folder writes what it writes without jobs, under
the same names and with the same summary; ``service.client``'s ``submit``/``wait``/``cancel``/
``result`` follow a real job and cancel it; and the real ``imdsr`` command, interrupted with
SIGINT (Ctrl-C) while its job runs, cancels that job and exits 130. The page's jobs are tested in
the browser in tests/integration/test_web_page.py.

Photos are scikit-image's: small ones (~48 px, one tile each: their bytes are the same whichever
route made them) and the astronaut at 512 x 512 (an x4 output of 4.2 Mpx, just over the default
threshold of --jobs; several tiles, whose batching may differ by a level between two runs, so
compared within one level) and at 1024 x 1024 for jobs that must still run when cancelled.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from imdsr.cli import app
from service.client import JobState, RemoteJob, UpscaleFailed, UpscaleParams, cancel, result, submit, wait
from service.settings import Settings
from tests.support.gateway import Gateway

pytestmark = pytest.mark.triton

ROOT = Path(__file__).resolve().parents[2]
MODEL = "c4"
SIDE = 48
SMALL = {"coffee.jpg": "coffee", "sub/chelsea.webp": "chelsea", "sub/camera.png": "camera"}
LARGE = "astronaut.png"  # 512 x 512: through a job with --jobs alone
OUTPUTS = {"coffee.jpg": "coffee_x4.jpg", "sub/chelsea.webp": "sub/chelsea_x4.webp",
           "sub/camera.png": "sub/camera_x4.png", LARGE: "astronaut_x4.png",
           "broken.png": None}
TIMEOUT_S = 300


def _photo(name: str, side: int | None = SIDE) -> Image.Image:
    import skimage.data

    image = Image.fromarray(getattr(skimage.data, name)())
    if side is None:
        return image
    return image.resize((side, max(8, round(side * image.height / image.width))), Image.LANCZOS)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("job_photos")
    for rel, name in SMALL.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        _photo(name).save(root / rel, quality=90)
    _photo("astronaut", None).save(root / LARGE)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
    return root


@pytest.fixture(scope="module")
def huge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The astronaut at 1024 x 1024 (16.8 Mpx out, many tiles): a job that takes a while."""
    path = tmp_path_factory.mktemp("job_huge") / "astronaut_1024.png"
    _photo("astronaut", None).resize((1024, 1024), Image.LANCZOS).save(path)
    return path


@pytest.fixture(scope="module")
def gateway(triton_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:  # noqa: ANN001
    settings = Settings(triton_url=triton_server.grpc_url, default_model=MODEL,
                        jobs_dir=tmp_path_factory.mktemp("jobs"))
    with Gateway(settings) as gw:
        yield gw


def _upscale(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["upscale", *map(str, args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def _job_lines(stderr: str) -> dict[str, str]:
    """file name -> job id, from the lines the CLI writes for each job without a terminal."""
    return {Path(m[1]).name: m[2] for m in re.finditer(r"imdsr upscale: (\S+): job (\S+) ", stderr)}


def _job(gateway: Gateway, job_id: str) -> RemoteJob:
    answer = httpx.get(f"{gateway.url}/jobs/{job_id}", timeout=30)
    assert answer.status_code == 200, answer.text
    return RemoteJob.model_validate(answer.json())


# --- imdsr upscale --jobs -------------------------------------------------------------------------


def test_jobs_write_what_direct_requests_write(gateway: Gateway, photos: Path, tmp_path: Path) -> None:
    runs = {"direct": [], "large by job": ["--jobs"], "all by job": ["--jobs-above-mpx", "0"]}
    outcomes: dict[str, tuple[int, str, str]] = {}
    for name, extra in runs.items():
        outcomes[name] = _upscale(gateway.url, photos, "-r", "-o", tmp_path / name, "--model", MODEL,
                                  "-j", "1", *extra)
    direct = _files(tmp_path / "direct")
    assert set(direct) == {v for v in OUTPUTS.values() if v}
    for name in runs:
        code, stdout, stderr = outcomes[name]
        # the same summary, and the corrupt file's failure with the gateway's same reason
        assert code == 1, (name, stdout, stderr)
        assert "imdsr upscale: 4 done, 0 skipped, 1 failed" in stdout, (name, stdout)
        assert re.search(r"broken\.png: HTTP 400 corrupt_image: \S", stderr), (name, stderr)
        written = _files(tmp_path / name)
        assert set(written) == set(direct), name  # same names, no temporary file left
        for rel in SMALL:  # one tile each: byte for byte
            assert written[OUTPUTS[rel]] == direct[OUTPUTS[rel]], (name, rel)
        large = OUTPUTS[LARGE]
        assert np.abs(_pixels(written[large]) - _pixels(direct[large])).max() <= 1, name
        assert _pixels(written[large]).shape == (2048, 2048, 3)

    # which files went through a job: none, the 4.2-Mpx one, every one (the corrupt one too: its
    # POST /jobs was refused with the 400 above, so it has no job line)
    assert _job_lines(outcomes["direct"][2]) == {}
    assert set(_job_lines(outcomes["large by job"][2])) == {LARGE}
    assert set(_job_lines(outcomes["all by job"][2])) == {LARGE, *(Path(r).name for r in SMALL)}
    for job_id in _job_lines(outcomes["all by job"][2]).values():
        assert _job(gateway, job_id).status is JobState.DONE


def test_a_single_file_through_a_job_prints_its_line(gateway: Gateway, photos: Path,
                                                     tmp_path: Path) -> None:
    exact = tmp_path / "result.webp"  # -o naming the file: its suffix picks the format, as before
    code, stdout, stderr = _upscale(gateway.url, photos / LARGE, "-o", exact, "--jobs")
    assert code == 0, (stdout, stderr)
    assert Image.open(exact).format == "WEBP" and Image.open(exact).size == (2048, 2048)
    assert f"-> {exact} (2048x2048, image/webp, model {MODEL}" in stdout  # the result's headers
    assert set(_job_lines(stderr)) == {LARGE}


def test_an_unknown_model_fails_the_file_as_without_jobs(gateway: Gateway, photos: Path,
                                                         tmp_path: Path) -> None:
    code, stdout, stderr = _upscale(gateway.url, photos / LARGE, "-o", tmp_path, "--jobs",
                                    "--model", "nosuch")
    assert code == 1 and "0 done, 0 skipped, 1 failed" in stdout, (stdout, stderr)
    assert "astronaut.png: HTTP 422 unknown_model" in stderr
    assert list(tmp_path.iterdir()) == []


# --- the client's functions -----------------------------------------------------------------------


def test_submit_follow_and_fetch_a_job(gateway: Gateway, photos: Path) -> None:
    async def go() -> tuple[list[RemoteJob], httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            job = await submit(client, gateway.url, (photos / LARGE).read_bytes(), "image/png",
                               UpscaleParams(model=MODEL, format="png"))
            seen = [j async for j in wait(client, gateway.url, job, poll_s=0.1)]
            return seen, await result(client, gateway.url, seen[-1])

    seen, answer = asyncio.run(go())
    assert seen[0].status is JobState.QUEUED or seen[0].status is JobState.RUNNING
    assert seen[-1].status is JobState.DONE and seen[-1].result == f"/jobs/{seen[-1].id}/result"
    done = [j.progress.tiles_done for j in seen]
    assert done == sorted(done) and seen[-1].progress.tiles_done == seen[-1].progress.tiles_total > 1
    assert answer.headers["content-type"] == "image/png" and answer.headers["x-model"] == MODEL
    assert answer.headers["x-output-size"] == "2048x2048"
    direct = httpx.post(f"{gateway.url}/upscale", params={"model": MODEL, "format": "png"},
                        content=(photos / LARGE).read_bytes(), headers={"Content-Type": "image/png"},
                        timeout=TIMEOUT_S)
    assert np.abs(_pixels(answer.content) - _pixels(direct.content)).max() <= 1


def test_cancel_a_running_job(gateway: Gateway, huge: Path) -> None:
    async def go() -> tuple[RemoteJob, RemoteJob]:
        async with httpx.AsyncClient(timeout=60) as client:
            queued = await submit(client, gateway.url, huge.read_bytes(), "image/png",
                                  UpscaleParams(model=MODEL))
            job = queued
            async for job in wait(client, gateway.url, queued, poll_s=0.1):
                if job.status is JobState.RUNNING and job.progress.tiles_done > 0:
                    break
            assert job.status is JobState.RUNNING, f"the job ended before it was cancelled: {job}"
            cancelled = await cancel(client, gateway.url, job.id)
            with pytest.raises(UpscaleFailed) as refused:
                await result(client, gateway.url, job.id)
            assert refused.value.status == 409
            return job, cancelled

    running, cancelled = asyncio.run(go())
    assert cancelled.id == running.id and cancelled.status is JobState.CANCELLED
    time.sleep(2)  # it stays cancelled and stops counting tiles
    later = _job(gateway, running.id)
    assert later.status is JobState.CANCELLED and later.finished is not None
    assert later.progress.tiles_done < later.progress.tiles_total


# --- Ctrl-C ---------------------------------------------------------------------------------------


def test_ctrl_c_cancels_the_jobs_it_started(gateway: Gateway, huge: Path, tmp_path: Path) -> None:
    """The real ``imdsr`` command in its own process, interrupted as a terminal would (SIGINT)
    once its job is running: the job is cancelled on the gateway, no output is written, the
    command says which job it cancelled and exits 130."""
    out = tmp_path / "out"
    imdsr = Path(sys.executable).parent / "imdsr"  # the installed console script
    command = [str(imdsr), "upscale", gateway.url, str(huge), "-o", str(out), "--model", MODEL, "--jobs"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMDSR_")}
    # SIGINT as a terminal leaves it: a suite started in the background (`make test &`) ignores
    # SIGINT, children inherit that, and Python then never turns the signal into Ctrl-C.
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    try:
        assert process.stderr is not None
        line = process.stderr.readline()  # "imdsr upscale: <file>: job <id> queued"
        found = re.search(r": job (\S+) ", line)
        assert found, line + process.stderr.read()
        job_id = found[1]
        deadline = time.monotonic() + TIMEOUT_S
        while (job := _job(gateway, job_id)).status is JobState.QUEUED or job.progress.tiles_done == 0:
            assert time.monotonic() < deadline and not job.status.finished, job
            time.sleep(0.1)
        assert job.status is JobState.RUNNING, job
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, (stdout, stderr)
    assert f"imdsr upscale: interrupted; cancelled 1 job(s) ({job_id})" in stderr, stderr
    assert _job(gateway, job_id).status is JobState.CANCELLED
    assert not out.exists() or not any(out.iterdir())
