"""Sessions of the operator web UI: looked up by the SHA256 of the cookie's
random id; each row names the SHA256 of the signed-in token, never the token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

__all__ = ["PgUiSessionRepository", "UiSessionRecord"]

INSERT_SESSION = """
INSERT INTO ui_sessions (id_hash, tenant, token_hash, csrf_token, expires_at)
VALUES ($1, $2, $3, $4, $5)
"""
GET_SESSION = """
SELECT tenant, token_hash, csrf_token, expires_at FROM ui_sessions
WHERE id_hash = $1 AND expires_at > now()
"""
DELETE_SESSION = "DELETE FROM ui_sessions WHERE id_hash = $1"
# Expired rows are swept at each sign-in; the index keeps that cheap.
DELETE_EXPIRED = "DELETE FROM ui_sessions WHERE expires_at <= now()"


@dataclass(frozen=True)
class UiSessionRecord:
    tenant: str
    token_hash: bytes
    csrf_token: str
    expires_at: datetime


class PgUiSessionRepository:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def create(
        self,
        *,
        id_hash: bytes,
        tenant: str,
        token_hash: bytes,
        csrf_token: str,
        expires_at: datetime,
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(DELETE_EXPIRED)
            await conn.execute(
                INSERT_SESSION, id_hash, tenant, token_hash, csrf_token, expires_at
            )

    async def get(self, id_hash: bytes) -> UiSessionRecord | None:
        row = await self._pool.fetchrow(GET_SESSION, id_hash)
        if row is None:
            return None
        return UiSessionRecord(
            tenant=row["tenant"],
            token_hash=bytes(row["token_hash"]),
            csrf_token=row["csrf_token"],
            expires_at=row["expires_at"],
        )

    async def delete(self, id_hash: bytes) -> None:
        await self._pool.execute(DELETE_SESSION, id_hash)
