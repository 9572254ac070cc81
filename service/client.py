"""HTTP client of the gateway (``imdsr upscale URL IN -o OUT``)."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path

import httpx

from imdsr.imaging.codec import format_for_path


class UpscaleFailed(RuntimeError):  # noqa: N818 - reads as what happened
    def __init__(self, status: int, error: str, detail: object) -> None:
        super().__init__(f"HTTP {status} {error}: {detail}")
        self.status, self.error, self.detail = status, error, detail


@dataclass(frozen=True)
class Upscaled:
    path: Path
    content_type: str
    headers: dict[str, str]


def upscale_file(
    url: str,
    source: Path,
    output: Path,
    *,
    model: str | None = None,
    fmt: str | None = None,
    outscale: float | None = None,
    quality: int | None = None,
    timeout_s: float = 600.0,
) -> Upscaled:
    """POST ``source`` to ``{url}/upscale``; write the image to ``output``."""
    if fmt is None:
        named = format_for_path(output)
        fmt = named.value if named else None
    params = {k: v for k, v in {"model": model, "format": fmt, "outscale": outscale,
                                "quality": quality}.items() if v is not None}
    content_type = mimetypes.guess_type(source.name)[0] or "application/octet-stream"
    with source.open("rb") as body:
        response = httpx.post(f"{url.rstrip('/')}/upscale", params=params, content=body,
                              headers={"Content-Type": content_type}, timeout=timeout_s)
    if response.status_code != 200:
        try:
            payload = response.json()
            raise UpscaleFailed(response.status_code, payload.get("error", "?"),
                                payload.get("detail"))
        except ValueError:
            raise UpscaleFailed(response.status_code, "http_error", response.text[:200]) from None
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(response.content)
    return Upscaled(output, response.headers.get("content-type", ""), dict(response.headers))
