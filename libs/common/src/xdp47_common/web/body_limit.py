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
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xdp47_common.web.errors import answer_error

__all__ = ["BodySizeLimitMiddleware", "BodyTooLarge", "read_body"]


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the streamed body passes the limit.

    It is an ``HTTPException`` so that a framework reading the body (FastAPI wraps
    other errors into a 400) passes it on unchanged to the 413 handler. The
    answer closes the connection: the rest of the body was not read.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"request body larger than the limit of {limit} bytes",
            headers={"Connection": "close"},
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
            await answer_error(BodyTooLarge(limit))(scope, receive, send)
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
        except BodyTooLarge as exc:
            # Only reached when nothing inside turned it into a response already.
            if not started:
                await answer_error(exc)(scope, receive, send)


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, for a plain ASGI route that reads it itself
    instead of running behind ``BodySizeLimitMiddleware``: the same limit, checked
    the same way (the declared ``Content-Length`` first, then every chunk).

    Raises:
        BodyTooLarge: over ``limit`` (413).
        ClientDisconnect: the client went away before the body was complete.
    """
    declared = _content_length(scope)
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit)
    chunks = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
