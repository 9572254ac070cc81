"""Each frame of a clip through the picture path: the plan's tile and tiling rule, admission for
the whole clip, Triton over gRPC with the tile calls timed (``service/upscaling.py``), and the
picture pipeline's stitching and final resize (``imdsr/imaging/pipeline.py``).

``prepare`` probes the clip and refuses it (limits, size) before anything is admitted;
``plan_video`` plans it at the model's rate; ``frame_upscaler`` admits it and yields the
``upscale_frame`` callable that ``imdsr.video.transcode.transcode`` takes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from imdsr.imaging import codec
from imdsr.imaging.codec import Metadata, OutputFormat
from imdsr.imaging.geometry import FinalSize, Fit
from imdsr.imaging.pipeline import AlphaMode, tile_count, upscale
from imdsr.video.output import ENCODER_HELD_FRAMES, video_final
from imdsr.video.probe import VideoInfo, probe
from imdsr.video.transcode import FRAMES_IN_FLIGHT, FrameUpscaler
from service.admission import WorkAdmission
from service.model_traits import ModelTraits, starting_rate
from service.plan import UpscalePlan, frame_cost, tile_for
from service.settings import Settings
from service.triton_client import TritonClient
from service.upscaling import Progress, timed_infer
from service.video.refusals import limits_for, refused

# 4:2:0 frames the encoder holds: 1.5 bytes a pixel.
YUV420_BYTES_PER_PIXEL = 1.5


@dataclass(frozen=True)
class PreparedClip:
    info: VideoInfo
    final: FinalSize


def _prepare(path: Path, settings: Settings, outscale: float | None, width: int | None,
             height: int | None, fit: Fit) -> PreparedClip:
    limits = limits_for(settings)
    with refused():
        info = probe(path, limits)
        final = video_final(info, outscale=outscale, width=width, height=height, fit=fit)
        limits.check_output(info, final)
    return PreparedClip(info, final)


async def prepare(path: Path, settings: Settings, *, outscale: float | None = None,
                  width: int | None = None, height: int | None = None,
                  fit: Fit = Fit.INSIDE) -> PreparedClip:
    """The clip at ``path`` and the size of its frames, or the gateway error that refuses it
    (415, 400, 413 naming the limit: all before a frame is upscaled)."""
    return await asyncio.to_thread(_prepare, path, settings, outscale, width, height, fit)


def _frame_geometry(info: VideoInfo) -> codec.Picture:
    """A picture of the clip's frame size for the planning functions (which read its shape)."""
    return codec.Picture(np.zeros((info.height, info.width, 3), np.uint8), None, False, "VIDEO")


def plan_video(clip: PreparedClip, settings: Settings, traits: ModelTraits,
               admission: WorkAdmission, *, model: str, tile: int | None = None) -> UpscalePlan:
    """The plan of every frame of ``clip`` on ``model``: one frame's tile, rule and cost, the
    seconds counted for the whole clip (a clip whose header has no frame count at
    ``max_video_frames``) and the memory for the frames in flight (transcode's default) and the
    encoder's."""
    rate = admission.rate(model, starting_rate(model, traits, settings))
    geometry = _frame_geometry(clip.info)
    rule = traits.with_context(settings.tile_context)
    chosen = tile_for(geometry, tile, settings.tile, traits, rule)
    one = frame_cost(geometry, chosen, rule, clip.final, rate, False, settings.tiles_in_flight)
    frames = clip.info.frames or settings.max_video_frames
    held = int(ENCODER_HELD_FRAMES * clip.final.pixels * YUV420_BYTES_PER_PIXEL)
    cost = replace(one, seconds=one.seconds * frames, tiles=one.tiles * frames,
                   memory=one.memory * FRAMES_IN_FLIGHT + held)
    return UpscalePlan(
        model=model, format=OutputFormat.PNG, quality=None, png=settings.png,
        metadata=Metadata.STRIP, alpha=AlphaMode.BICUBIC, final=clip.final, frames=frames,
        tile=chosen, rule=rule, in_flight=settings.tiles_in_flight, eight_bit=True, rate=rate,
        alpha_through_model=False, cost=cost)


def progress_callback(progress: Progress, plan: UpscalePlan, info: VideoInfo
                      ) -> Callable[[int, int | None], None]:
    """transcode's ``on_progress`` into a job's ``Progress``: frames done of the total (the
    header's count, or the frames seen so far where it has none)."""
    per_frame = tile_count(info.height, info.width, tile=plan.tile, rule=plan.rule,
                           alpha_through_model=False)

    def update(done: int, total: int | None) -> None:
        progress.frames_done = done
        progress.frames_total = max(total or 0, done)
        progress.tiles_total = progress.frames_total * per_frame

    return update


@asynccontextmanager
async def frame_upscaler(plan: UpscalePlan, triton: TritonClient, admission: WorkAdmission,
                         progress: Progress | None = None) -> AsyncIterator[FrameUpscaler]:
    """Admit the clip (429/413 when it does not fit) and yield its ``upscale_frame``: an RGB
    frame in, the frame at the plan's final size out, through Triton as ``POST /upscale`` runs a
    picture; the admitted work is released however the clip ends."""
    cost = admission.admit(plan.cost)
    try:
        infer = timed_infer(triton, admission, plan, cost)
        on_tile = progress.tile_done if progress is not None else None

        async def upscale_frame(rgb: np.ndarray) -> np.ndarray:
            picture = codec.Picture(rgb, None, False, "VIDEO")
            result = await upscale(picture, infer, tile=plan.tile, rule=plan.rule,
                                   in_flight=plan.in_flight, final=plan.final,
                                   alpha_mode=plan.alpha, on_tile=on_tile)
            return result.picture.color

        yield upscale_frame
    finally:
        admission.release(cost)
