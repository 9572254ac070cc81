"""Which model answers a request: the one asked for, else the JPEG-robust one for a compressed
JPEG, else the default.

Issue 27: a network trained on clean bicubic inputs sharpens a JPEG's block edges and ringing
into the picture (at quality 50 it is worse than bicubic); ``c16nla_real`` was trained on
compressed, noisy and soft inputs. A request that names no model and sends a JPEG whose
estimated quality (its quantisation tables, imdsr/imaging/jpeg_quality.py) is below
``jpeg_quality_below`` goes to ``jpeg_model``; the threshold is measured (docs/MODEL_CARD.md,
"Which model answers a JPEG"). An explicit ``model=`` always wins, and where Triton does not
serve the JPEG model (a repository without it) the default answers, so routing never turns a
request that would have worked into an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from imdsr.imaging.jpeg_quality import estimate_quality
from service.settings import Settings
from service.triton_client import TritonClient


@dataclass(frozen=True)
class ModelChoice:
    model: str
    # Why, for the X-Model-Reason header: "asked", "default" or "jpeg-quality=Q".
    reason: str


def jpeg_candidate(data: bytes, settings: Settings) -> ModelChoice | None:
    """The JPEG model's choice for ``data``, or None when it does not apply."""
    if not settings.jpeg_model:
        return None
    estimate = estimate_quality(data)
    if estimate is None or estimate.quality >= settings.jpeg_quality_below:
        return None
    return ModelChoice(settings.jpeg_model, f"jpeg-quality={estimate.quality}")


async def choose_model(asked: str | None, data: bytes, settings: Settings,
                       triton: TritonClient) -> ModelChoice:
    if asked:
        return ModelChoice(asked, "asked")
    candidate = jpeg_candidate(data, settings)
    if candidate is not None and await triton.serves(candidate.model):
        return candidate
    return ModelChoice(settings.default_model, "default")
