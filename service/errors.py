"""Every error leaves the gateway as JSON ``{"error": code, "detail": ...}`` with its status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("imdsr.gateway")


class ApiError(Exception):
    """An error with its HTTP status, a stable machine-readable code and a human detail."""

    status = 500
    code = "internal_error"

    def __init__(self, detail: Any = None, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail if detail is not None else self.code
        self.headers = headers or {}


class BadRequestError(ApiError):
    status, code = 400, "bad_request"


class CorruptImageError(ApiError):
    status, code = 400, "corrupt_image"


class PayloadTooLargeError(ApiError):
    status, code = 413, "payload_too_large"


class ImageTooLargeError(ApiError):
    status, code = 413, "image_too_large"


class UnsupportedMediaTypeError(ApiError):
    status, code = 415, "unsupported_media_type"


class InvalidParameterError(ApiError):
    status, code = 422, "invalid_parameter"


class UnknownModelError(ApiError):
    status, code = 422, "unknown_model"


class UnauthorizedError(ApiError):
    status, code = 401, "unauthorized"


class TooManyRequestsError(ApiError):
    status, code = 429, "too_many_requests"


class TritonError(ApiError):
    status, code = 502, "triton_error"


class TritonUnavailableError(ApiError):
    status, code = 503, "triton_unavailable"


class ModelNotReadyError(ApiError):
    status, code = 503, "model_not_ready"


class TritonTimeoutError(ApiError):
    status, code = 504, "triton_timeout"


class RequestTimeoutError(ApiError):
    status, code = 504, "request_timeout"


class ClientClosedError(ApiError):
    """The client hung up before its answer (nginx's 499): nobody reads it, the log and the
    request counter record it."""

    status, code = 499, "client_closed_request"


class JobNotFoundError(ApiError):
    status, code = 404, "job_not_found"


class JobNotDoneError(ApiError):
    """The result of a job that is not done (yet, or ever: failed and cancelled ones say so)."""

    status, code = 409, "job_not_done"


class JobExpiredError(ApiError):
    status, code = 410, "job_expired"


class JobStoreUnavailableError(ApiError):
    status, code = 503, "job_store_unavailable"


def error_response(status: int, code: str, detail: Any, headers: dict[str, str] | None = None
                   ) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.detail, exc.headers)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, exc.detail, getattr(exc, "headers", None))


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
    return error_response(422, "invalid_parameter", detail)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    # Last resort: logged with its traceback, answered without internals.
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
