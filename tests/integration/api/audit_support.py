"""Helpers of the audit trail tests: read a tenant's records as the API lists
them, or straight from the table."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from tests.integration.api.support import auth


async def listed(
    client: httpx.AsyncClient, token: str, **params: Any
) -> list[dict[str, Any]]:
    """Every record the API lists for ``params``, following the cursor."""
    out: list[dict[str, Any]] = []
    query = {k: v for k, v in params.items() if v is not None}
    while True:
        r = await client.get("/api/audit", headers=auth(token), params=query)
        assert r.status_code == 200, r.text
        out += r.json()
        cursor = r.headers.get("X-Next-Cursor")
        if cursor is None:
            return out
        query["cursor"] = cursor


async def rows(pool: asyncpg.Pool[Any], tenant: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM audit_records WHERE tenant = $1 ORDER BY seq", tenant
    )
