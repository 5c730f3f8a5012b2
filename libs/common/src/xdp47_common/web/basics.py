"""What every HTTP request gets, in one ASGI layer: an id, metrics, JSON errors
and a last resort.

- **Request id**: the client's acceptable ``X-Request-ID`` or a fresh one
  (``request_id``), in ``scope["state"]["request_id"]``, in every log event of
  the request (``xdp47_common.logging.REQUEST_ID``) and in the answer's
  ``X-Request-ID`` header. Fields bound with ``bind_request_context`` are
  dropped when the request ends.
- **Metrics**: every request is counted and timed under its route template
  (``HttpMetrics.observe``), with the status actually sent.
- **JSON errors**: an ``HTTPException``, ``RequestValidationError`` or
  ``ServiceUnavailable`` that reaches this layer (plain ASGI routes have no
  FastAPI handlers) is answered exactly as FastAPI's handlers answer it.
- **Catch-all**: anything else is logged and answered with a JSON 500.
  Starlette's own server-error handler re-raises after answering; this one does
  not, so a bug costs one request and one log line, not a traceback per client.

One layer instead of four: each layer of ASGI middleware wraps ``send`` and adds
a frame that every suspension of the request passes through twice, which a
device request (ingest's whole load) pays for (docs/performance.md).
"""

from __future__ import annotations

import time

import structlog
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xdp47_common.logging import REQUEST_ID
from xdp47_common.web.asgi import send_json
from xdp47_common.web.errors import ServiceUnavailable, answer_error
from xdp47_common.web.metrics import HttpMetrics
from xdp47_common.web.request_id import request_id_of

__all__ = ["RequestBasicsMiddleware"]

_log = structlog.get_logger(__name__)
_ANSWERABLE = (HTTPException, RequestValidationError, ServiceUnavailable)


class RequestBasicsMiddleware:
    """Request id, metrics, JSON error answers and the catch-all (see module)."""

    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        id_header = (b"x-request-id", request_id.encode())
        status = 0
        start = time.perf_counter()

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, answer)
        except _ANSWERABLE as exc:
            if status:
                raise  # an answer is on its way already
            await answer_error(exc)(scope, receive, answer)
        except Exception:
            _log.exception("unhandled error", path=scope.get("path"))
            if status:
                raise
            await send_json(answer, 500, {"detail": "internal error"})
        finally:
            REQUEST_ID.reset(token)
            structlog.contextvars.clear_contextvars()
            route = scope.get("route")
            self.metrics.observe(
                scope.get("method", ""),
                getattr(route, "path", None) or "unmatched",
                status or 500,
                time.perf_counter() - start,
            )
