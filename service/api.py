"""The HTTP routes: /upscale, /healthz, /readyz, /models, /metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from imdsr.contract import SCALE
from imdsr.imaging import codec
from imdsr.imaging.geometry import FinalSize, final_size
from imdsr.imaging.pipeline import AlphaMode, upscale
from imdsr.imaging.tiling import TilingRule, plan_tiles
from imdsr.imaging.windows import TileTooLargeError, WindowLimits
from service import errors
from service.admission import Cost, WorkAdmission, estimate
from service.conventions import etag, key_accepted, matches
from service.limits import upscale_slot
from service.metrics import (
    INPUT_PIXELS,
    OUTPUT_PIXELS,
    REJECTED,
    REQUEST_BYTES,
    RESPONSE_BYTES,
    STAGE_SECONDS,
    TILES,
)
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
from service.triton_client import TritonClient
from service.upload import read_upload

SettingsDep = Annotated[Settings, Depends(get_settings)]
# Response headers a browser page on another origin may read (CORS).
EXPOSED_HEADERS = ["X-Model", "X-Input-Size", "X-Output-Size", "X-Tiles", "X-Bit-Depth", "X-Request-ID",
                   "Server-Timing", "Retry-After"]


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
        (415, "not an image format the service reads"),
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


class Timings:
    """Stage timings: observed into the stage histogram and reported as Server-Timing."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[name] = elapsed
            STAGE_SECONDS.labels(stage=name).observe(elapsed)

    def header(self) -> str:
        return ", ".join(f"{k};dur={v * 1000:.1f}" for k, v in self.seconds.items())


def _merge_form(options: UpscaleOptions, fields: dict[str, str]) -> UpscaleOptions:
    """Form fields of a multipart upload override the query string."""
    known = {k: v for k, v in fields.items() if k in UpscaleOptions.model_fields}
    if not known:
        return options
    try:
        return UpscaleOptions.model_validate({**options.model_dump(exclude_none=True), **known})
    except ValidationError as exc:
        detail = [{"loc": ["form", *map(str, e["loc"])], "msg": e["msg"]} for e in exc.errors()]
        raise errors.InvalidParameterError(detail) from exc


def _decode(data: bytes, settings: Settings) -> tuple[codec.Picture, codec.Animation | None]:
    """The first (or only) picture, and every frame when the image is animated."""
    try:
        picture = codec.decode(data, settings.max_input_pixels)
        return picture, codec.decode_animation(data, settings.max_input_pixels, settings.max_frames)
    except codec.TooManyPixelsError as exc:
        REJECTED.labels(reason="input_pixels").inc()
        raise errors.ImageTooLargeError(str(exc)) from exc
    except codec.TooManyFramesError as exc:
        REJECTED.labels(reason="frames").inc()
        raise errors.InvalidParameterError(str(exc)) from exc
    except codec.UnsupportedImageError as exc:
        raise errors.UnsupportedMediaTypeError(str(exc)) from exc
    except codec.ImageDecodeError as exc:
        raise errors.CorruptImageError(str(exc)) from exc


def _final(picture: codec.Picture, options: UpscaleOptions, limit: int) -> FinalSize:
    """Where the picture ends up; the x4 intermediate counts against the limit too, as it is what
    sits in memory."""
    h, w = picture.height, picture.width
    final = final_size(h, w, outscale=options.outscale, target_width=options.width,
                       target_height=options.height, fit=options.fit)
    biggest = max(final.resize[0] * final.resize[1], h * w * SCALE * SCALE)
    if biggest > limit:
        REJECTED.labels(reason="output_pixels").inc()
        raise errors.ImageTooLargeError(
            f"output would be {biggest} pixels; the limit is {limit}")
    return final


def _unknown_query(request: Request) -> None:
    """A misspelt option would silently do nothing: name it instead."""
    unknown = sorted(set(request.query_params) - set(UpscaleOptions.model_fields))
    if unknown:
        raise errors.InvalidParameterError(
            [{"loc": ["query", name], "msg": "unknown parameter; known: "
              + ", ".join(UpscaleOptions.model_fields)} for name in unknown])


def _check_format_fits(fmt: codec.OutputFormat, final: tuple[int, int]) -> None:
    """Refuse before any work an output the format cannot hold (WebP: 16383 px a side)."""
    limit = codec.MAX_SIDE.get(fmt)
    if limit is not None and max(final) > limit:
        REJECTED.labels(reason="format_side").inc()
        raise errors.ImageTooLargeError(
            f"the output would be {final[1]}x{final[0]}; {fmt.value} holds at most {limit} px a side: "
            "ask for png, or a smaller outscale, width or height")


def _cost(picture: codec.Picture, tile: int, rule: TilingRule, final: FinalSize,
          rate: float, alpha_through_model: bool, settings: Settings) -> Cost:
    """What admitting this request commits: Triton seconds and gateway bytes (service/admission.py)."""
    plan = plan_tiles(picture.height, picture.width, tile, rule.context, rule.align)
    if alpha_through_model:
        rate *= 2  # the alpha plane goes through the network too
    channels = 3 + (picture.alpha is not None)
    return estimate(plan, channels, picture.bit_depth // 8, final.resize[0] * final.resize[1], rate,
                    settings.tiles_in_flight, max(tile + 2 * rule.context, rule.min_side))


def _tile_for(requested: int | None, settings: Settings, limits: WindowLimits | None,
              rule: TilingRule, size: tuple[int, int] | None = None) -> int:
    """The tile core to plan with: one window of the whole image where the model's rule runs it
    whole; else the request's tile (rounded down to the model's alignment) if its windows fit
    the model, or a 422 naming the limit; by default the configured tile, shrunk to what the
    model accepts."""
    context = rule.context
    whole = None if size is None else rule.whole_tile(*size)
    if whole is not None and (limits is None or max(size) <= limits.max_side):
        return whole
    if limits is None:  # a model that publishes no limit (ONNX Runtime takes any size)
        return rule.tile(requested or settings.tile)
    if requested is not None:
        try:
            limits.check_tile(rule.tile(requested), context)
        except TileTooLargeError as exc:
            raise errors.InvalidParameterError(
                [{"loc": ["query", "tile"], "msg": str(exc),
                  "max_tile": limits.largest_tile(context, rule.align)}]) from exc
        return rule.tile(requested)
    largest = limits.largest_tile(context, rule.align)
    if largest == 0:
        raise errors.ModelNotReadyError(
            f"the model accepts windows up to {limits.max_side} px, too small for its "
            f"context of {context} px (IMDSR_TILE_CONTEXT)")
    return rule.tile(min(settings.tile, largest))


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
    _unknown_query(request)
    try:
        async with asyncio.timeout(settings.request_timeout_s):
            with timings.stage("read"):
                upload = await read_upload(request, settings.max_request_bytes)
            REQUEST_BYTES.observe(len(upload.data))
            options = _merge_form(options, upload.fields)
            variant = options.model or settings.default_model
            request.state.model = variant
            await triton.require_ready(variant)
            traits = await triton.traits(variant)
            rule = traits.with_context(settings.tile_context)
            # The same input, options and weights give the same bytes: a strong tag, and a 304
            # before any work for a client that has them.
            accept = request.headers.get("accept")
            tag = etag(upload.data, {**options.output_options(), "model": variant,
                                     "accept": None if options.format else codec.from_accept(accept)},
                       traits.weights)
            cache_headers = {"ETag": tag, "Cache-Control": settings.cache_control}
            if options.format is None:
                cache_headers["Vary"] = "Accept"
            if matches(request.headers.get("if-none-match"), tag):
                return Response(status_code=304, headers=cache_headers)

            with timings.stage("decode"):
                picture, animation = await asyncio.to_thread(_decode, upload.data, settings)
            del upload  # the encoded input is not needed any more
            frames = list(animation.frames) if animation else [picture]
            final = _final(picture, options, settings.max_output_pixels // len(frames))
            fmt = (options.format or codec.from_accept(accept)
                   or (codec.OutputFormat.WEBP if animation else codec.default_format(picture.source_format)))
            if animation and fmt not in codec.ANIMATED_FORMATS:
                raise errors.InvalidParameterError(
                    f"{fmt.value} cannot hold an animation ({len(frames)} frames): ask for webp or png")
            _check_format_fits(fmt, final.size)
            INPUT_PIXELS.observe(picture.height * picture.width * len(frames))

            eight_bit = picture.bit_depth == 8
            admission: WorkAdmission = request.app.state.admission
            tile = _tile_for(options.tile, settings, traits.limits, rule, (picture.height, picture.width))
            model_rate = admission.rate(variant, settings.seconds_per_mpx.get(
                variant, settings.default_seconds_per_mpx))
            alpha_through_model = picture.alpha is not None and options.alpha is AlphaMode.MODEL
            one = _cost(picture, tile, rule, final, model_rate, alpha_through_model, settings)
            cost = admission.admit(replace(one, seconds=one.seconds * len(frames),
                                           memory=one.memory * len(frames)))
            try:

                # Each call is timed against the tile work it was sent behind (admission.py);
                # the alpha plane's calls are counted, not learnt from (its rate was doubled).
                call_s = cost.seconds_per_tile / (2 if alpha_through_model else 1)
                learn_as = None if alpha_through_model else variant

                async def infer(batch: np.ndarray) -> np.ndarray:
                    predicted = admission.tile_sent(call_s)
                    start = time.perf_counter()
                    try:
                        answer = await triton.infer(variant, batch, eight_bit)
                    except BaseException:
                        admission.tile_answered(call_s)
                        raise
                    admission.tile_answered(call_s, learn_as, model_rate, predicted,
                                            time.perf_counter() - start)
                    return answer

                with timings.stage("infer"):
                    results = [await upscale(
                        frame, infer, tile=tile, rule=rule, in_flight=settings.tiles_in_flight,
                        final=final, alpha_mode=options.alpha) for frame in frames]
                if not animation:
                    admission.observe(variant, cost, timings.seconds["infer"])
                TILES.observe(sum(r.tiles for r in results))
                OUTPUT_PIXELS.observe(final.pixels * len(frames))

                quality = options.quality or {
                    codec.OutputFormat.JPEG: settings.jpeg_quality,
                    codec.OutputFormat.WEBP: settings.webp_quality,
                    codec.OutputFormat.AVIF: settings.avif_quality}.get(fmt)
                with timings.stage("encode"):
                    if animation:
                        body = await asyncio.to_thread(codec.encode_animation, animation.with_frames(
                            [r.picture for r in results]), fmt, quality)
                    else:
                        body = await asyncio.to_thread(
                            codec.encode, results[0].picture, fmt, quality, options.png or settings.png,
                            options.metadata)
                out = results[0].picture
                tiles, out_w, out_h = sum(r.tiles for r in results), out.width, out.height
                out_bits = 8 if animation else out.bit_depth
                del results, out  # the full-size planes go now; only the encoded body stays
            finally:
                admission.release(cost)
    except TimeoutError as exc:
        raise errors.RequestTimeoutError(
            f"request took longer than {settings.request_timeout_s} s") from exc
    RESPONSE_BYTES.observe(len(body))
    headers = {
        "X-Model": variant,
        "X-Input-Size": f"{picture.width}x{picture.height}",
        "X-Output-Size": f"{out_w}x{out_h}",
        "X-Tiles": str(tiles),
        "X-Bit-Depth": str(out_bits if fmt is codec.OutputFormat.PNG else 8),
        "Server-Timing": timings.header(),
        **cache_headers,
    }
    if animation:
        headers["X-Frames"] = str(len(frames))
    return Response(body, media_type=fmt.content_type, headers=headers)


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
            tiling=traits and TilingInfo(context=traits.rule.context, align=traits.rule.align,
                                         min_side=traits.rule.min_side,
                                         whole_up_to=traits.rule.whole_up_to)))
    return ModelList(models=infos)


@open_router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
