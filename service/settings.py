"""Gateway configuration: pydantic-settings, every field overridable by an ``IMDSR_*`` env var."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from imdsr.contract import DEFAULT_GRPC_PORT, DEFAULT_VARIANT
from imdsr.imaging.codec import DEFAULT_QUALITY, OutputFormat, PngMode
from imdsr.imaging.tiling import ALIGN, DEFAULT_TILE
from imdsr.settings import PREFIX, settings_view
from imdsr.video.formats import MAX_CRF


@settings_view  # the gateway view of the one settings model (imdsr/settings.py)
class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, env_file=None, extra="ignore")

    # Triton's gRPC endpoint (host:port): tiles go over gRPC, several in flight per request.
    triton_url: str = f"127.0.0.1:{DEFAULT_GRPC_PORT}"
    default_model: str = DEFAULT_VARIANT
    # JPEG uploads (service/model_choice.py): with no `model=`, a JPEG whose quality, estimated
    # from its quantisation tables, is below jpeg_quality_below goes to jpeg_model, trained to
    # undo compression while it upscales (threshold measured: docs/MODEL_CARD.md, "Which model
    # answers a JPEG"). An empty jpeg_model turns the routing off.
    jpeg_model: str = "c16nla_real"
    jpeg_quality_below: int = Field(95, ge=1, le=101, description="101: every JPEG")
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
    # Video (issue 28, imdsr/video/): refused from the container's header before any decoding, and
    # held again while frames decode (a header can lie); per frame, the pixel limits above apply.
    max_video_seconds: float = Field(60.0, gt=0)
    max_video_frames: int = Field(3600, ge=1, description="a minute at 60 fps")
    max_video_output_pixels_total: int = Field(1920 * 1080 * 1800, gt=0,
                                               description="every output frame: a minute of 1080p at 30 fps")
    video_crf: int | None = Field(None, ge=0, le=MAX_CRF, description="None: the codec's own (H.264 20, "
                                  "VP9 32, AV1 35: imdsr/video/output.py)")
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

    # Jobs (POST /jobs, service/jobs/, docs/API.md "Jobs"): an upscale as a resource to poll, for
    # clients that cannot hold a connection for the whole work. State in a store, inputs and
    # results as files in jobs_dir: "local" is SQLite in jobs_dir (the gateways of one host);
    # a redis:// URL shares jobs between replicas, jobs_dir then being a volume they all mount.
    jobs_store: str = Field("local", pattern=r"^(local|rediss?://\S+)$",
                            description='"local" or a redis:// (rediss://) URL')
    jobs_dir: Path = Field(default_factory=lambda: Path.home() / ".local" / "state" / "imdsr" / "jobs",
                           description="job inputs and results (and the local store's SQLite)")
    jobs_max_queued: int = Field(32, ge=1, description="jobs waiting to run; more: 429")
    # Results and the inputs of jobs not finished, all jobs together; a job reserves its input
    # and the largest its result can be (the raw output) until it ends.
    jobs_max_result_bytes: int = Field(2 << 30, gt=0, description="bytes of job files on disk")
    jobs_ttl_s: float = Field(3600.0, gt=0, description="how long a finished job's result is kept")
    jobs_workers: int = Field(1, ge=0, description="jobs this gateway runs at once (0: none)")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests override this dependency instead of the environment."""
    return Settings()
