"""A clip as a job (``POST /jobs`` with a video body): its parameters, its plan and refusals at
submission, and its run from the stored input, through ``frames.py`` and the streamed transcode.

A clip is only ever a job: it takes minutes, far past what one request may hold a connection
for, so ``POST /upscale`` refuses it pointing here (``VideoNeedsJobError``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from imdsr.video.formats import VideoFormat
from imdsr.video.output import OutputSpec
from imdsr.video.transcode import TranscodeReport, transcode
from service import errors
from service.admission import WorkAdmission
from service.model_traits import ModelTraits
from service.plan import UpscalePlan, format_of_kind, refuse_options_of
from service.schemas import PICTURE_ONLY, UpscaleOptions
from service.settings import Settings
from service.triton_client import TritonClient
from service.upscaling import Progress
from service.video.frames import PreparedClip, frame_upscaler, plan_video, prepare, progress_callback
from service.video.refusals import limits_for, output_for, refused

# Disk reserved for a clip's result per output pixel of all its frames. Lossy video has no
# useful worst case (raw frames would be 1.5 bytes a pixel, 30x what H.264 at CRF 20 writes for
# camera footage); 2 bits a pixel is several times what CRF 20 needs even for grain. The job's
# true size replaces the reservation once it is written (records.done).
RESERVED_BYTES_PER_PIXEL = 0.25


class VideoNeedsJobError(errors.ApiError):
    """A clip sent to ``POST /upscale``."""

    status, code = 415, "video_needs_job"


def needs_job() -> VideoNeedsJobError:
    return VideoNeedsJobError("this upload is a video: send it to POST /jobs (same body and "
                              "parameters; format=mp4|webm, crf), then poll GET /jobs/{id} and "
                              "fetch GET /jobs/{id}/result")


@dataclass(frozen=True)
class VideoJob:
    """Everything decided about a clip before its first frame is upscaled."""

    clip: PreparedClip
    output: OutputSpec
    plan: UpscalePlan

    def reserved_bytes(self, input_bytes: int) -> int:
        """Disk to reserve for the result: its frames at ``RESERVED_BYTES_PER_PIXEL``, plus the
        input's size for the sound and subtitles carried over."""
        frames = self.plan.frames
        return math.ceil(self.clip.final.pixels * frames * RESERVED_BYTES_PER_PIXEL) + input_bytes


def output_of(options: UpscaleOptions, settings: Settings) -> OutputSpec:
    """The clip's container and CRF from the request; a picture's options on a clip are a 422."""
    refuse_options_of(options, PICTURE_ONLY, "a video", "pictures")
    fmt = format_of_kind(options.format, VideoFormat) or VideoFormat.MP4
    return output_for(settings, fmt, crf=options.crf)


async def plan_clip(path: Path, options: UpscaleOptions, settings: Settings, traits: ModelTraits,
                    admission: WorkAdmission, *, model: str) -> VideoJob:
    """The clip at ``path`` planned on ``model``, or the refusal (422 parameters; 400 broken,
    415 not read here, 413 past a limit, all from the header and the first frame)."""
    output = output_of(options, settings)
    clip = await prepare(path, settings, outscale=options.outscale, width=options.width,
                         height=options.height, fit=options.fit)
    plan = plan_video(clip, settings, traits, admission, model=model, tile=options.tile)
    return VideoJob(clip, output, plan)


async def run_clip(job: VideoJob, source: Path, destination: Path, settings: Settings,
                   triton: TritonClient, admission: WorkAdmission, progress: Progress
                   ) -> TranscodeReport:
    """Admit the clip (429 while the work ahead leaves no room) and transcode ``source`` into
    ``destination``, frames through Triton; the admitted work is released however it ends, the
    partial output removed on any failure or cancellation (the job task's)."""
    info = job.clip.info
    async with frame_upscaler(job.plan, triton, admission, progress) as upscale_frame:
        with refused():
            return await transcode(source, destination, upscale_frame, info=info,
                                   final=job.clip.final, output=job.output,
                                   limits=limits_for(settings),
                                   on_progress=progress_callback(progress, job.plan, info))


def result_headers(job: VideoJob, report: TranscodeReport, model_reason: str,
                   cache_control: str) -> dict[str, str]:
    """The headers of ``GET /jobs/{id}/result`` for a clip."""
    info = job.clip.info
    height, width = report.size
    return {"Content-Type": job.output.format.content_type, "X-Model": job.plan.model,
            "X-Model-Reason": model_reason, "X-Input-Size": f"{info.width}x{info.height}",
            "X-Output-Size": f"{width}x{height}", "X-Frames": str(report.frames),
            "X-Video-Codec": report.codec, "Cache-Control": cache_control}
