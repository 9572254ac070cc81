"""What a video file is, without opening it: the output formats (``format=mp4|webm``), the
input suffixes a client treats as clips, and the container sniffed from a file's first bytes.

Light on purpose (no PyAV): the gateway decides from an upload's bytes whether it is a clip
before any decoder runs, and the command line and the client read the same names here for
their choices and file suffixes.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from imdsr.imaging.codec import HEIF_BRANDS

# Bytes of a file enough to tell a clip from a picture.
SNIFF_BYTES = 12
# Matroska and WebM: the EBML header's magic number.
EBML_MAGIC = b"\x1a\x45\xdf\xa3"
# ISO-BMFF (MP4, MOV): the first box's type, at bytes 4-8. "ftyp" is also AVIF's and HEIC's,
# told apart by their major brand (imaging/codec.py HEIF_BRANDS); old QuickTime files start
# straight with one of the others.
BMFF_FIRST_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
# The largest CRF any of the clip encoders takes (VP9 and AV1: 63; H.264 stops at 51, checked
# per codec in imdsr/video/output.py): the bound of every `crf` option and setting.
MAX_CRF = 63
# What a client sends as a clip (folder walking, the upload's Content-Type).
VIDEO_SUFFIXES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime",
                  ".mkv": "video/x-matroska", ".webm": "video/webm"}


class VideoFormat(StrEnum):
    """The containers a clip is written in; ``format=`` takes these names for a clip."""

    MP4 = "mp4"
    WEBM = "webm"

    @property
    def content_type(self) -> str:
        return f"video/{self.value}"

    @property
    def label(self) -> str:
        """As people write it: MP4, WebM."""
        return {"mp4": "MP4", "webm": "WebM"}[self.value]

    @property
    def suffix(self) -> str:
        return f".{self.value}"

    @classmethod
    def named(cls, name: str) -> VideoFormat | None:
        """The format a suffix, media type or name means (".mp4", "video/webm"); else None."""
        key = name.strip().lower().split(";")[0].strip().removeprefix("video/").removeprefix(".")
        return cls._value2member_map_.get(key)  # type: ignore[return-value]


def is_video(head: bytes) -> bool:
    """Whether a file starting with ``head`` (``SNIFF_BYTES`` or more) is a clip's container
    (MP4, MOV, MKV, WebM) rather than a picture: what the upload's bytes say, whatever its
    Content-Type claims."""
    if head.startswith(EBML_MAGIC):
        return True
    box = head[4:8]
    if box == b"ftyp":
        return head[8:12] not in HEIF_BRANDS
    return box in BMFF_FIRST_BOXES


def is_video_path(path: Path) -> bool:
    """A client's judgement of a file: its first bytes, else (unreadable) its suffix."""
    try:
        with path.open("rb") as f:
            return is_video(f.read(SNIFF_BYTES))
    except OSError:
        return path.suffix.lower() in VIDEO_SUFFIXES
