"""The HTTP routes: /upscale, /healthz, /readyz, /models, /metrics."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from imdsr.contract import SCALE
from imdsr.imaging import codec
from imdsr.video.formats import SNIFF_BYTES, is_video
from service import errors
from service.admission import WorkAdmission
from service.conventions import key_accepted, matches
from service.hangups import while_connected
from service.metrics import ABANDONED, INPUT_PIXELS, MODEL_INFO, REQUEST_BYTES, RESPONSE_BYTES
from service.model_choice import choose_model
from service.model_traits import ModelTraits
from service.plan import cache_key
from service.schemas import (
    ErrorBody,
    Health,
    ModelInfo,
    ModelList,
    Readiness,
    TilingInfo,
    UpscaleOptions,
)
from service.settings import Settings, get_settings
from service.slots import upscale_slot
from service.timings import Timings
from service.triton_client import TritonClient
from service.upload import Upload, read_upload
from service.upscaling import answer_headers, decode_input, plan_for, run_upscale
from service.video.jobs import needs_job

SettingsDep = Annotated[Settings, Depends(get_settings)]
# Response headers a browser page on another origin may read (CORS).
EXPOSED_HEADERS = ["X-Model", "X-Model-Reason", "X-Input-Size", "X-Output-Size", "X-Tiles",
                   "X-Bit-Depth", "X-Request-ID", "Server-Timing", "Retry-After"]


def require_api_key(request: Request, settings: SettingsDep) -> None:
    """With ``IMDSR_API_KEYS`` set, the API answers only requests that carry one (X-API-Key)."""
    if settings.api_keys and not key_accepted(request.headers.get("x-api-key"),
                                              tuple(settings.api_keys)):
        raise errors.UnauthorizedError("missing or unknown API key (header X-API-Key)",
                                       headers={"WWW-Authenticate": "X-API-Key"})


router = APIRouter(dependencies=[Depends(require_api_key)])
open_router = APIRouter()


def get_triton(request: Request) -> TritonClient:
    return request.app.state.triton


TritonDep = Annotated[TritonClient, Depends(get_triton)]

ERROR_RESPONSES: dict[int | str, dict] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "corrupt image or malformed body"),
        (413, "body, input pixels or output pixels over the limit"),
        (415, "not an image format the service reads (a video to POST /upscale: "
              "`video_needs_job`, send it to POST /jobs)"),
        (422, "invalid parameter or unknown model"),
        (429, "too many concurrent requests (Retry-After)"),
        (503, "Triton or the model unavailable (Retry-After)"),
        (504, "Triton or the whole request timed out"),
    )
}

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "video/*": {"schema": {"type": "string", "format": "binary"},
                        "description": "POST /jobs only: MP4, MOV, MKV, WebM"},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        **{name: {"type": "string"} for name in UpscaleOptions.model_fields},
                    },
                }
            },
        },
    }
}


def merge_form(options: UpscaleOptions, fields: dict[str, str]) -> UpscaleOptions:
    """Form fields of a multipart upload override the query string."""
    known = {k: v for k, v in fields.items() if k in UpscaleOptions.model_fields}
    if not known:
        return options
    try:
        return UpscaleOptions.model_validate({**options.model_dump(exclude_none=True), **known})
    except ValidationError as exc:
        detail = [{"loc": ["form", *map(str, e["loc"])], "msg": e["msg"]} for e in exc.errors()]
        raise errors.InvalidParameterError(detail) from exc


def reject_unknown_query(request: Request) -> None:
    """A misspelt option would silently do nothing: name it instead."""
    unknown = sorted(set(request.query_params) - set(UpscaleOptions.model_fields))
    if unknown:
        raise errors.InvalidParameterError(
            [{"loc": ["query", name], "msg": "unknown parameter; known: "
              + ", ".join(UpscaleOptions.model_fields)} for name in unknown])


async def read_options(request: Request, options: UpscaleOptions, settings: Settings,
                       timings: Timings) -> tuple[Upload, UpscaleOptions]:
    """The upload and the options (query string, then its form fields) of ``/upscale`` and ``/jobs``."""
    with timings.stage("read"):
        try:
            upload = await read_upload(request, settings.max_request_bytes)
        except ClientDisconnect as exc:  # gone while sending: nobody to answer
            ABANDONED.labels(route=request.url.path).inc()
            raise errors.ClientClosedError("the client closed the connection while sending") from exc
    REQUEST_BYTES.observe(len(upload.data))
    return upload, merge_form(options, upload.fields)


@router.post(
    "/upscale",
    summary="Upscale an image x4 (or to outscale)",
    response_class=Response,
    responses={200: {"content": {t.content_type: {} for t in codec.OutputFormat},
                     "description": "the upscaled image"}, **ERROR_RESPONSES},
    openapi_extra=UPLOAD_BODY,
    dependencies=[Depends(upscale_slot)],
)
async def upscale_image(
    request: Request,
    options: Annotated[UpscaleOptions, Query()],
    settings: SettingsDep,
    triton: TritonDep,
) -> Response:
    timings = Timings()
    reject_unknown_query(request)
    try:
        async with asyncio.timeout(settings.request_timeout_s):
            upload, options = await read_options(request, options, settings, timings)
            work = _upscale(request, upload, options, settings, triton, timings)
            del upload  # the work holds it, and lets it go once decoded
            # From here the client's hang-up cancels the work (service/hangups.py).
            return await while_connected(request.receive, work, "/upscale")
    except TimeoutError as exc:
        raise errors.RequestTimeoutError(
            f"request took longer than {settings.request_timeout_s} s") from exc


async def _upscale(request: Request, upload: Upload, options: UpscaleOptions, settings: Settings,
                   triton: TritonClient, timings: Timings) -> Response:
    if is_video(upload.data[:SNIFF_BYTES]):  # minutes of work: only ever a job
        raise needs_job()
    choice = await choose_model(options.model, upload.data, settings, triton)
    variant = choice.model
    request.state.model = variant
    await triton.require_ready(variant)
    traits = await triton.traits(variant)
    # The same input, options and weights give the same bytes: a client that has them gets its
    # 304 before any work.
    accept = request.headers.get("accept")
    key = cache_key(upload.data, options, variant, accept, traits.weights, settings.cache_control)
    if matches(request.headers.get("if-none-match"), key.tag):
        return Response(status_code=304, headers=key.headers)
    with timings.stage("decode"):
        picture, animation = await asyncio.to_thread(decode_input, upload.data, settings)
    del upload  # the encoded input is not needed any more
    admission: WorkAdmission = request.app.state.admission
    plan = plan_for(options, settings, traits, admission, picture, animation, model=variant,
                    accept=accept)
    INPUT_PIXELS.observe(picture.height * picture.width * plan.frames)
    done = await run_upscale(plan, picture, animation, triton, admission, timings)
    RESPONSE_BYTES.observe(len(done.body))
    return Response(done.body, media_type=plan.format.content_type,
                    headers={**answer_headers(plan, picture, done, timings, key),
                             "X-Model-Reason": choice.reason})


@open_router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health()


@open_router.get("/readyz", response_model=Readiness, summary="Triton reachable, default model ready",
            responses={503: {"model": Readiness}})
async def readyz(settings: SettingsDep, triton: TritonDep) -> JSONResponse:
    live = await triton.server_live()
    model_ready = live and await triton.model_ready(settings.default_model)
    body = Readiness(ready=live and model_ready, triton=live, model=settings.default_model,
                     model_ready=model_ready)
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


async def _served_precision(triton: TritonClient, variant: str, traits: ModelTraits) -> str | None:
    """What ``variant`` computes in: its own answer (precision "auto" is resolved where it
    loaded), else its config's; None when neither says (the listing answers regardless)."""
    try:
        described = await triton.describe(variant)
    except errors.ApiError:
        described = None
    precision = described.precision if described else traits.fixed_precision
    if precision:
        MODEL_INFO.labels(model=variant, precision=precision).set(1)
    return precision


@router.get("/models", response_model=ModelList, summary="Variants in Triton and their state",
            responses={503: {"model": ErrorBody}})
async def models(settings: SettingsDep, triton: TritonDep) -> ModelList:
    states = await triton.models()
    infos = []
    for v, state in sorted(states.items()):
        traits = await triton.traits(v) if state == "READY" else None
        infos.append(ModelInfo(
            variant=v, triton_name=triton.triton_name(v), scale=SCALE, state=state,
            ready=state == "READY", default=v == settings.default_model,
            arch=traits and traits.arch, params=traits and traits.params,
            flops=traits and traits.flops,
            precision=await _served_precision(triton, v, traits) if traits else None,
            tiling=traits and TilingInfo(context=traits.rule.context, align=traits.rule.align,
                                         min_side=traits.rule.min_side,
                                         whole_up_to=traits.rule.whole_up_to),
            use_when=traits and traits.use_when))
    return ModelList(models=infos)


@open_router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
