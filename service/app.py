"""The gateway application: ``create_app()`` for uvicorn (``service.app:create_app --factory``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from service import errors
from service.admission import WorkAdmission
from service.api import EXPOSED_HEADERS, open_router, router
from service.formats_api import router as formats_router
from service.jobs.files import JobFiles
from service.jobs.runner import JobRunner
from service.jobs.service import JobService
from service.jobs.stores import open_store
from service.jobs_api import router as jobs_router
from service.observe import RequestMetrics
from service.settings import Settings, get_settings
from service.slots import RequestSlots
from service.triton_client import TritonClient

DESCRIPTION = """
4x super-resolution with IMDeception, served by NVIDIA Triton.

`POST /upscale` takes an image (raw body or multipart field `image`) and returns it upscaled.
`POST /jobs` takes the same and answers at once with a job to poll (`GET /jobs/{id}`) and fetch
(`GET /jobs/{id}/result`), for clients that cannot hold a connection for the whole work.
Every error is JSON: `{"error": code, "detail": ...}`.
"""

# The web page (GET /, assets under /static): plain files, nothing loaded from other sites, which
# the Content-Security-Policy of the page enforces in the browser.
STATIC = Path(__file__).parent / "static"
PAGE_HEADERS = {
    # media-src blob:: a clip's result plays from its object URL (app.js showClip)
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src blob:; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


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
        # Jobs (service/jobs/): the store connects on first use, so an unreachable one costs
        # /jobs a 503, never /upscale its gateway.
        store, files = open_store(settings), JobFiles(settings.jobs_dir)
        runner = JobRunner(store, files, settings, app.state.admission, app.state.triton)
        app.state.jobs = JobService(store, files, runner, settings, app.state.admission,
                                    app.state.triton)
        runner.start()
        try:
            yield
        finally:
            await runner.stop()  # running jobs go back to the queue for the next gateway
            await store.close()
            await app.state.triton.close()

    app = FastAPI(title="imdsr", version=_version(), description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.slots = RequestSlots(settings.max_concurrent_requests, settings.retry_after_s)
    app.state.admission = WorkAdmission.from_settings(settings)
    app.dependency_overrides[get_settings] = lambda: settings
    errors.install(app)
    if settings.cors_origins:  # off unless origins are listed: browsers then call the API directly
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["*"],
                           expose_headers=[*EXPOSED_HEADERS, "ETag", "Location"])
    # outermost: every response, errors included, carries its request id and is counted
    app.add_middleware(RequestMetrics)
    app.include_router(router)
    app.include_router(open_router)
    app.include_router(formats_router)  # GET /formats, open like /healthz
    app.include_router(jobs_router)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    # a Mount is never in the OpenAPI schema
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
