"""Gateway configuration: pydantic-settings, every field overridable by an ``IMDSR_*`` env var."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from imdsr.contract import DEFAULT_GRPC_PORT, DEFAULT_VARIANT
from imdsr.imaging.codec import DEFAULT_QUALITY, OutputFormat, PngMode
from imdsr.imaging.tiling import ALIGN, DEFAULT_TILE


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMDSR_", env_file=None, extra="ignore")

    # Triton's gRPC endpoint (host:port): tiles go over gRPC, several in flight per request.
    triton_url: str = f"127.0.0.1:{DEFAULT_GRPC_PORT}"
    default_model: str = DEFAULT_VARIANT
    triton_timeout_s: float = Field(60.0, gt=0, description="per tile inference call")

    # Tiling (defaults chosen by `imdsr bench tiling`, docs/PERFORMANCE.md "Tiling").
    tile: int = Field(DEFAULT_TILE, ge=ALIGN, multiple_of=ALIGN)
    # Context around each tile: None (default) takes each model's own, published in its config
    # (IMDeception 32, IMDN 16, RLFN 30, EFDN 21: docs/MODEL_ZOO.md); a number overrides it for
    # every model (rounded up to the model's alignment).
    tile_context: int | None = Field(None, ge=0)
    # Tiles of one request in flight at once: enough for Triton's dynamic batcher to batch, few
    # enough that memory is bounded by tiles, not by the image.
    tiles_in_flight: int = Field(4, ge=1, le=64)

    # Limits.
    max_request_bytes: int = Field(32 * 1024 * 1024, gt=0)
    max_input_pixels: int = Field(4096 * 4096 // 4, gt=0)       # 2048 x 2048
    max_output_pixels: int = Field(8192 * 8192, gt=0)            # applies to the x4 result too
    # Animated GIF/WebP/PNG: every frame is upscaled; the pixel limits count all frames together.
    max_frames: int = Field(100, ge=1)
    request_timeout_s: float = Field(300.0, gt=0)
    max_concurrent_requests: int = Field(16, ge=1)
    # Admission by work (service/admission.py): model seconds per output megapixel to start from,
    # until a model's own is learnt. Each served model publishes its rate in its config.pbtxt (its
    # registry entry's, measured on the 2-core CPU this project ships for: cpu repositories only);
    # this map overrides it per model, e.g. where an accelerator serves
    # (IMDSR_SECONDS_PER_MPX='{"c16nla": 0.01}'), and the default is for a model that publishes none.
    seconds_per_mpx: dict[str, float] = Field(default_factory=dict)
    default_seconds_per_mpx: float = Field(0.30, gt=0, description="for a model that publishes no rate")
    triton_parallelism: int = Field(1, ge=1, description="model executions Triton runs at once")
    # Default: 60% of the container's memory limit (cgroup), else 4 GiB.
    memory_budget_bytes: int | None = Field(None, gt=0)
    retry_after_s: int = Field(1, ge=1, description="Retry-After on 429")
    unavailable_retry_after_s: int = Field(5, ge=1, description="Retry-After on 503")

    # HTTP conventions (service/conventions.py). The same input, options and weights always give
    # the same bytes, so a client may keep a result; ETag/If-None-Match revalidate it.
    cache_control: str = "private, max-age=86400"
    # Comma-separated in the environment: IMDSR_API_KEYS=key1,key2
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="allowed origins; empty: no CORS")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="X-API-Key values; empty: the API is open")

    @field_validator("cors_origins", "api_keys", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    # Encoding defaults.
    jpeg_quality: int = Field(DEFAULT_QUALITY[OutputFormat.JPEG], ge=1, le=100)
    webp_quality: int = Field(DEFAULT_QUALITY[OutputFormat.WEBP], ge=1, le=100)
    avif_quality: int = Field(DEFAULT_QUALITY[OutputFormat.AVIF], ge=1, le=100)
    png: PngMode = Field(PngMode.FAST, description="PNG compression unless a request says: fast | small")

    def quality_for(self, fmt: OutputFormat) -> int | None:
        """The quality of an answer in ``fmt`` when the request names none: its ``<format>_quality``
        field (one per lossy format of the codec's table; tests/unit/test_codec_format_table.py
        checks that each has one); None for a lossless format."""
        return getattr(self, f"{fmt.value}_quality") if fmt.lossy else None


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests override this dependency instead of the environment."""
    return Settings()
