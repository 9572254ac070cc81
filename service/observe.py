"""ASGI middleware observing every HTTP request: its id (``X-Request-ID``, taken or made, returned
and logged), its count by route, model and status, its duration, and one access-log line."""

from __future__ import annotations

import logging
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.conventions import REQUEST_ID_HEADER, request_id
from service.metrics import REQUEST_SECONDS, REQUESTS

log = logging.getLogger("imdsr.access")


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app fails before sending a response
        start = time.perf_counter()
        given = dict(scope.get("headers") or []).get(REQUEST_ID_HEADER.encode(), b"")
        rid = request_id(given.decode("latin-1") or None)
        scope.setdefault("state", {})["request_id"] = rid

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            # Route templates, not raw paths, keep the label set bounded.
            route = getattr(scope.get("route"), "path", "unmatched")
            model = scope.get("state", {}).get("model", "")
            seconds = time.perf_counter() - start
            REQUESTS.labels(route=route, model=model, status=str(status)).inc()
            REQUEST_SECONDS.labels(route=route).observe(seconds)
            log.info("%s %s %s %d %.0fms", rid, scope.get("method"), scope.get("path"), status,
                     seconds * 1e3)
