"""A clip's frames through the gateway's own picture path on the session's real Triton (issue 28):
the per-frame upscaler that ``service/video/frames.py`` builds from the plan, admission and the
Triton client gives exactly what ``POST /upscale`` gives for the same frame as a PNG, and the
transcoded clip's frames are within the codec's loss of those answers."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from imdsr.imaging.metrics import psnr_255
from imdsr.video.output import OutputSpec
from imdsr.video.synthetic import ClipSpec, write_clip
from imdsr.video.transcode import transcode
from service.admission import WorkAdmission
from service.app import create_app
from service.settings import Settings
from service.triton_client import TritonClient
from service.upscaling import Progress
from service.video.frames import frame_upscaler, plan_video, prepare, progress_callback
from service.video.refusals import limits_for

MODEL = "c4"
# H.264 at CRF 20 against POST /upscale's answers: measured 31.0-32.2 dB on this clip (printed;
# smoothed noise scrolling is hard to code); the next frame against the same answers 11.3-11.4 dB.
MIN_PSNR_DB = 26.0


@pytest.fixture(scope="module")
def settings(triton_server) -> Settings:  # noqa: ANN001
    return Settings(triton_url=triton_server.grpc_url, default_model=MODEL)


@pytest.fixture(scope="module")
def client(settings: Settings) -> TestClient:
    with TestClient(create_app(settings)) as c:
        yield c


def _decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.reformat(format="rgb24", src_color_range=f.color_range).to_ndarray()
                for f in container.decode(container.streams.video[0])]


def _post_upscale(client: TestClient, rgb: np.ndarray) -> np.ndarray:
    body = io.BytesIO()
    Image.fromarray(rgb).save(body, "PNG")
    r = client.post("/upscale", content=body.getvalue(), params={"model": MODEL, "format": "png"},
                    headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))


async def _through_triton(settings: Settings, source: Path, out: Path, progress: Progress
                          ) -> tuple[list[np.ndarray], float]:
    """Transcode ``source`` with the gateway's upscaler; return the frames it made before
    encoding, and the admitted seconds left once it is over."""
    triton = TritonClient(settings.triton_url, settings.triton_timeout_s,
                          settings.unavailable_retry_after_s)
    admission = WorkAdmission.from_settings(settings)
    try:
        traits = await triton.traits(MODEL)
        clip = await prepare(source, settings)
        plan = plan_video(clip, settings, traits, admission, model=MODEL)
        made: list[np.ndarray] = []
        async with frame_upscaler(plan, triton, admission, progress) as upscale_frame:
            async def keep(rgb: np.ndarray) -> np.ndarray:
                frame = await upscale_frame(rgb)
                made.append(frame)
                return frame

            # one frame at a time here, so that ``made`` is in the clip's order
            await transcode(source, out, keep, info=clip.info, final=clip.final,
                            output=OutputSpec(), limits=limits_for(settings),
                            on_progress=progress_callback(progress, plan, clip.info),
                            frames_in_flight=1)
            assert admission.seconds > 0  # the clip is admitted while it runs
        return made, admission.seconds
    finally:
        await triton.close()


def test_clip_frames_through_triton_match_post_upscale_of_each_frame(
        tmp_path: Path, settings: Settings, client: TestClient) -> None:
    source = write_clip(tmp_path / "clip.mp4", ClipSpec(seconds=1.0, fps=12, width=96, height=64))
    progress = Progress()
    made, left = asyncio.run(_through_triton(settings, source, tmp_path / "out.mp4", progress))
    assert left == 0  # released once the clip is done
    assert (progress.frames_done, progress.frames_total) == (12, 12)
    assert progress.tiles_done == progress.tiles_total > 0

    sources, encoded = _decoded(source), _decoded(tmp_path / "out.mp4")
    assert len(sources) == len(made) == len(encoded) == 12
    psnrs, neighbours = [], []
    for i in (0, 5, 10):
        answer = _post_upscale(client, sources[i])
        assert answer.shape == (256, 384, 3)
        np.testing.assert_array_equal(made[i], answer)  # the same path, the same pixels
        psnrs.append(psnr_255(encoded[i], answer))
        neighbours.append(psnr_255(encoded[i + 1], answer))
    print(f"\n{MODEL} through Triton, H.264 CRF 20 vs POST /upscale: PSNR "
          f"{', '.join(f'{p:.1f}' for p in psnrs)} dB (frames 0, 5, 10); the next frame vs the "
          f"same answers: {', '.join(f'{p:.1f}' for p in neighbours)} dB")
    assert min(psnrs) > MIN_PSNR_DB > max(neighbours)
