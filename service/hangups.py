"""A client that hangs up stops its work: FastAPI never cancels a handler whose client left.

Once a request's body is read, nothing else reads its ASGI receive channel, and the next message
on it is ``http.disconnect``, sent by uvicorn when the connection closes. ``while_connected``
runs the work in a task beside a watcher of that channel; when the watcher sees the disconnect
first, the work is cancelled: the tile loop (imdsr/imaging/pipeline.py) sends no further tile,
the tiles in Triton are cancelled with their gRPC calls (Triton drops the queued ones), and
``run_upscale`` releases the admitted work in its ``finally`` at once, so the next request is
admitted against what is really still running.

Measured (issue 25, committed repository, c16nla, 2-core CPU): three 1024x768 requests whose
clients left after 1 s had kept the gateway busy for 13 s, and a 128x96 request sent next took
13.8 s; with this, it is answered in the time of the tile that was executing
(tests/integration/test_hangups.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.types import Receive

from service.errors import ClientClosedError
from service.metrics import ABANDONED

T = TypeVar("T")


async def until_disconnected(receive: Receive) -> None:
    """Return when the client has gone. Only for after the body is read: it consumes messages."""
    while (await receive())["type"] != "http.disconnect":
        continue


async def while_connected(receive: Receive, work: Coroutine[Any, Any, T], route: str) -> T:
    """``work``'s result, or ``ClientClosedError`` once it is cancelled because the client left.

    Whatever else ends the wait (the request's own timeout) cancels both tasks too, so no work
    outlives its request."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(until_disconnected(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
        # the work's own clean-up (admission release) runs before the handler goes on
        await asyncio.gather(task, watcher, return_exceptions=True)
    if task.cancelled():
        ABANDONED.labels(route=route).inc()
        raise ClientClosedError("the client closed the connection before the answer")
    return task.result()
