"""The typed refusals of the video code; the gateway maps each to its HTTP status
(``service/video/refusals.py``), so a broken upload is a 400, never a 500 or a stuck job."""

from __future__ import annotations


class VideoError(Exception):
    """Any refusal of a clip."""


class UnsupportedVideoError(VideoError):
    """Not a container or codec this service reads (415)."""


class CorruptVideoError(VideoError):
    """The file is broken or truncated: its header or its frames cannot be read (400)."""


class VideoLimitError(VideoError):
    """The clip is past a limit; ``limit`` names it (the gateway's setting of that name)."""

    def __init__(self, limit: str, value: float, maximum: float, what: str) -> None:
        super().__init__(f"{what} is {value:g}; the limit ({limit}) is {maximum:g}")
        self.limit = limit
        self.value = value
        self.maximum = maximum


class OutputCannotHoldError(VideoError):
    """A stream of the source that the output container cannot carry (422): the message says
    which stream and which format could."""


class TranscodeCancelledError(Exception):
    """The caller's cancel event was set; the partial output has been removed. Not a
    ``VideoError``: nothing is wrong with the clip."""
