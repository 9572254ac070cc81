"""What a clip is encoded into: the container, its video encoder and CRF, and the final size.

The wheel's FFmpeg has libx264 (H.264, the default: MP4 plays everywhere), libvpx-vp9 and
libsvtav1 (WebM; AV1 in MP4 too); no libopenh264 and no libaom. Output is 8-bit 4:2:0, which
every browser plays: a 10-bit source is narrowed to 8 bits with its colour tags kept.

CRF defaults: x264's own 23 loses the detail the upscaler added, which is the point of the
service, so 20: on the synthetic clip (imdsr/video/synthetic.py, 2 s, x4 to 384x256) CRF 23 gives
33.3 dB against the uncompressed frames at 242 kB, 20 gives 35.1 dB at 284 kB (+17%), 18 35.9 dB
at 318 kB. VP9 32 and SVT-AV1 35 are their projects' suggested starting points for 720p-1080p
(not measured here).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from imdsr.imaging.geometry import FinalSize, Fit, final_size
from imdsr.video.formats import MAX_CRF, VideoFormat  # its home (no PyAV there); importable from here too
from imdsr.video.probe import VideoInfo


class VideoCodec(StrEnum):
    H264 = "h264"
    VP9 = "vp9"
    AV1 = "av1"

    @property
    def label(self) -> str:
        """As people write it: H.264, VP9, AV1."""
        return "H.264" if self is VideoCodec.H264 else self.value.upper()


@dataclass(frozen=True)
class EncoderSpec:
    encoder: str                   # FFmpeg's encoder name
    crf_range: tuple[int, int]
    default_crf: int
    options: dict[str, str]        # the encoder's AVOptions besides crf


ENCODERS: dict[VideoCodec, EncoderSpec] = {
    # rc-lookahead 20 (x264's medium has 40): the encoder holds that many frames; at 4K output
    # that is 0.5 GB less, for a CRF file about 1% larger.
    VideoCodec.H264: EncoderSpec("libx264", (0, 51), 20, {"preset": "medium", "rc-lookahead": "20"}),
    # b=0: constant quality (libvpx otherwise caps the bitrate); row-mt: both cores on one frame.
    VideoCodec.VP9: EncoderSpec("libvpx-vp9", (0, 63), 32,
                                {"b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}),
    VideoCodec.AV1: EncoderSpec("libsvtav1", (1, 63), 35, {"preset": "8"}),
}
# Frames an encoder may hold at once (lookahead, reordering, frame threads): counted into what a
# clip holds in memory (the gateway's admission).
ENCODER_HELD_FRAMES = 24

CODECS: dict[VideoFormat, tuple[VideoCodec, ...]] = {  # the first is the format's default
    VideoFormat.MP4: (VideoCodec.H264, VideoCodec.AV1),
    VideoFormat.WEBM: (VideoCodec.VP9, VideoCodec.AV1),
}
# Muxer options: MP4's index first, so a browser starts playing before the whole file is in.
MUXER_OPTIONS: dict[VideoFormat, dict[str, str]] = {VideoFormat.MP4: {"movflags": "+faststart"},
                                                    VideoFormat.WEBM: {}}


class OutputSpec(BaseModel):
    """The output container, codec and CRF (None: the codec's default, ``ENCODERS``)."""

    model_config = ConfigDict(frozen=True)

    format: VideoFormat = VideoFormat.MP4
    codec: VideoCodec | None = Field(None, description="default: h264 in mp4, vp9 in webm")
    crf: int | None = Field(None, ge=0, le=MAX_CRF, description="lower: better and larger")
    threads: int = Field(0, ge=0, description="encoder threads; 0: FFmpeg's choice")

    @model_validator(mode="after")
    def _fits(self) -> OutputSpec:
        if self.codec is not None and self.codec not in CODECS[self.format]:
            allowed = ", ".join(CODECS[self.format])
            raise ValueError(f"{self.format.value} holds {allowed}, not {self.codec.value}")
        low, high = self.encoder.crf_range
        if self.crf is not None and not low <= self.crf <= high:
            raise ValueError(f"crf for {self.video_codec.value} is {low}..{high}")
        return self

    @property
    def video_codec(self) -> VideoCodec:
        return self.codec or CODECS[self.format][0]

    @property
    def encoder(self) -> EncoderSpec:
        return ENCODERS[self.video_codec]

    @property
    def crf_value(self) -> int:
        return self.encoder.default_crf if self.crf is None else self.crf


def _even(n: int) -> int:
    return max(2, n - n % 2)


def video_final(info: VideoInfo, *, outscale: float | None = None, width: int | None = None,
                height: int | None = None, fit: Fit = Fit.INSIDE) -> FinalSize:
    """The final size of each frame (coded orientation), as ``final_size`` gives a picture, with
    two differences: ``width``/``height`` are the shown ones (a phone's portrait clip is stored
    landscape and turned by its display matrix), and each side is rounded down to even, as
    4:2:0 encoding needs (less than a pixel of aspect ratio)."""
    if info.quarter_turned:
        width, height = height, width
    final = final_size(info.height, info.width, outscale=outscale, target_width=width,
                       target_height=height, fit=fit)
    if final.crop is None:
        return FinalSize((_even(final.resize[0]), _even(final.resize[1])))
    rh, rw = final.resize
    h, w = _even(final.crop[2]), _even(final.crop[3])
    return FinalSize((rh, rw), ((rh - h) // 2, (rw - w) // 2, h, w))
