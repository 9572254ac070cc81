"""The tile pipeline stops sending tiles when its task is cancelled, and counts the tiles it places
(issue 25: hang-ups and cancelled jobs stop work; job progress)."""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np

from imdsr.contract import SCALE
from imdsr.imaging.codec import Picture
from imdsr.imaging.pipeline import AlphaMode, tile_count, upscale
from imdsr.imaging.tiling import TilingRule

RULE = TilingRule(context=0, align=32, min_side=64, whole_up_to=0)


def _picture(h: int, w: int, alpha: bool = False) -> Picture:
    rng = np.random.default_rng(0)
    color = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    plane = rng.integers(0, 256, (h, w), dtype=np.uint8) if alpha else None
    return Picture(color=color, alpha=plane, gray=False, source_format="PNG")


def _nearest(batch: np.ndarray) -> np.ndarray:
    return batch.repeat(SCALE, axis=2).repeat(SCALE, axis=3)


def test_cancelled_upscale_sends_no_further_tile() -> None:
    sent: list[float] = []

    async def slow_infer(batch: np.ndarray) -> np.ndarray:
        sent.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.2)
        return _nearest(batch)

    async def scenario() -> tuple[int, int]:
        task = asyncio.create_task(upscale(_picture(256, 256), slow_infer, tile=32, rule=RULE,
                                           in_flight=4))
        await asyncio.sleep(0.3)  # the first four tiles answered, the next four in infer
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        at_cancel = len(sent)
        await asyncio.sleep(0.6)  # long enough for three more rounds of tiles, had any gone
        return at_cancel, len(sent)

    at_cancel, later = asyncio.run(scenario())
    assert at_cancel == 8, at_cancel  # 64 tiles planned: only two rounds of four were sent
    assert later == at_cancel


def test_on_tile_counts_every_tile_alpha_included() -> None:
    done: list[int] = []
    picture = _picture(50, 70, alpha=True)  # padded to the 64-px minimum first

    async def infer(batch: np.ndarray) -> np.ndarray:
        return _nearest(batch)

    result = asyncio.run(upscale(picture, infer, tile=32, rule=RULE, in_flight=2,
                                 alpha_mode=AlphaMode.MODEL, on_tile=lambda: done.append(1)))
    expected = tile_count(50, 70, tile=32, rule=RULE, alpha_through_model=True)
    assert len(done) == expected == 2 * result.tiles > 2
    assert tile_count(50, 70, tile=32, rule=RULE, alpha_through_model=False) == result.tiles
