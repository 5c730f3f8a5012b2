"""What a command line needs to know about PostgreSQL before it starts: whether
the database answers and holds the schema, told as plain exceptions so that the
entry points (``xdp47-api``, ``xdp47-admin``) need no asyncpg of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from xdp47_common.adapters.pg import create_pool

__all__ = [
    "DatabaseUnreachable",
    "SchemaMissing",
    "check_schema",
    "open_pool",
    "schema_required",
]

# What connecting can raise when the database is not there to serve: a refused
# or timed-out connection (OSError), a refusal by the server, a malformed URL.
_CONNECT_FAILURES = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class DatabaseUnreachable(Exception):
    """PostgreSQL could not be reached or refused the connection; the message
    is the driver's."""


class SchemaMissing(Exception):
    """The database answers but has no schema (``xdp47-migrate`` never ran)."""


async def check_schema(dsn: str, *, connect_timeout: float, table: str) -> None:
    """Connect once and check that ``table`` exists.

    Raises:
        DatabaseUnreachable: connecting failed.
        SchemaMissing: the database has no ``table``.
    """
    try:
        conn = await asyncpg.connect(dsn, timeout=connect_timeout)
        try:
            found = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
        finally:
            await conn.close()
    except _CONNECT_FAILURES as exc:
        raise DatabaseUnreachable(str(exc)) from exc
    if not found:
        raise SchemaMissing(table)


async def open_pool(dsn: str, **options: Any) -> asyncpg.Pool[Any]:
    """``create_pool``, with a failure to connect as ``DatabaseUnreachable``."""
    try:
        return await create_pool(dsn, **options)
    except _CONNECT_FAILURES as exc:
        raise DatabaseUnreachable(str(exc)) from exc


@asynccontextmanager
async def schema_required() -> AsyncIterator[None]:
    """Turn a query on a table that does not exist into ``SchemaMissing``."""
    try:
        yield
    except asyncpg.UndefinedTableError as exc:
        raise SchemaMissing(str(exc)) from exc
