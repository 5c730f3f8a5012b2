"""Exception handlers: every failure becomes a JSON ``{"detail": ...}`` answer.

Validation errors give 422 naming each field (``body.sha256: ...``); HTTP errors
keep their status and headers; a lost database or broker gives 503 with
``Retry-After`` (never 500); integrity violations the models did not catch give
409/422. ``CatchAllMiddleware`` answers 500 only for what nothing else explains,
after logging it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "RETRY_AFTER_SECONDS",
    "CatchAllMiddleware",
    "ErrorBody",
    "ServiceUnavailable",
    "format_validation_errors",
    "install_exception_handlers",
]

RETRY_AFTER_SECONDS = 5
_log = structlog.get_logger(__name__)


class ErrorBody(BaseModel):
    """The body of every error answer."""

    detail: str
    errors: list[dict[str, Any]] | None = None


class ServiceUnavailable(Exception):
    """A dependency (database, broker) is down; the client should retry later."""

    def __init__(self, detail: str, retry_after: int = RETRY_AFTER_SECONDS) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


def _loc(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc) or "request"


def format_validation_errors(errors: Sequence[Any]) -> tuple[str, list[dict[str, Any]]]:
    """Turn pydantic errors into one message naming each field, plus a list."""
    items: list[dict[str, Any]] = []
    for err in errors:
        loc = _loc(err.get("loc", ()))
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        items.append({"field": loc, "message": msg, "type": err.get("type")})
    detail = "; ".join(f"{i['field']}: {i['message']}" for i in items)
    return detail or "invalid request", items


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail, items = format_validation_errors(exc.errors())
    return JSONResponse(status_code=422, content={"detail": detail, "errors": items})


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        status_code=exc.status_code,
        content={"detail": exc.detail},
        headers=dict(exc.headers) if exc.headers else None,
    )


def _unavailable(detail: str, retry_after: int = RETRY_AFTER_SECONDS) -> JSONResponse:
    return JSONResponse(
        status_code=503,
        content={"detail": detail},
        headers={"Retry-After": str(retry_after)},
    )


async def _service_unavailable_handler(
    request: Request, exc: Exception
) -> JSONResponse:
    assert isinstance(exc, ServiceUnavailable)
    return _unavailable(exc.detail, exc.retry_after)


async def _connection_lost_handler(request: Request, exc: Exception) -> JSONResponse:
    _log.warning(
        "dependency unavailable", error=exc.__class__.__name__, path=request.url.path
    )
    return _unavailable("a backing service is unavailable; retry later")


def _asyncpg_handlers(app: FastAPI) -> None:
    try:
        import asyncpg
    except ImportError:  # a service without the pg extra has no asyncpg errors
        return

    async def integrity(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, asyncpg.IntegrityConstraintViolationError)
        what = getattr(exc, "constraint_name", None) or exc.__class__.__name__
        status = 409 if isinstance(exc, asyncpg.UniqueViolationError) else 422
        return JSONResponse(
            status_code=status, content={"detail": f"constraint violated: {what}"}
        )

    async def data_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            status_code=422, content={"detail": f"invalid value: {exc}"}
        )

    for cls in (
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError,
        asyncpg.TooManyConnectionsError,
        asyncpg.InsufficientResourcesError,
        asyncpg.AdminShutdownError,
        # Raised when a pooled connection is reset after the server died under
        # it ("cannot switch to state …"): the database went away, not a bug.
        asyncpg.InternalClientError,
    ):
        app.add_exception_handler(cls, _connection_lost_handler)
    app.add_exception_handler(asyncpg.IntegrityConstraintViolationError, integrity)
    app.add_exception_handler(asyncpg.DataError, data_error)


def install_exception_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app`` (see ``CatchAllMiddleware``)."""
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(HTTPException, _http_handler)
    app.add_exception_handler(ServiceUnavailable, _service_unavailable_handler)
    # OSError covers refused connections and TimeoutError (pool acquire timeouts).
    app.add_exception_handler(OSError, _connection_lost_handler)
    _asyncpg_handlers(app)


class CatchAllMiddleware:
    """Last resort: log an unexplained exception and answer a JSON 500.

    Starlette's own server-error handler re-raises after answering; this one does
    not, so a bug costs one request and one log line, not a traceback per client.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            _log.exception("unhandled error", path=scope.get("path"))
            if started:
                raise
            body = json.dumps({"detail": "internal error"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
