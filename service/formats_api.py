"""``GET /formats``: the output formats, read from the codec's table, for clients that offer them.

The web page builds its format choice and names its downloads from this list, so a format added
to ``imdsr.imaging.codec.FORMATS`` appears there without editing the page; so do a clip's
(``imdsr.video.formats.VideoFormat``, under ``video``). Open to all, like
``/healthz``: the page asks for it before it knows whether the gateway wants an API key, and it
tells nothing about the models or the images.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from imdsr.imaging.codec import FORMATS
from imdsr.video.formats import VideoFormat
from service.schemas import FormatInfo, FormatList, VideoFormatInfo
from service.settings import Settings, get_settings
from service.video.refusals import output_for

router = APIRouter()


@router.get("/formats", response_model=FormatList,
            summary="Output formats: the values of `format=` (a picture's, and a clip's under "
                    "`video`), their media types and extensions")
async def formats(settings: Annotated[Settings, Depends(get_settings)]) -> FormatList:
    return FormatList(formats=[
        FormatInfo(name=fmt, label=spec.label, content_type=spec.media_type,
                   extension=spec.extension, quality=settings.quality_for(fmt),
                   max_side=spec.max_side, animated=spec.animated)
        for fmt, spec in FORMATS.items()], video=[
        VideoFormatInfo(name=fmt, label=f"{fmt.label} ({spec.video_codec.label})",
                        content_type=fmt.content_type, extension=fmt.value, crf=spec.crf_value)
        for fmt in VideoFormat for spec in (output_for(settings, fmt),)])
