"""Device groups: create, read (with the live member count), update, delete.

A static group's members are rows of ``device_group_members`` (checked against
the tenant's devices); a dynamic group's are the devices its saved selector
matches, counted by the SQL of ``xdp47_common.adapters.selector_sql``."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from fastapi import HTTPException

from xdp47_api.acting import audit_entry
from xdp47_api.pagination import Page, time_id_cursor
from xdp47_api.repositories._paging import page_of, time_id_key
from xdp47_api.repositories._trail import record
from xdp47_common.adapters import selector_sql
from xdp47_common.models.audit import AuditEntry
from xdp47_common.models.group import (
    DeviceGroup,
    DeviceGroupCreate,
    DeviceGroupUpdate,
    GroupKind,
)
from xdp47_common.selectors import Selector

__all__ = ["PgGroupRepository"]

_COLUMNS = "id, tenant, name, kind, selector, created_at"
INSERT_GROUP = f"""
INSERT INTO device_groups (id, tenant, name, kind, selector)
VALUES ($1, $2, $3, $4, $5::text::jsonb)
ON CONFLICT (tenant, name) DO NOTHING
RETURNING {_COLUMNS}
"""  # nosec B608
GET_GROUP = f"SELECT {_COLUMNS} FROM device_groups WHERE tenant = $1 AND id = $2"  # nosec B608
LIST_GROUPS = f"""
SELECT {_COLUMNS} FROM device_groups
WHERE tenant = $1
  AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id LIMIT $4
"""  # nosec B608
COUNT_MEMBERS = f"""
SELECT count(*) FROM devices AS d WHERE d.tenant = $1 AND {selector_sql.in_group("$2")}
"""  # nosec B608
UNKNOWN_DEVICES = """
SELECT coalesce(array_agg(x ORDER BY x), '{}') FROM unnest($2::text[]) AS x
WHERE NOT EXISTS (SELECT 1 FROM devices WHERE tenant = $1 AND id = x)
"""
SET_MEMBERS = """
WITH gone AS (DELETE FROM device_group_members WHERE group_id = $2)
INSERT INTO device_group_members (tenant, group_id, device_id)
SELECT $1, $2, x FROM unnest($3::text[]) AS x ON CONFLICT DO NOTHING
"""
UPDATE_GROUP = f"""
UPDATE device_groups SET name = coalesce($3, name),
    selector = CASE WHEN kind = 'dynamic' THEN coalesce($4::text::jsonb, selector) END
WHERE tenant = $1 AND id = $2
RETURNING {_COLUMNS}
"""  # nosec B608
NAME_TAKEN = """
SELECT EXISTS (SELECT 1 FROM device_groups WHERE tenant = $1 AND name = $2
               AND id <> $3)
"""
DELETE_GROUP = "DELETE FROM device_groups WHERE tenant = $1 AND id = $2 RETURNING 1"
USED_BY = "SELECT id FROM rollouts WHERE tenant = $1 AND group_id = $2 LIMIT 1"


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _entry(
    group: DeviceGroup,
    action: str,
    devices: list[str] | None,
    changed: dict[str, Any] | None = None,
) -> AuditEntry:
    detail: dict[str, Any] = {"name": group.name, "kind": group.kind.value}
    if group.selector_text is not None:
        detail["selector"] = group.selector_text
    if devices is not None:
        detail["devices"] = len(devices)
    if changed:
        detail["changed"] = sorted(changed)
    return audit_entry(group.tenant, action, "group", group.id, detail=detail)


class PgGroupRepository:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def _group(self, conn: Any, row: asyncpg.Record) -> DeviceGroup:
        selector = _json(row["selector"])
        count = await conn.fetchval(COUNT_MEMBERS, row["tenant"], row["id"])
        return DeviceGroup(
            id=row["id"],
            tenant=row["tenant"],
            name=row["name"],
            kind=GroupKind(row["kind"]),
            selector=selector,
            selector_text=(
                None if selector is None else Selector.from_json(selector).render()
            ),
            count=int(count),
            created_at=row["created_at"],
        )

    async def _check_members(self, conn: Any, tenant: str, ids: list[str]) -> None:
        unknown = await conn.fetchval(UNKNOWN_DEVICES, tenant, ids)
        if unknown:
            shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            raise HTTPException(
                status_code=422,
                detail=f"body.devices: {len(unknown)} not devices of the tenant: "
                f"{shown}",
            )

    async def create(self, body: DeviceGroupCreate) -> DeviceGroup:
        selector = None if body.selector is None else json.dumps(body.selector)
        async with self._pool.acquire() as conn, conn.transaction():
            if body.devices is not None:
                await self._check_members(conn, body.tenant, body.devices)
            row = await conn.fetchrow(
                INSERT_GROUP,
                uuid4(),
                body.tenant,
                body.name,
                body.kind.value,
                selector,
            )
            if row is None:
                raise HTTPException(
                    status_code=409,
                    detail=f"body.name: a group named {body.name!r} exists",
                )
            if body.devices is not None:
                await conn.execute(SET_MEMBERS, body.tenant, row["id"], body.devices)
            group = await self._group(conn, row)
            await record(conn, _entry(group, "group.created", body.devices))
            return group

    async def get(self, tenant: str, group_id: UUID) -> DeviceGroup | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(GET_GROUP, tenant, group_id)
            return None if row is None else await self._group(conn, row)

    async def list(
        self, tenant: str, *, limit: int, cursor: str | None
    ) -> Page[DeviceGroup]:
        at, ident = time_id_cursor(cursor) or (None, None)
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(LIST_GROUPS, tenant, at, ident, limit + 1)
            groups = [await self._group(conn, r) for r in rows]
        return page_of(groups, limit, time_id_key)

    async def update(
        self, tenant: str, group_id: UUID, body: DeviceGroupUpdate
    ) -> DeviceGroup | None:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(GET_GROUP + " FOR UPDATE", tenant, group_id)
            if row is None:
                return None
            static = row["kind"] == GroupKind.STATIC.value
            if static and body.selector is not None:
                raise HTTPException(
                    status_code=422,
                    detail="body.selector: a static group lists devices; "
                    "create a dynamic group for a selector",
                )
            if not static and body.devices is not None:
                raise HTTPException(
                    status_code=422,
                    detail="body.devices: a dynamic group is its selector; "
                    "create a static group for a list of devices",
                )
            if body.name is not None and await conn.fetchval(
                NAME_TAKEN, tenant, body.name, group_id
            ):
                raise HTTPException(
                    status_code=409,
                    detail=f"body.name: a group named {body.name!r} exists",
                )
            if body.devices is not None:
                await self._check_members(conn, tenant, body.devices)
                await conn.execute(SET_MEMBERS, tenant, group_id, body.devices)
            row = await conn.fetchrow(
                UPDATE_GROUP,
                tenant,
                group_id,
                body.name,
                None if body.selector is None else json.dumps(body.selector),
            )
            assert row is not None
            group = await self._group(conn, row)
            changed = body.model_dump(mode="json", exclude_none=True)
            await record(conn, _entry(group, "group.updated", None, changed))
            return group

    async def delete(self, tenant: str, group_id: UUID) -> bool:
        """Delete a group no rollout names (409 otherwise); False when unknown."""
        async with self._pool.acquire() as conn, conn.transaction():
            used = await conn.fetchval(USED_BY, tenant, group_id)
            if used is not None:
                raise HTTPException(
                    status_code=409,
                    detail=f"group '{group_id}' is targeted by rollout '{used}'; "
                    "a rollout's target is kept with its history",
                )
            try:
                deleted = await conn.fetchval(DELETE_GROUP, tenant, group_id)
            except asyncpg.ForeignKeyViolationError:
                # A rollout naming it was created meanwhile.
                raise HTTPException(
                    status_code=409,
                    detail=f"group '{group_id}' is targeted by a rollout",
                ) from None
            if deleted is None:
                return False
            await record(conn, audit_entry(tenant, "group.deleted", "group", group_id))
            return True
