"""A write and its audit record in one transaction.

``writing(db)`` opens a transaction on a pool (or a savepoint on a connection a
caller holds in one); the repository runs its statements and ``record``s the
audit entries (``xdp47_api.acting.audit_entry``) on that connection, so the
change and its record commit or roll back together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from xdp47_common.adapters.audit_trail import append_audit
from xdp47_common.models.audit import AuditEntry

__all__ = ["Db", "record", "writing"]

Db: TypeAlias = "asyncpg.Pool[Any] | asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


@asynccontextmanager
async def writing(db: Db) -> AsyncIterator[Conn]:
    """A connection in a transaction: committed when the block ends."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn, conn.transaction():
            yield conn
    else:
        async with db.transaction():
            yield db


async def record(conn: Conn, *entries: AuditEntry) -> None:
    """Append ``entries`` to the audit trail in ``conn``'s transaction."""
    await append_audit(conn, entries)
