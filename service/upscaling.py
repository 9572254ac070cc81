"""Running a planned upscale (service/plan.py): admitted, its tiles timed in and out of admission,
every frame through the picture pipeline on Triton, encoded.

The HTTP handler (service/api.py) reads, plans, calls ``run_upscale`` and answers; so does a job
(service/jobs/runner.py), from its stored input, with a ``Progress``. Nothing here knows of HTTP
beyond the gateway errors that decoding, admission and Triton raise.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from imdsr.imaging import codec
from imdsr.imaging.pipeline import TileInfer, UpscaleResult, tile_count, upscale
from service import errors
from service.admission import Cost, WorkAdmission
from service.metrics import OUTPUT_PIXELS, REJECTED, TILES
from service.model_traits import ModelTraits, starting_rate
from service.plan import CacheKey, UpscalePlan, plan_upscale
from service.schemas import UpscaleOptions
from service.settings import Settings
from service.timings import Timings
from service.triton_client import TritonClient


@dataclass(frozen=True)
class UpscaleAnswer:
    """The encoded answer and what its headers report."""

    body: bytes
    width: int
    height: int
    bit_depth: int
    tiles: int


@dataclass
class Progress:
    """How far a run is: read by a job's heartbeat (service/jobs/runner.py) while it runs."""

    tiles_done: int = 0
    tiles_total: int = 0
    frames_done: int = 0
    frames_total: int = 0

    def tile_done(self) -> None:
        self.tiles_done += 1


def decode_input(data: bytes, settings: Settings) -> tuple[codec.Picture, codec.Animation | None]:
    """The first (or only) picture, and every frame when the image is animated; the limits'
    refusals as the gateway's errors (413, 415, 400, 422)."""
    try:
        picture = codec.decode(data, settings.max_input_pixels)
        return picture, codec.decode_animation(data, settings.max_input_pixels, settings.max_frames)
    except codec.TooManyPixelsError as exc:
        REJECTED.labels(reason="input_pixels").inc()
        raise errors.ImageTooLargeError(str(exc)) from exc
    except codec.TooManyFramesError as exc:
        REJECTED.labels(reason="frames").inc()
        raise errors.InvalidParameterError(str(exc)) from exc
    except codec.UnsupportedImageError as exc:
        raise errors.UnsupportedMediaTypeError(str(exc)) from exc
    except codec.ImageDecodeError as exc:
        raise errors.CorruptImageError(str(exc)) from exc


def plan_for(options: UpscaleOptions, settings: Settings, traits: ModelTraits, admission: WorkAdmission,
             picture: codec.Picture, animation: codec.Animation | None, *, model: str,
             accept: str | None) -> UpscalePlan:
    """``plan_upscale`` at the model's current rate (learnt, else published, else the default)."""
    rate = admission.rate(model, starting_rate(model, traits, settings))
    return plan_upscale(options, settings, traits, picture, model=model,
                        frames=len(animation.frames) if animation else 1, accept=accept, rate=rate)


def answer_headers(plan: UpscalePlan, picture: codec.Picture, done: UpscaleAnswer, timings: Timings,
                   key: CacheKey) -> dict[str, str]:
    """The headers of an upscaled answer (``POST /upscale`` and ``GET /jobs/{id}/result``)."""
    headers = {
        "X-Model": plan.model,
        "X-Input-Size": f"{picture.width}x{picture.height}",
        "X-Output-Size": f"{done.width}x{done.height}",
        "X-Tiles": str(done.tiles),
        "X-Bit-Depth": str(done.bit_depth),
        "Server-Timing": timings.header(),
        **key.headers,
    }
    if plan.frames > 1:
        headers["X-Frames"] = str(plan.frames)
    return headers


def timed_infer(triton: TritonClient, admission: WorkAdmission, plan: UpscalePlan,
                cost: Cost) -> TileInfer:
    """Triton's infer for the plan's model, each call counted into admission when sent and out
    when answered (service/admission.py), so a tile later than the work it was sent behind
    predicts raises the model's rate."""
    # Each call is timed against the tile work it was sent behind (admission.py); the alpha
    # plane's calls are counted, not learnt from (its rate was doubled).
    call_s = cost.seconds_per_tile / (2 if plan.alpha_through_model else 1)
    learn_as = None if plan.alpha_through_model else plan.model

    async def infer(batch: np.ndarray) -> np.ndarray:
        predicted = admission.tile_sent(call_s)
        start = time.perf_counter()
        try:
            answer = await triton.infer(plan.model, batch, plan.eight_bit)
        except BaseException:
            admission.tile_answered(call_s)
            raise
        admission.tile_answered(call_s, learn_as, plan.rate, predicted, time.perf_counter() - start)
        return answer

    return infer


async def _encode(plan: UpscalePlan, results: list[codec.Picture],
                  animation: codec.Animation | None) -> bytes:
    if animation:
        return await asyncio.to_thread(codec.encode_animation, animation.with_frames(results),
                                       plan.format, plan.quality)
    return await asyncio.to_thread(codec.encode, results[0], plan.format, plan.quality, plan.png,
                                   plan.metadata)


async def _upscale_frames(plan: UpscalePlan, frames: list[codec.Picture], infer: TileInfer,
                          progress: Progress) -> list[UpscaleResult]:
    progress.frames_total = len(frames)
    progress.tiles_total = len(frames) * tile_count(
        frames[0].height, frames[0].width, tile=plan.tile, rule=plan.rule,
        alpha_through_model=plan.alpha_through_model)
    results = []
    for frame in frames:
        results.append(await upscale(frame, infer, tile=plan.tile, rule=plan.rule,
                                     in_flight=plan.in_flight, final=plan.final,
                                     alpha_mode=plan.alpha, on_tile=progress.tile_done))
        progress.frames_done += 1
    return results


async def run_upscale(plan: UpscalePlan, picture: codec.Picture, animation: codec.Animation | None,
                      triton: TritonClient, admission: WorkAdmission, timings: Timings,
                      progress: Progress | None = None) -> UpscaleAnswer:
    """Admit ``plan`` (429/413 when it does not fit), upscale ``picture`` or every frame of
    ``animation`` and encode; the admitted work is released however it ends (cancellation
    included: see service/hangups.py). ``progress`` follows the tiles and frames done."""
    cost = admission.admit(plan.cost)
    try:
        infer = timed_infer(triton, admission, plan, cost)
        frames = list(animation.frames) if animation else [picture]
        with timings.stage("infer"):
            results = await _upscale_frames(plan, frames, infer, progress or Progress())
        # An animation's infer time covers every frame, its cost's megapixels one: not a rate.
        if not animation:
            admission.observe(plan.model, cost, timings.seconds["infer"])
        tiles = sum(r.tiles for r in results)
        TILES.observe(tiles)
        OUTPUT_PIXELS.observe(plan.final.pixels * plan.frames)
        with timings.stage("encode"):
            body = await _encode(plan, [r.picture for r in results], animation)
        out = results[0].picture
        # Only a still PNG keeps 16 bits; animations are 8-bit frames, the other formats 8-bit.
        bits = out.bit_depth if plan.format is codec.OutputFormat.PNG and not animation else 8
        answer = UpscaleAnswer(body, out.width, out.height, bits, tiles)
        del results, out  # the full-size planes go now; only the encoded body stays
        return answer
    finally:
        admission.release(cost)
