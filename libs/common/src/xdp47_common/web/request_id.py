"""Request ids: every HTTP request gets one, its log events carry it, and the
response returns it in ``X-Request-ID``.

A client (or the gateway in front) may send ``X-Request-ID``; a value of at most
128 visible ASCII characters is kept, anything else is replaced by a fresh id so a
hostile header cannot forge log lines. The id is bound with
``structlog.contextvars`` for the duration of the request; routes may bind more
(the API binds the caller's tenant once authenticated) with ``bind_request_context``.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["REQUEST_ID_HEADER", "RequestIdMiddleware", "bind_request_context"]

REQUEST_ID_HEADER = "X-Request-ID"
_ACCEPTABLE = re.compile(r"^[!-~]{1,128}$")


def _incoming(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _ACCEPTABLE.match(text) else None
    return None


def bind_request_context(**values: Any) -> None:
    """Add fields (e.g. ``tenant``) to the log events of the current request."""
    structlog.contextvars.bind_contextvars(**values)


class RequestIdMiddleware:
    """Bind a request id for the request's logs and echo it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
            await send(message)

        # Each request starts from a clean context: a server may run several
        # requests in one task (tests with an in-process transport do).
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.clear_contextvars()
