"""Issue 28: a clip through ``POST /jobs``, the real gateway (uvicorn on loopback) and the real
Triton: it comes back with every frame, its timing and its sound, its frames within the codec's
loss of ``POST /upscale``'s answers for the same frames; a DELETE stops it mid-way; a broken
clip is a 400 and one past a limit a 413 naming it, at submission; a clip queued again when its
gateway stops runs again from its stored input; ``imdsr upscale`` takes clips beside pictures.

Clips are tiny (96x54, 2 s at 12 fps) and the model is c4, so each job takes seconds here.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from imdsr.cli import app
from imdsr.imaging.metrics import psnr_255
from imdsr.video.probe import probe
from imdsr.video.synthetic import ClipSpec, write_clip
from service.settings import Settings
from tests.support.gateway import Gateway
from tests.support.jobs import metric, photo, wait_for

MODEL = "c4"
SMALL = ClipSpec(seconds=2.0, fps=12, width=96, height=54)
# H.264 at CRF 20 against POST /upscale's answers: 31-32 dB on the synthetic clip
# (tests/integration/test_video_frames.py); a neighbouring frame scores about 11 dB.
MIN_PSNR_DB = 26.0


def _settings(triton, jobs_dir: Path, **overrides: object) -> Settings:  # noqa: ANN001
    return Settings(**{"triton_url": triton.grpc_url, "jobs_dir": jobs_dir,
                       "default_model": MODEL, **overrides})


@pytest.fixture(scope="module")
def gateway(triton_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:  # noqa: ANN001
    with Gateway(_settings(triton_server, tmp_path_factory.mktemp("video_jobs"))) as gw:
        yield gw


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", SMALL)


def _submit(url: str, body: bytes, params: dict[str, str] | None = None,
            content_type: str = "video/mp4") -> httpx.Response:
    return httpx.post(f"{url}/jobs", content=body, params=params, timeout=60,
                      headers={"Content-Type": content_type})


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.reformat(format="rgb24", src_color_range=f.color_range).to_ndarray()
                for f in container.decode(container.streams.video[0])]


def _audio_codecs(path: Path) -> list[str]:
    with av.open(str(path)) as container:
        return [s.codec_context.name for s in container.streams.audio]


def _post_upscale(url: str, rgb: np.ndarray) -> np.ndarray:
    body = io.BytesIO()
    Image.fromarray(rgb).save(body, "PNG")
    r = httpx.post(f"{url}/upscale", content=body.getvalue(), timeout=60,
                   params={"model": MODEL, "format": "png"}, headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))


@pytest.mark.parametrize(("fmt", "content_type", "audio"), [
    (None, "video/mp4", "aac"),        # the default: H.264 in MP4, the AAC copied
    ("webm", "video/webm", "opus"),    # VP9 in WebM, the AAC re-encoded (WebM holds no AAC)
])
def test_clip_comes_back_with_its_frames_timing_and_sound(
        gateway: Gateway, clip: Path, tmp_path: Path, fmt: str | None, content_type: str,
        audio: str) -> None:
    params = {"format": fmt} if fmt else {}
    r = _submit(gateway.url, clip.read_bytes(), params)
    assert r.status_code == 202, r.text
    job = wait_for(gateway.url, r.json()["id"], {"done"}, timeout_s=300)
    frames = round(SMALL.seconds * SMALL.fps)
    assert job["progress"]["frames_done"] == job["progress"]["frames_total"] == frames
    assert job["progress"]["tiles_done"] == job["progress"]["tiles_total"] > 0

    result = httpx.get(f"{gateway.url}{job['result']}", timeout=60)
    assert result.status_code == 200, result.text
    assert result.headers["content-type"] == content_type
    assert result.headers["x-output-size"] == "384x216" and result.headers["x-input-size"] == "96x54"
    assert result.headers["x-frames"] == str(frames) and result.headers["x-model"] == MODEL
    out = tmp_path / f"out.{fmt or 'mp4'}"
    out.write_bytes(result.content)
    part = httpx.get(f"{gateway.url}{job['result']}", headers={"Range": "bytes=0-99"}, timeout=60)
    assert part.status_code == 206 and part.content == result.content[:100]  # a <video> seeks

    source, made = probe(clip), probe(out)
    assert (made.width, made.height) == (384, 216)
    assert abs(made.duration_s - source.duration_s) <= 1 / SMALL.fps, (made, source)
    assert _audio_codecs(out) == [audio]
    sources, encoded = _frames(clip), _frames(out)
    assert len(encoded) == len(sources) == frames

    psnrs = []
    for i in (0, frames // 2, frames - 1):
        psnrs.append(psnr_255(encoded[i], _post_upscale(gateway.url, sources[i])))
    print(f"\n{MODEL} clip through POST /jobs, {result.headers['x-video-codec']} vs POST /upscale "
          f"per frame: PSNR {', '.join(f'{p:.1f}' for p in psnrs)} dB (frames 0, "
          f"{frames // 2}, {frames - 1})")
    assert min(psnrs) > MIN_PSNR_DB


def test_delete_stops_a_running_clip_and_releases_its_work(triton_server, tmp_path: Path) -> None:  # noqa: ANN001
    # c16nla at 320x180 -> 1280x720: a few tenths of a second a frame here, 36 frames.
    settings = _settings(triton_server, tmp_path / "jobs")
    source = write_clip(tmp_path / "long.mp4", ClipSpec(seconds=3.0, fps=12, width=320, height=180))
    with Gateway(settings) as gw:
        job_id = _submit(gw.url, source.read_bytes(), {"model": "c16nla"}).json()["id"]
        running = wait_for(gw.url, job_id, {"running"}, timeout_s=120,
                           until=lambda j: j["progress"]["frames_done"] >= 2)
        assert running["progress"]["frames_total"] == 36
        assert metric(gw.url, "imdsr_gateway_admitted_work_seconds") > 0
        cancelled = httpx.delete(f"{gw.url}/jobs/{job_id}", timeout=30)
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        deadline = time.monotonic() + 5
        while metric(gw.url, "imdsr_gateway_admitted_work_seconds") > 0 or \
                metric(gw.url, "imdsr_gateway_jobs_running") > 0:
            assert time.monotonic() < deadline, "the clip's admitted work outlived its cancel"
            time.sleep(0.1)
        after = httpx.get(f"{gw.url}/jobs/{job_id}", timeout=10).json()
        assert after["status"] == "cancelled"
        assert after["progress"]["frames_done"] < 36
        gone = httpx.get(f"{gw.url}/jobs/{job_id}/result", timeout=10)
        assert gone.status_code == 409 and gone.json()["detail"]["status"] == "cancelled"
        # Neither the input nor a partial result is left behind.
        assert not list((settings.jobs_dir / "inputs").iterdir())
        assert not list((settings.jobs_dir / "results").glob("*"))


def test_broken_clips_are_400_and_videos_to_upscale_415(gateway: Gateway, clip: Path,
                                                        tmp_path: Path) -> None:
    data = clip.read_bytes()
    cut = _submit(gateway.url, data[:len(data) // 2])  # MP4's index is at the end: gone
    assert cut.status_code == 400 and cut.json()["error"] == "corrupt_video", cut.text
    garbage = _submit(gateway.url, b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 8)
    assert garbage.status_code == 400 and garbage.json()["error"] == "corrupt_video", garbage.text
    # The bytes decide, not the Content-Type: a clip sent as a PNG is still a clip.
    as_png = _submit(gateway.url, data, content_type="image/png")
    assert as_png.status_code == 202, as_png.text
    wait_for(gateway.url, as_png.json()["id"], {"done"}, timeout_s=300)
    direct = httpx.post(f"{gateway.url}/upscale", content=data, timeout=60,
                        headers={"Content-Type": "video/mp4"})
    assert direct.status_code == 415 and direct.json()["error"] == "video_needs_job"
    assert "POST /jobs" in direct.json()["detail"]


def test_a_clip_cut_short_after_its_header_fails_its_job(gateway: Gateway, tmp_path: Path) -> None:
    # Matroska's header and first frames are at the start: the probe passes, the run finds the cut.
    mkv = write_clip(tmp_path / "clip.mkv", ClipSpec(seconds=2.0, fps=12, width=96, height=54,
                                                     container="matroska"))
    data = mkv.read_bytes()
    r = _submit(gateway.url, data[:len(data) // 2], content_type="video/x-matroska")
    assert r.status_code == 202, r.text
    job = wait_for(gateway.url, r.json()["id"], {"failed"}, timeout_s=300)
    assert job["error"]["error"] == "corrupt_video", job


@pytest.mark.parametrize(("query", "field"), [
    ({"format": "webp"}, "format"),      # a picture's format on a clip
    ({"quality": "80"}, "quality"),      # a picture's option on a clip
    ({"crf": "60"}, "crf"),              # past H.264's 0-51
    ({"outscale": "2", "width": "100"}, None),
])
def test_a_clips_parameters_are_checked_at_submission(gateway: Gateway, clip: Path,
                                                      query: dict[str, str], field: str | None) -> None:
    r = _submit(gateway.url, clip.read_bytes(), query)
    assert r.status_code == 422 and r.json()["error"] == "invalid_parameter", r.text
    if field:
        assert field in str(r.json()["detail"])


@pytest.mark.parametrize("query", [{"format": "mp4"}, {"crf": "20"}])
def test_a_pictures_job_refuses_a_clips_parameters(gateway: Gateway, query: dict[str, str]) -> None:
    for route in ("/upscale", "/jobs"):
        r = httpx.post(f"{gateway.url}{route}", content=photo(40, 30), params=query, timeout=60,
                       headers={"Content-Type": "image/png"})
        assert r.status_code == 422 and next(iter(query)) in str(r.json()["detail"]), r.text


@pytest.mark.parametrize(("limit", "value"), [("max_video_frames", 10),
                                              ("max_video_seconds", 1.0),
                                              ("max_video_output_pixels_total", 384 * 216 * 10)])
def test_a_clip_past_a_limit_is_413_naming_it(triton_server, clip: Path, tmp_path: Path,  # noqa: ANN001
                                              limit: str, value: float) -> None:
    with Gateway(_settings(triton_server, tmp_path / "jobs", **{limit: value})) as gw:
        r = _submit(gw.url, clip.read_bytes())
        assert r.status_code == 413, r.text
        body = r.json()
        assert body["error"] == "video_too_large" and body["detail"]["limit"] == limit
        assert not list((tmp_path / "jobs" / "inputs").iterdir())  # its file went with it


def test_a_clip_queued_again_at_shutdown_runs_from_its_stored_input(triton_server,  # noqa: ANN001
                                                                    tmp_path: Path) -> None:
    settings = _settings(triton_server, tmp_path / "jobs")
    source = write_clip(tmp_path / "long.mp4", ClipSpec(seconds=3.0, fps=12, width=320, height=180))
    with Gateway(settings) as first:
        job_id = _submit(first.url, source.read_bytes()).json()["id"]  # c4: seconds in all
        wait_for(first.url, job_id, {"running"}, timeout_s=120,
                 until=lambda j: j["progress"]["frames_done"] >= 1)
    # The first gateway stopped: the job went back to the queue, its input still on disk.
    assert (settings.jobs_dir / "inputs" / job_id).is_file()
    with Gateway(settings) as second:
        done = wait_for(second.url, job_id, {"done"}, timeout_s=600)
        assert done["progress"]["frames_done"] == 36
        result = httpx.get(f"{second.url}/jobs/{job_id}/result", timeout=60)
        assert result.status_code == 200 and result.headers["x-output-size"] == "1280x720"
        out = tmp_path / "out.mp4"
        out.write_bytes(result.content)
        assert len(_frames(out)) == 36 and _audio_codecs(out) == ["aac"]


# --- imdsr upscale ----------------------------------------------------------------------------


def _upscale_cli(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["upscale", *map(str, args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_imdsr_upscale_takes_clips_beside_pictures(gateway: Gateway, clip: Path,
                                                   tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "clip.mp4").write_bytes(clip.read_bytes())
    write_clip(folder / "sub" / "other.mkv", ClipSpec(seconds=1.0, fps=12, width=64, height=36,
                                                      container="matroska", seed=2))
    (folder / "photo.png").write_bytes(photo(40, 30))
    # One --format per kind: webm for the clips, the picture in its own family (PNG).
    code, out, err = _upscale_cli(gateway.url, folder, "-r", "-o", tmp_path / "out",
                                  "--format", "webm", "--crf", "36")
    assert code == 0, (out, err)
    assert "3 done, 0 skipped, 0 failed" in out
    assert sorted(p.relative_to(tmp_path / "out").as_posix()
                  for p in (tmp_path / "out").rglob("*") if p.is_file()) == \
        ["clip_x4.webm", "photo_x4.png", "sub/other_x4.webm"]
    made = tmp_path / "out" / "clip_x4.webm"
    assert probe(made).container == "matroska,webm" and _audio_codecs(made) == ["opus"]
    assert len(_frames(made)) == round(SMALL.seconds * SMALL.fps)
    assert len(_frames(tmp_path / "out" / "sub" / "other_x4.webm")) == 12
    assert re.search(r"clip\.mp4: job \S+ ", err), err  # without a terminal: the job's id instead of a bar

    # One clip to a named file: its suffix picks the format (MP4 here); --crf reaches the encoder.
    code, out, err = _upscale_cli(gateway.url, clip, "-o", tmp_path / "one.mp4", "--outscale", "2",
                                  "--crf", "51")
    assert code == 0, (out, err)
    one = probe(tmp_path / "one.mp4")
    assert (one.width, one.height) == (192, 108) and one.frames == round(SMALL.seconds * SMALL.fps)
    assert _audio_codecs(tmp_path / "one.mp4") == ["aac"]
    r = _submit(gateway.url, clip.read_bytes(), {"outscale": "2"})  # the default CRF, 20
    job = wait_for(gateway.url, r.json()["id"], {"done"}, timeout_s=300)
    default = httpx.get(f"{gateway.url}{job['result']}", timeout=60).content
    assert (tmp_path / "one.mp4").stat().st_size < 0.6 * len(default)
