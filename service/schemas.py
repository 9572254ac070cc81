"""Request options and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from imdsr.imaging.codec import OutputFormat, PngMode
from imdsr.imaging.tiling import ALIGN


class UpscaleOptions(BaseModel):
    """Options of ``POST /upscale``, from the query string or from multipart form fields."""

    model: str | None = Field(None, description="variant, e.g. c16nla; default from config",
                              pattern=r"^[a-z0-9_]{1,64}$")
    format: OutputFormat | None = Field(None, description="default: same family as the input, "
                                        "or the Accept header's choice")
    quality: int | None = Field(None, ge=1, le=100, description="JPEG/WebP quality")
    png: PngMode | None = Field(None, description="PNG compression: fast (default, ~10x faster "
                                "than zlib's default at about its size) or small (smallest, slow)")
    outscale: float | None = Field(None, gt=0, le=16, description="final scale, e.g. 2 or 3.5: "
                                   "x4 network then a Lanczos resize")
    tile: int | None = Field(None, ge=ALIGN, le=2048, multiple_of=ALIGN,
                             description="tile core size in input pixels (multiple of 32); "
                             "its window (tile + 2 x context) must fit the model's window limit, "
                             "else 422 naming the largest tile that fits")


class ErrorBody(BaseModel):
    error: str
    detail: Any = None


class Health(BaseModel):
    status: str = "ok"


class Readiness(BaseModel):
    ready: bool
    triton: bool
    model: str
    model_ready: bool


class ModelInfo(BaseModel):
    variant: str
    triton_name: str
    scale: int
    state: str
    ready: bool
    default: bool


class ModelList(BaseModel):
    models: list[ModelInfo]
