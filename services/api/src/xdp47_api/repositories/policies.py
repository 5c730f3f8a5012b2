"""Policies: the gate settings a rollout runs under, per tenant."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import asyncpg

from xdp47_api.acting import audit_entry
from xdp47_api.pagination import Page, time_id_cursor
from xdp47_api.repositories._paging import page_of, time_id_key
from xdp47_api.repositories._trail import record, writing
from xdp47_common.models import Policy, PolicyCreate

__all__ = ["PgPolicyRepository"]

# A policy's settings: columns of ``policies`` named like ``PolicyCreate``'s
# fields, written in this order after id, tenant and name.
SETTINGS = (
    "require_ok",
    "skip_offline",
    "grace_seconds",
    "min_success_ratio",
    "max_failures_per_wave",
    "abort_on_zero_eligible",
    "wave_deadline_seconds",
    "on_failure",
    "max_device_retries",
    "retry_backoff_seconds",
    "retry_backoff_max_seconds",
    "approval_before_waves",
    "analysis",
    "maintenance_windows",
    "late_joiners",
)
_COLUMNS = f"id, tenant, name, {', '.join(SETTINGS)}, created_at"

INSERT_POLICY = f"""
INSERT INTO policies (id, tenant, name, {", ".join(SETTINGS)})
VALUES ({", ".join(f"${i}" for i in range(1, len(SETTINGS) + 4))})
ON CONFLICT (tenant, name) DO NOTHING
RETURNING {_COLUMNS}
"""  # nosec B608
GET_POLICY = f"SELECT {_COLUMNS} FROM policies WHERE tenant = $1 AND id = $2"  # nosec B608
# A policy named by id or by name (names are unique per tenant).
POLICY_BY_REF = """
SELECT id FROM policies WHERE tenant = $1 AND (id::text = $2 OR name = $2)
ORDER BY name = $2 LIMIT 1
"""
LIST_POLICIES = f"""
SELECT {_COLUMNS} FROM policies
WHERE tenant = $1
  AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id LIMIT $4
"""  # nosec B608


def _setting(body: PolicyCreate, name: str) -> object:
    """The value of setting ``name`` as its column takes it (jsonb as a dict)."""
    if name == "analysis":
        return None if body.analysis is None else body.analysis.model_dump(mode="json")
    return getattr(body, name)


def _policy(row: asyncpg.Record) -> Policy:
    return Policy.model_validate(dict(row))


class PgPolicyRepository:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def create(self, body: PolicyCreate) -> Policy | None:
        """Insert a policy; ``None`` when its tenant has one of that name."""
        async with writing(self._pool) as conn:
            row = await conn.fetchrow(
                INSERT_POLICY,
                uuid4(),
                body.tenant,
                body.name,
                *(_setting(body, name) for name in SETTINGS),
            )
            if row is None:
                return None
            created = _policy(row)
            await record(
                conn,
                audit_entry(
                    created.tenant,
                    "policy.created",
                    "policy",
                    created.id,
                    detail=created.model_dump(
                        mode="json", exclude={"tenant", "id", "created_at"}
                    ),
                ),
            )
        return created

    async def get(self, tenant: str, policy_id: UUID) -> Policy | None:
        row = await self._pool.fetchrow(GET_POLICY, tenant, policy_id)
        return None if row is None else _policy(row)

    async def id_of(self, tenant: str, ref: str) -> UUID | None:
        """The id of the tenant's policy with this id or name, if any."""
        found: UUID | None = await self._pool.fetchval(POLICY_BY_REF, tenant, ref)
        return found

    async def list(
        self, tenant: str, *, limit: int, cursor: str | None
    ) -> Page[Policy]:
        at, ident = time_id_cursor(cursor) or (None, None)
        rows = await self._pool.fetch(LIST_POLICIES, tenant, at, ident, limit + 1)
        return page_of([_policy(r) for r in rows], limit, time_id_key)
