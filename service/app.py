"""The gateway application: ``create_app()`` for uvicorn (``service.app:create_app --factory``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI

from service import errors
from service.admission import WorkAdmission
from service.api import router
from service.limits import ConcurrencyLimit
from service.observe import RequestMetrics
from service.settings import Settings, get_settings, memory_budget
from service.triton_client import TritonClient

DESCRIPTION = """
4x super-resolution with IMDeception, served by NVIDIA Triton.

`POST /upscale` takes an image (raw body or multipart field `image`) and returns it upscaled.
Every error is JSON: `{"error": code, "detail": ...}`.
"""


def _version() -> str:
    try:
        return version("imdsr")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One gRPC channel per process, opened inside the running event loop.
        app.state.triton = TritonClient(settings.triton_url, settings.triton_timeout_s,
                                        settings.unavailable_retry_after_s)
        try:
            yield
        finally:
            await app.state.triton.close()

    app = FastAPI(title="imdsr", version=_version(), description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.limit = ConcurrencyLimit(settings.max_concurrent_requests, settings.retry_after_s)
    app.state.admission = WorkAdmission(
        tile_deadline_s=settings.triton_timeout_s, request_deadline_s=settings.request_timeout_s,
        memory_budget=memory_budget(settings), parallelism=settings.triton_parallelism,
        in_flight=settings.tiles_in_flight, retry_after_s=settings.retry_after_s)
    app.dependency_overrides[get_settings] = lambda: settings
    errors.install(app)
    app.add_middleware(RequestMetrics)
    app.include_router(router)
    return app
