"""API tokens: only the SHA256 of a secret is stored; lookup is by that hash."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from xdp47_api.acting import audit_entry, current_actor
from xdp47_api.pagination import Page, time_id_cursor
from xdp47_api.repositories._paging import page_of, time_id_key
from xdp47_api.repositories._trail import record, writing
from xdp47_common.models import ApiToken, Scope
from xdp47_common.models.audit import AuditEntry, AuditOutcome

__all__ = ["LAST_USED_RESOLUTION", "PgTokenRepository", "TokenRecord"]

# last_used_at is written at most this often per token, so reads stay reads.
LAST_USED_RESOLUTION = timedelta(minutes=1)

_COLUMNS = (
    "id, tenant, name, prefix, scopes, created_at, expires_at, revoked_at, last_used_at"
)

LOOKUP_TOKEN = """
SELECT id, tenant, name, scopes, expires_at, revoked_at, last_used_at
FROM api_tokens WHERE token_hash = $1
"""
TOKEN_NAMES = "SELECT id, name FROM api_tokens WHERE tenant = $1 AND id = ANY($2)"
TOUCH_TOKEN = """
UPDATE api_tokens SET last_used_at = $2::timestamptz
WHERE id = $1
  AND (last_used_at IS NULL OR last_used_at < $2::timestamptz - $3::interval)
"""
INSERT_TOKEN = f"""
INSERT INTO api_tokens (id, tenant, name, prefix, token_hash, scopes, created_by,
                        expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING {_COLUMNS}
"""  # nosec B608
GET_TOKEN = f"SELECT {_COLUMNS} FROM api_tokens WHERE tenant = $1 AND id = $2"  # nosec B608
LIST_TOKENS = f"""
SELECT {_COLUMNS} FROM api_tokens
WHERE tenant = $1
  AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id LIMIT $4
"""  # nosec B608
LOCK_TOKEN = (
    "SELECT revoked_at FROM api_tokens WHERE tenant = $1 AND id = $2 FOR UPDATE"
)
REVOKE_TOKEN = f"""
UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
WHERE tenant = $1 AND id = $2
RETURNING {_COLUMNS}
"""  # nosec B608


@dataclass(frozen=True)
class TokenRecord:
    """What authentication needs to know about a presented token."""

    id: UUID
    tenant: str
    name: str
    scopes: frozenset[Scope]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


def _token(row: asyncpg.Record) -> ApiToken:
    return ApiToken.model_validate(dict(row))


def _entries(
    token: ApiToken, action: str, before: str | None, after: str
) -> list[AuditEntry]:
    """The token's tenant's entry, and the actor's when it acts on another
    tenant's token (``tenants:write``)."""
    tenants = {token.tenant, current_actor().tenant or token.tenant}
    outcome = AuditOutcome.NO_OP if before == after else AuditOutcome.APPLIED
    detail = {
        "name": token.name,
        "tenant": token.tenant,
        "prefix": token.prefix,
        "scopes": sorted(s.value for s in token.scopes),
    }
    return [
        audit_entry(
            t,
            action,
            "token",
            token.id,
            before=before,
            after=after,
            outcome=outcome,
            detail=detail,
        )
        for t in sorted(tenants)
    ]


class PgTokenRepository:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def lookup(self, token_hash: bytes) -> TokenRecord | None:
        row = await self._pool.fetchrow(LOOKUP_TOKEN, token_hash)
        if row is None:
            return None
        return TokenRecord(
            id=row["id"],
            tenant=row["tenant"],
            name=row["name"],
            # A scope a newer version wrote is ignored, not an error.
            scopes=frozenset(
                Scope(s) for s in row["scopes"] if s in Scope._value2member_map_
            ),
            expires_at=row["expires_at"],
            revoked_at=row["revoked_at"],
            last_used_at=row["last_used_at"],
        )

    async def touch(self, token_id: UUID, now: datetime) -> None:
        """Record a use, unless one was recorded within ``LAST_USED_RESOLUTION``."""
        await self._pool.execute(TOUCH_TOKEN, token_id, now, LAST_USED_RESOLUTION)

    async def create(
        self,
        *,
        tenant: str,
        name: str,
        prefix: str,
        token_hash: bytes,
        scopes: list[Scope],
        created_by: UUID | None,
        expires_at: datetime | None,
    ) -> ApiToken:
        async with writing(self._pool) as conn:
            row = await conn.fetchrow(
                INSERT_TOKEN,
                uuid4(),
                tenant,
                name,
                prefix,
                token_hash,
                [s.value for s in scopes],
                created_by,
                expires_at,
            )
            assert row is not None
            token = _token(row)
            await record(conn, *_entries(token, "token.minted", None, "active"))
        return token

    async def get(self, tenant: str, token_id: UUID) -> ApiToken | None:
        row = await self._pool.fetchrow(GET_TOKEN, tenant, token_id)
        return None if row is None else _token(row)

    async def list(
        self, tenant: str, *, limit: int, cursor: str | None
    ) -> Page[ApiToken]:
        after = time_id_cursor(cursor)
        at, ident = after if after else (None, None)
        rows = await self._pool.fetch(LIST_TOKENS, tenant, at, ident, limit + 1)
        return page_of([_token(r) for r in rows], limit, time_id_key)

    async def names(self, tenant: str, ids: Iterable[UUID]) -> dict[UUID, str]:
        """The names of the tenant's tokens among ``ids`` (others are left out)."""
        rows = await self._pool.fetch(TOKEN_NAMES, tenant, list(set(ids)))
        return {r["id"]: r["name"] for r in rows}

    async def revoke(self, tenant: str, token_id: UUID) -> ApiToken | None:
        """Revoke (a revoked token stays so: recorded as a no-op)."""
        async with writing(self._pool) as conn:
            was = await conn.fetchrow(LOCK_TOKEN, tenant, token_id)
            if was is None:
                return None
            row = await conn.fetchrow(REVOKE_TOKEN, tenant, token_id)
            assert row is not None
            token = _token(row)
            before = "active" if was["revoked_at"] is None else "revoked"
            await record(conn, *_entries(token, "token.revoked", before, "revoked"))
        return token
