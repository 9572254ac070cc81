"""How long and how large a clip may be: checked from the header before any decoding
(``check_input``, ``check_output``), and again while it runs (``transcode``), since a header can
lie about its frame count or duration.

The field names are the gateway's settings of the same name (``service/settings.py``), so each
refusal names the setting that would let the clip through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from imdsr.contract import SCALE
from imdsr.imaging.geometry import FinalSize
from imdsr.video.errors import VideoLimitError

if TYPE_CHECKING:  # probe.py calls check_input between reading the header and the first frame
    from imdsr.video.probe import VideoInfo

# While running, a timestamp past the duration limit by less than this is a header's rounding,
# not a lie: the last frame's own duration, or an audio track longer than the video.
SECONDS_SLACK = 1.0


class VideoLimits(BaseModel):
    """The limits a clip is held to (the gateway fills them from its settings)."""

    model_config = ConfigDict(frozen=True)

    max_video_seconds: float = Field(gt=0)
    max_video_frames: int = Field(ge=1)
    max_input_pixels: int = Field(gt=0, description="per frame, as for a picture")
    max_output_pixels: int = Field(gt=0, description="per frame (its x4 intermediate too)")
    max_video_output_pixels_total: int = Field(gt=0, description="every output frame together")

    def check_input(self, info: VideoInfo) -> None:
        """Duration, frame count and input pixels per frame: the checks the header alone allows."""
        if info.duration_s is not None and info.duration_s > self.max_video_seconds:
            raise VideoLimitError("max_video_seconds", round(info.duration_s, 3),
                                  self.max_video_seconds, "the clip's duration in seconds")
        if info.frames is not None and info.frames > self.max_video_frames:
            raise VideoLimitError("max_video_frames", info.frames, self.max_video_frames,
                                  "the clip's frame count")
        pixels = info.width * info.height
        if pixels > self.max_input_pixels:
            raise VideoLimitError("max_input_pixels", pixels, self.max_input_pixels,
                                  f"a frame's input pixels ({info.width}x{info.height})")

    def check_output(self, info: VideoInfo, final: FinalSize) -> None:
        """Output pixels per frame (the x4 intermediate counts: it is what sits in memory) and in
        all; a clip whose header has no frame count (nor duration) is held to the total while it
        runs (``check_running``)."""
        x4 = info.width * info.height * SCALE * SCALE
        biggest = max(x4, final.resize[0] * final.resize[1])
        if biggest > self.max_output_pixels:
            raise VideoLimitError("max_output_pixels", biggest, self.max_output_pixels,
                                  "a frame's output pixels")
        frames = info.frames
        if frames is not None and final.pixels * frames > self.max_video_output_pixels_total:
            raise VideoLimitError("max_video_output_pixels_total", final.pixels * frames,
                                  self.max_video_output_pixels_total,
                                  f"the output pixels of all {frames} frames")

    def check_running(self, frames_done: int, seconds: float, frame_pixels: int) -> None:
        """The same limits against what has been decoded so far (a lying header)."""
        if frames_done > self.max_video_frames:
            raise VideoLimitError("max_video_frames", frames_done, self.max_video_frames,
                                  "the frames decoded so far")
        if seconds > self.max_video_seconds + SECONDS_SLACK:
            raise VideoLimitError("max_video_seconds", round(seconds, 3), self.max_video_seconds,
                                  "the timestamp reached")
        if frames_done * frame_pixels > self.max_video_output_pixels_total:
            raise VideoLimitError("max_video_output_pixels_total", frames_done * frame_pixels,
                                  self.max_video_output_pixels_total,
                                  "the output pixels encoded so far")
