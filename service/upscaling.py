"""Running a planned upscale (service/plan.py): admitted, its tiles timed in and out of admission,
every frame through the picture pipeline on Triton, encoded.

The HTTP handler (service/api.py) reads, plans, calls ``run_upscale`` and answers; nothing here
knows of HTTP beyond the gateway errors that admission and Triton raise.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from imdsr.imaging import codec
from imdsr.imaging.pipeline import TileInfer, upscale
from service.admission import Cost, WorkAdmission
from service.metrics import OUTPUT_PIXELS, TILES
from service.plan import UpscalePlan
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


async def run_upscale(plan: UpscalePlan, picture: codec.Picture, animation: codec.Animation | None,
                      triton: TritonClient, admission: WorkAdmission, timings: Timings) -> UpscaleAnswer:
    """Admit ``plan`` (429/413 when it does not fit), upscale ``picture`` or every frame of
    ``animation`` and encode; the admitted work is released however it ends."""
    cost = admission.admit(plan.cost)
    try:
        infer = timed_infer(triton, admission, plan, cost)
        frames = list(animation.frames) if animation else [picture]
        with timings.stage("infer"):
            results = [await upscale(
                frame, infer, tile=plan.tile, rule=plan.rule, in_flight=plan.in_flight,
                final=plan.final, alpha_mode=plan.alpha) for frame in frames]
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
