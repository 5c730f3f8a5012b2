"""How PostgreSQL errors a request did not expect answer over HTTP.

A lost database is 503 with ``Retry-After`` (``DATABASE_UNAVAILABLE``), an integrity
violation the models did not catch is 409 (unique) or 422, a value PostgreSQL
refuses is 422. ``xdp47_common.web.errors`` installs these when asyncpg is
installed (the ``pg`` extra); this module keeps asyncpg out of the web layer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
from fastapi import Request
from fastapi.responses import JSONResponse

from xdp47_common.adapters.pg import DATABASE_UNAVAILABLE

__all__ = ["database_error_handlers"]

Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]


async def _integrity(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, asyncpg.IntegrityConstraintViolationError)
    what = getattr(exc, "constraint_name", None) or exc.__class__.__name__
    status = 409 if isinstance(exc, asyncpg.UniqueViolationError) else 422
    return JSONResponse(
        status_code=status, content={"detail": f"constraint violated: {what}"}
    )


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": f"invalid value: {exc}"})


def database_error_handlers(
    connection_lost: Handler,
) -> list[tuple[type[Exception], Handler]]:
    """The exception handlers for asyncpg's errors, in registration order.

    Args:
        connection_lost: the web layer's 503 answer, used for every error of
            ``DATABASE_UNAVAILABLE``.

    Returns:
        ``(exception class, handler)`` pairs for ``app.add_exception_handler``.
    """
    pairs: list[tuple[type[Exception], Handler]] = [
        (cls, connection_lost) for cls in DATABASE_UNAVAILABLE
    ]
    pairs.append((asyncpg.IntegrityConstraintViolationError, _integrity))
    pairs.append((asyncpg.DataError, _data_error))
    return pairs
