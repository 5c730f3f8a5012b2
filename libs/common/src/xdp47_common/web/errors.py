"""Exception handlers: every failure becomes a JSON ``{"detail": ...}`` answer.

Validation errors give 422 naming each field (``body.sha256: ...``); HTTP errors
keep their status and headers; a lost database or broker gives 503 with
``Retry-After`` (never 500); integrity violations the models did not catch give
409/422. ``RequestBasicsMiddleware`` answers 500 only for what nothing else
explains, after logging it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from xdp47_common.models.base import NAME_PATTERN, NUL_FREE_PATTERN

__all__ = [
    "RETRY_AFTER_SECONDS",
    "ErrorBody",
    "ServiceUnavailable",
    "answer_error",
    "error_answer",
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


# The shared text rules (xdp47_common.models.base) in words, not as a regex.
_PATTERN_MESSAGES = {
    NUL_FREE_PATTERN: "must not contain the NUL character (\\u0000)",
    NAME_PATTERN: "must not be blank or contain the NUL character (\\u0000)",
}


def _loc(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc) or "request"


def format_validation_errors(errors: Sequence[Any]) -> tuple[str, list[dict[str, Any]]]:
    """Turn pydantic errors into one message naming each field, plus a list."""
    items: list[dict[str, Any]] = []
    for err in errors:
        loc = _loc(err.get("loc", ()))
        # A model's own check reads as its message, without pydantic's label.
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif err.get("type") == "string_pattern_mismatch":
            pattern = str((err.get("ctx") or {}).get("pattern"))
            msg = _PATTERN_MESSAGES.get(pattern, msg)
        items.append({"field": loc, "message": msg, "type": err.get("type")})
    detail = "; ".join(f"{i['field']}: {i['message']}" for i in items)
    return detail or "invalid request", items


def error_answer(exc: Exception) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    """Status, JSON body and headers answering a validation, HTTP or dependency
    error: what the FastAPI handlers send, and what ``RequestBasicsMiddleware``
    sends for plain ASGI routes.

    Raises:
        TypeError: ``exc`` is none of those (a bug: the catch-all's business).
    """
    if isinstance(exc, RequestValidationError):
        detail, items = format_validation_errors(exc.errors())
        return 422, {"detail": detail, "errors": items}, None
    if isinstance(exc, HTTPException):
        headers = dict(exc.headers) if exc.headers else None
        return exc.status_code, {"detail": exc.detail}, headers
    if isinstance(exc, ServiceUnavailable):
        return 503, {"detail": exc.detail}, {"Retry-After": str(exc.retry_after)}
    raise TypeError(f"not an answerable error: {exc!r}")


def answer_error(exc: Exception) -> JSONResponse:
    """``error_answer`` as a response (an ASGI app too)."""
    status, content, headers = error_answer(exc)
    return JSONResponse(status_code=status, content=content, headers=headers)


async def _answer_handler(request: Request, exc: Exception) -> JSONResponse:
    return answer_error(exc)


async def _connection_lost_handler(request: Request, exc: Exception) -> JSONResponse:
    _log.warning(
        "dependency unavailable", error=exc.__class__.__name__, path=request.url.path
    )
    lost = ServiceUnavailable("a backing service is unavailable; retry later")
    return answer_error(lost)


def _database_handlers(app: FastAPI) -> None:
    try:
        from xdp47_common.adapters.pg_errors import database_error_handlers
    except ImportError:  # a service without the pg extra has no asyncpg errors
        return
    for cls, handler in database_error_handlers(_connection_lost_handler):
        app.add_exception_handler(cls, handler)


def install_exception_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app`` (see ``RequestBasicsMiddleware``)."""
    for cls in (RequestValidationError, HTTPException, ServiceUnavailable):
        app.add_exception_handler(cls, _answer_handler)
    # OSError covers refused connections and TimeoutError (pool acquire timeouts).
    app.add_exception_handler(OSError, _connection_lost_handler)
    _database_handlers(app)
