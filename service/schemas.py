"""Request options and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, model_validator

from imdsr.imaging.codec import FORMATS, Metadata, OutputFormat, PngMode
from imdsr.imaging.geometry import Fit
from imdsr.imaging.pipeline import AlphaMode
from imdsr.imaging.tiling import ALIGN
from imdsr.video.formats import MAX_CRF, VideoFormat

# "JPEG/WebP/AVIF": the formats `quality` applies to, from the codec's table
_LOSSY = "/".join(spec.label for spec in FORMATS.values() if spec.quality is not None)
_PICTURE_FORMATS = "|".join(OutputFormat)
_VIDEO_FORMATS = "|".join(VideoFormat)
# Options that shape a picture's encoding only, and the one that shapes a clip's only.
PICTURE_ONLY = ("quality", "png")
VIDEO_ONLY = ("crf",)


class UpscaleOptions(BaseModel):
    """Options of ``POST /upscale``, from the query string or from multipart form fields."""

    model: str | None = Field(None, description="model, e.g. c16nla, rlfn, efdn, imdn (GET /models "
                              "lists them); default from config",
                              pattern=r"^[a-z0-9_]{1,64}$")
    # One parameter for both kinds: a picture's formats, or a clip's (POST /jobs); a clip asking
    # for a picture's format, or the reverse, is a 422 naming the ones it takes.
    format: OutputFormat | VideoFormat | None = Field(
        None, description=f"a picture: {_PICTURE_FORMATS} (default: same family as the input, "
        f"or the Accept header's choice); a video (POST /jobs): {_VIDEO_FORMATS} (default mp4, "
        "H.264; webm: VP9)")
    quality: int | None = Field(None, ge=1, le=100, description=f"{_LOSSY} quality (default: "
                                "the gateway's, GET /formats)")
    png: PngMode | None = Field(None, description="PNG compression: fast (default, ~10x faster "
                                "than zlib's default at about its size) or small (smallest, slow)")
    # allow_inf_nan=False: NaN and inf were refused (422) only because no comparison holds for NaN,
    # with a misleading "should be less than or equal to 16"; now they get "a finite number".
    outscale: float | None = Field(None, gt=0, le=16, allow_inf_nan=False,
                                   description="final scale, e.g. 2 or 3.5: "
                                   "x4 network then a Lanczos resize")
    width: int | None = Field(None, ge=1, le=65535, description="target width in pixels (x4 network, "
                              "then a Lanczos resize); one side alone keeps the aspect ratio")
    height: int | None = Field(None, ge=1, le=65535, description="target height in pixels")
    fit: Fit = Field(Fit.INSIDE, description="with width and height: inside (fit in the box, keep "
                     "the aspect ratio), cover (fill the box, crop the overflow, centred), fill "
                     "(stretch to the box)")
    metadata: Metadata = Field(Metadata.KEEP, description="keep: EXIF (orientation reset to 1 once "
                               "applied), XMP and ICC where the format holds them; strip: ICC only")
    alpha: AlphaMode = Field(AlphaMode.MODEL, description="alpha plane through the network as a "
                             "grey image (sharp edges; twice the work) or bicubic")
    crf: int | None = Field(None, ge=0, le=MAX_CRF, description="video only: the encoder's constant "
                            "rate factor, lower is better and larger (default: the gateway's, "
                            "else H.264 20, VP9 32; H.264 takes 0-51)")
    tile: int | None = Field(None, ge=ALIGN, le=2048, multiple_of=ALIGN,
                             description="tile core size in input pixels (multiple of 32); "
                             "its window (tile + 2 x context) must fit the model's window limit, "
                             "else 422 naming the largest tile that fits. Rounded down to the "
                             "model's alignment; ignored where the model runs the image whole "
                             "(RLFN, EFDN up to 1024 px: GET /models, tiling)")

    @model_validator(mode="after")
    def _one_way_to_size(self) -> UpscaleOptions:
        if self.outscale is not None and (self.width is not None or self.height is not None):
            raise ValueError("give outscale or width/height, not both")
        return self

    def output_options(self) -> dict[str, object]:
        """What shapes the output bytes (the ETag's part of the request); ``tile`` does not."""
        return self.model_dump(exclude={"tile"}, mode="json")


class FormatInfo(BaseModel):
    name: OutputFormat = Field(description="the value `format=` takes")
    label: str = Field(description="as people write it, e.g. WebP")
    content_type: str = Field(description="the answer's Content-Type")
    extension: str = Field(description="what a file of it is named with, without the dot")
    quality: int | None = Field(description="this gateway's quality when a request names none; "
                                "null: lossless (PNG)")
    max_side: int | None = Field(description="the largest side it holds (larger outputs: 413); "
                                 "null: no limit below the pixel limits")
    animated: bool = Field(description="holds an animation (animated inputs keep their frames)")


class VideoFormatInfo(BaseModel):
    name: VideoFormat = Field(description="the value `format=` takes for a clip (POST /jobs)")
    label: str = Field(description="as people write it, e.g. MP4 (H.264)")
    content_type: str = Field(description="the result's Content-Type")
    extension: str = Field(description="what a file of it is named with, without the dot")
    crf: int = Field(description="this gateway's CRF when a request names none")


class FormatList(BaseModel):
    formats: list[FormatInfo]
    video: list[VideoFormatInfo] = Field(default_factory=list, description="a clip's formats")


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


class TilingInfo(BaseModel):
    context: int = Field(description="LR pixels of context around each tile's core")
    align: int = Field(description="tile offsets and sizes are multiples of this")
    min_side: int = Field(description="smallest window the network runs (smaller images are padded)")
    whole_up_to: int = Field(description="images up to this many px a side run whole (0: by window)")


class ModelInfo(BaseModel):
    variant: str = Field(description="the name `model=` takes (Triton's name also works)")
    triton_name: str
    scale: int
    state: str
    ready: bool
    default: bool
    arch: str | None = Field(None, description="architecture: imdeception, imdn, rlfn, efdn")
    params: int | None = Field(None, description="parameters")
    flops: int | None = Field(None, description="FLOPs at 256x256 LR input (NTIRE 2022 counting)")
    precision: str | None = Field(None, description="what the model computes in (f32, bf16, fp16), "
                                  "as the loaded model says (precision auto: bf16 on CPUs with "
                                  "AMX or AVX512_BF16)")
    tiling: TilingInfo | None = None
    use_when: str | None = Field(None, description="one line for a person choosing: the inputs "
                                 "the model suits and what it trades")


class ModelList(BaseModel):
    models: list[ModelInfo]


# --- jobs (POST /jobs, service/jobs_api.py) --------------------------------------------------


class JobState(StrEnum):
    QUEUED = "queued"        # accepted, waiting for a worker
    RUNNING = "running"      # a gateway is upscaling it (or waiting for admission to let it)
    DONE = "done"            # the result is at `result` until `expires`
    FAILED = "failed"        # `error` says why (the error /upscale would have answered)
    CANCELLED = "cancelled"  # DELETE /jobs/{id}: its tiles stopped, its result (if any) deleted

    @property
    def final(self) -> bool:
        return self not in (JobState.QUEUED, JobState.RUNNING)


class JobProgress(BaseModel):
    tiles_done: int = Field(0, ge=0, description="tiles placed, alpha plane's included")
    tiles_total: int = Field(0, ge=0, description="0 until the job starts running")
    frames_done: int = Field(0, ge=0)
    frames_total: int = Field(0, ge=0, description="1 for a still picture; 0 until it starts")


class JobStatus(BaseModel):
    """A job: ``GET /jobs/{id}``, and the answer of ``POST /jobs`` and ``DELETE /jobs/{id}``."""

    id: str = Field(description="unguessable: whoever has it can read and cancel the job")
    status: JobState
    model: str = Field(description="the model that runs it (chosen at submission)")
    progress: JobProgress
    created: datetime
    started: datetime | None = Field(None, description="when its current run began")
    finished: datetime | None = None
    expires: datetime | None = Field(None, description="when a finished job's result and record "
                                     "go (IMDSR_JOBS_TTL_S after it finished); then 410")
    error: ErrorBody | None = Field(None, description="why it failed: the error /upscale answers")
    result: str | None = Field(None, description="/jobs/{id}/result once done, until it expires")
