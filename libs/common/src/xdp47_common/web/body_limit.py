"""Request body size limit as a pure ASGI middleware.

A body above the limit gets 413 before it is read whole: a ``Content-Length`` above
the limit is refused before the application runs, and a chunked or lying body is
counted as it streams in and cut off at the first byte over the limit.

A route that takes large bodies by design (the API's artifact upload) gets its own
limit through ``overrides`` (exact request path → bytes), so the general limit stays
small for every other route.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xdp47_common.web.asgi import send_json

__all__ = ["BodySizeLimitMiddleware", "BodyTooLarge"]


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the streamed body passes the limit.

    It is an ``HTTPException`` so that a framework reading the body (FastAPI wraps
    other errors into a 400) passes it on unchanged to the 413 handler.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"request body larger than the limit of {limit} bytes",
        )


class BodySizeLimitMiddleware:
    """Refuse request bodies larger than ``max_body_bytes`` with 413.

    ``overrides`` maps exact request paths to their own limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        overrides: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.overrides = dict(overrides or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.overrides.get(scope.get("path", ""), self.max_body_bytes)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_413(send, limit)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            # Only reached when nothing inside turned it into a response already.
            if not started:
                await _send_413(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send: Send, limit: int) -> None:
    await send_json(
        send,
        413,
        {"detail": f"request body larger than the limit of {limit} bytes"},
        [(b"connection", b"close")],
    )
