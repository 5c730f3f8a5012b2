"""Tenants: create, read, list, change settings, and make sure the dev tenant
exists."""

from __future__ import annotations

from typing import Any

import asyncpg

from xdp47_api.acting import audit_entry, current_actor
from xdp47_api.pagination import Page, decode_cursor
from xdp47_api.repositories._paging import page_of
from xdp47_api.repositories._trail import record, writing
from xdp47_common.models import Tenant

__all__ = ["PgTenantRepository"]

INSERT_TENANT = """
INSERT INTO tenants (id, name) VALUES ($1, $2)
ON CONFLICT (id) DO NOTHING
RETURNING id, name, four_eyes_approval, default_timezone, created_at
"""
GET_TENANT = """
SELECT id, name, four_eyes_approval, default_timezone, created_at FROM tenants
WHERE id = $1
"""
UPDATE_SETTINGS = """
UPDATE tenants SET four_eyes_approval = coalesce($2, four_eyes_approval),
    default_timezone = CASE WHEN $3::text IS NULL THEN default_timezone
                            ELSE nullif($3, '') END
WHERE id = $1
RETURNING id, name, four_eyes_approval, default_timezone, created_at
"""
LIST_TENANTS = """
SELECT id, name, four_eyes_approval, default_timezone, created_at FROM tenants
WHERE ($1::text IS NULL OR id > $1)
ORDER BY id LIMIT $2
"""
ENSURE_TENANT = """
INSERT INTO tenants (id, name) VALUES ($1, $1) ON CONFLICT (id) DO NOTHING
"""


class PgTenantRepository:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def create(self, tenant_id: str, name: str) -> Tenant | None:
        """Insert a tenant; ``None`` when the id is taken. Recorded in the new
        tenant's trail, and in the creator's when that is another tenant."""
        async with writing(self._pool) as conn:
            row = await conn.fetchrow(INSERT_TENANT, tenant_id, name)
            if row is None:
                return None
            created = Tenant.model_validate(dict(row))
            tenants = {created.id, current_actor().tenant or created.id}
            await record(
                conn,
                *(
                    audit_entry(
                        t,
                        "tenant.created",
                        "tenant",
                        created.id,
                        detail={"name": created.name},
                    )
                    for t in sorted(tenants)
                ),
            )
        return created

    async def get(self, tenant_id: str) -> Tenant | None:
        row = await self._pool.fetchrow(GET_TENANT, tenant_id)
        return None if row is None else Tenant.model_validate(dict(row))

    async def update_settings(
        self,
        tenant_id: str,
        four_eyes_approval: bool | None,
        default_timezone: str | None = None,
    ) -> Tenant | None:
        """Change the given settings (None: unchanged; an empty zone clears it);
        ``None`` when no such tenant."""
        row = await self._pool.fetchrow(
            UPDATE_SETTINGS, tenant_id, four_eyes_approval, default_timezone
        )
        return None if row is None else Tenant.model_validate(dict(row))

    async def list_all(self, *, limit: int, cursor: str | None) -> Page[Tenant]:
        after = None if cursor is None else str(decode_cursor(cursor, 1)[0])
        rows = await self._pool.fetch(LIST_TENANTS, after, limit + 1)
        items = [Tenant.model_validate(dict(r)) for r in rows]
        return page_of(items, limit, lambda t: (t.id,))

    async def ensure(self, tenant_id: str) -> None:
        """Create the tenant if it is missing (the dev tenant at start-up)."""
        await self._pool.execute(ENSURE_TENANT, tenant_id)
