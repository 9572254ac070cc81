"""Reading the image (or a job's clip) out of a request: raw ``image/*`` or ``video/*`` body, or
multipart field ``image``.

The body is read as a stream and refused as soon as it passes the byte limit, whatever
Content-Length claims, so an oversized upload never sits in memory.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from service.errors import (
    BadRequestError,
    InvalidParameterError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)

FIELD = "image"
# video/*: a clip, for POST /jobs (its bytes decide what it is, not this header).
RAW_TYPES = ("image/", "video/", "application/octet-stream")


@dataclass
class Upload:
    data: bytes
    fields: dict[str, str] = field(default_factory=dict)  # other multipart form fields


def _too_large(limit: int) -> PayloadTooLargeError:
    # Connection: close makes uvicorn close the connection once the 413 is sent. Without it the
    # connection stays open for keep-alive, the client (which sends its whole body before it reads
    # the answer) goes on uploading, and the 413 only reaches it after the last byte: a slow
    # oversized upload would hold the connection for as long as the client likes.
    return PayloadTooLargeError(f"request body exceeds {limit} bytes", headers={"Connection": "close"})


async def _capped(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        yield chunk


async def read_upload(request: Request, limit: int) -> Upload:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        return await _read_multipart(request, limit)
    if not content_type or content_type.startswith(RAW_TYPES):
        return Upload(b"".join([chunk async for chunk in _capped(request, limit)]))
    raise UnsupportedMediaTypeError(
        f"Content-Type {content_type!r}: send the image or clip as the body (image/*, video/*) "
        f"or as multipart/form-data field {FIELD!r}")


async def _read_multipart(request: Request, limit: int) -> Upload:
    parser = MultiPartParser(request.headers, _capped(request, limit), max_files=1, max_fields=16,
                             max_part_size=64 * 1024)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadRequestError(f"malformed multipart body: {exc.message}") from exc
    try:
        image = form.get(FIELD)
        if not isinstance(image, UploadFile):
            raise InvalidParameterError(f"multipart body has no file field {FIELD!r}")
        data = await image.read()
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    finally:
        await form.close()
    return Upload(data, fields)
