"""PostgreSQL adapter: the asyncpg pool with JSON codecs. Needs the ``pg`` extra."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

__all__ = [
    "DATABASE_FAILED",
    "DATABASE_UNAVAILABLE",
    "SERVER_SETTINGS",
    "TRANSACTION_CONFLICT",
    "create_pool",
    "init_connection",
    "is_transient_db_error",
]

# The database went away or cannot serve now (not a bug): answer 503 and retry.
# OSError covers refused connections and TimeoutError (pool acquire timeouts);
# InternalClientError is raised when a pooled connection is reset after the
# server died under it ("cannot switch to state ...").
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InsufficientResourcesError,
    asyncpg.AdminShutdownError,
    asyncpg.InternalClientError,
)

# The database chose this transaction as a deadlock or serialization victim:
# the same transaction, run again, succeeds.
TRANSACTION_CONFLICT: tuple[type[Exception], ...] = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)

# Any failure of a read: unavailable, or a statement error or timeout (a read
# answers 503 with Retry-After, never 500).
DATABASE_FAILED: tuple[type[Exception], ...] = (
    *DATABASE_UNAVAILABLE,
    asyncpg.PostgresError,
)

_TRANSIENT = (*DATABASE_UNAVAILABLE, *TRANSACTION_CONFLICT)


def is_transient_db_error(exc: BaseException) -> bool:
    """Errors that go away by themselves: retry the same work in place (a
    consumer keeps its deliveries unacked meanwhile)."""
    return isinstance(exc, _TRANSIENT)


async def init_connection(conn: asyncpg.Connection[Any]) -> None:
    """Decode json/jsonb to Python objects on every pooled connection."""
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(
            typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


# Session settings of every service connection. JIT compilation off: the
# statements here are short OLTP ones or planning scans whose estimated cost is
# high enough for PostgreSQL to JIT-compile and optimise them, which took 2 s of
# a 2.7 s plan of a million devices (bench B3) and gains nothing back.
SERVER_SETTINGS = {"jit": "off"}


async def _no_reset(conn: asyncpg.Connection[Any]) -> None:
    """Release without a reset: for pools that only run single statements."""


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, reset: bool = True
) -> asyncpg.Pool[Any]:
    """Open a pool; call it from a lifespan or ``main()``, never at import.

    Args:
        dsn: PostgreSQL URL.
        min_size: connections kept open.
        max_size: upper bound of connections.
        reset: reset each connection when it goes back to the pool (asyncpg's
            default: one more round trip per acquire, ``RESET ALL``, ``UNLISTEN``
            ...). A pool whose users never change session state (ingest's
            reads; the scheduler, whose settings are transaction-local) passes
            False and saves that trip: ~25 µs of PostgreSQL's CPU and 30-90 µs
            of the caller's per acquire. A transaction left open is rolled back
            either way (asyncpg does it before any reset).

    Returns:
        An open pool whose connections decode JSON.
    """
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=None if reset else _no_reset,
        server_settings=SERVER_SETTINGS,
    )
    assert pool is not None  # create_pool returns None only when awaited lazily
    return pool
