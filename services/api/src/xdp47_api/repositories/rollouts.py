"""Rollouts (drafts written by the API; status owned by the scheduler) and the
history of their waves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from xdp47_api.acting import audit_entry
from xdp47_api.pagination import (
    Page,
    decode_cursor,
    invalid_cursor,
    time_id_cursor,
)
from xdp47_api.repositories._paging import page_of, time_id_key
from xdp47_api.repositories._trail import record, writing
from xdp47_common.adapters.plan_preview import PlanWindows, rollout_plan
from xdp47_common.adapters.planning import PlanTarget
from xdp47_common.clock import utcnow
from xdp47_common.models import Rollout, RolloutCreate, RolloutPlan, RolloutRun
from xdp47_common.rollout.policy import EffectivePolicy
from xdp47_common.rollout.status import RolloutHold, RolloutStatus

__all__ = ["PgRolloutRepository", "SteeringFacts"]

_COLUMNS = (
    "id, tenant, name, artifact_id, policy_id, selector, group_id, channel, waves, "
    "wave_percentages, status, hold, held_since, reason, current_wave, attempt, "
    "started_by, created_at, started_at, finished_at, kind, rollback_of"
)

INSERT_ROLLOUT = f"""
INSERT INTO rollouts (id, tenant, name, artifact_id, policy_id, selector, channel,
                      waves, wave_percentages, status, group_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'draft', $10)
RETURNING {_COLUMNS}
"""  # nosec B608
GET_ROLLOUT = f"SELECT {_COLUMNS} FROM rollouts WHERE tenant = $1 AND id = $2"  # nosec B608
LIST_ROLLOUTS = f"""
SELECT {_COLUMNS} FROM rollouts
WHERE tenant = $1
  AND ($2::text IS NULL OR status = $2)
  AND ($3::timestamptz IS NULL OR (created_at, id) > ($3, $4::uuid))
  AND ($6::text IS NULL OR hold = $6)
ORDER BY created_at, id LIMIT $5
"""  # nosec B608
ARTIFACT_EXISTS = (
    "SELECT EXISTS (SELECT 1 FROM artifacts "
    "WHERE tenant = $1 AND id = $2 AND deleted_at IS NULL)"
)
POLICY_EXISTS = "SELECT EXISTS (SELECT 1 FROM policies WHERE tenant = $1 AND id = $2)"
GROUP_EXISTS = (
    "SELECT EXISTS (SELECT 1 FROM device_groups WHERE tenant = $1 AND id = $2)"
)
# The devices a rollback would send back now (the scheduler's
# ``selector_sql.rollback_member`` rule, counted from the rollout's targets).
ROLLBACKABLE = """
SELECT count(*) FROM rollout_targets AS s
JOIN rollouts AS r ON r.id = s.rollout_id AND r.tenant = $1
JOIN devices AS d ON d.tenant = s.tenant AND d.id = s.device_id
WHERE s.rollout_id = $2 AND s.from_artifact_id IS NOT NULL
  AND d.current_artifact_id = r.artifact_id
  AND s.from_artifact_id <> d.current_artifact_id
"""
ROLLBACKS_OF = """
SELECT id FROM rollouts WHERE tenant = $1 AND rollback_of = $2
ORDER BY created_at, id
"""
LIST_RUNS = """
SELECT rollout_id, wave, attempt, eligible, succeeded, failed, skipped, started_at,
       finished_at, outcome, reason
FROM rollout_runs
WHERE rollout_id = $1
  AND ($2::int IS NULL OR (attempt, wave) > ($2, $3::int))
ORDER BY attempt, wave LIMIT $4
"""

# What a steering command's checks need beyond the rollout: the policy it runs
# under, its current wave's clock, and the tenant's four-eyes setting.
STEERING_FACTS = """
SELECT r.effective_policy::text AS effective_policy, r.current_wave_started_at,
       r.grace_skipped, t.four_eyes_approval
FROM rollouts AS r JOIN tenants AS t ON t.id = r.tenant
WHERE r.tenant = $1 AND r.id = $2
"""

PLAN_POLICY = """
SELECT r.effective_policy::text AS effective_policy, p.require_ok, p.skip_offline,
       p.grace_seconds, p.min_success_ratio, p.max_failures_per_wave,
       p.abort_on_zero_eligible, p.wave_deadline_seconds, p.max_device_retries,
       p.retry_backoff_seconds, p.retry_backoff_max_seconds, p.approval_before_waves,
       p.maintenance_windows, p.late_joiners,
       (SELECT default_timezone FROM tenants WHERE id = r.tenant) AS default_timezone
FROM rollouts AS r
LEFT JOIN policies AS p ON p.tenant = r.tenant AND p.id = r.policy_id
WHERE r.id = $1
"""


@dataclass(frozen=True)
class SteeringFacts:
    """A rollout's facts beyond its read model that steering checks: the policy
    it runs under (None before its start), its current wave's clock, whether the
    wave was promoted, and its tenant's four-eyes setting."""

    policy: EffectivePolicy | None
    current_wave_started_at: datetime | None
    grace_skipped: bool
    four_eyes: bool


def _rollout(row: asyncpg.Record) -> Rollout:
    return Rollout.model_validate(dict(row))


class PgRolloutRepository:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def artifact_exists(self, tenant: str, artifact_id: UUID) -> bool:
        return bool(await self._pool.fetchval(ARTIFACT_EXISTS, tenant, artifact_id))

    async def policy_exists(self, tenant: str, policy_id: UUID) -> bool:
        return bool(await self._pool.fetchval(POLICY_EXISTS, tenant, policy_id))

    async def group_exists(self, tenant: str, group_id: UUID) -> bool:
        return bool(await self._pool.fetchval(GROUP_EXISTS, tenant, group_id))

    async def create(self, body: RolloutCreate) -> Rollout:
        async with writing(self._pool) as conn:
            row = await conn.fetchrow(
                INSERT_ROLLOUT,
                uuid4(),
                body.tenant,
                body.name,
                body.artifact_id,
                body.policy_id,
                body.selector,
                body.channel,
                body.waves,
                body.wave_percentages,
                body.group_id,
            )
            assert row is not None
            created = _rollout(row)
            await record(
                conn,
                audit_entry(
                    created.tenant,
                    "rollout.created",
                    "rollout",
                    created.id,
                    after=created.status.value,
                    rollout_id=created.id,
                    detail={
                        "name": created.name,
                        "artifact_id": str(created.artifact_id),
                    },
                ),
            )
        return created

    async def rollbackable(self, tenant: str, rollout_id: UUID) -> int:
        """Devices that applied the rollout's artifact, still run it and ran
        another artifact before: what a rollback would send back."""
        return int(await self._pool.fetchval(ROLLBACKABLE, tenant, rollout_id) or 0)

    async def rollbacks_of(self, tenant: str, rollout_id: UUID) -> list[UUID]:
        """The rollbacks of a rollout, oldest first."""
        rows = await self._pool.fetch(ROLLBACKS_OF, tenant, rollout_id)
        return [r["id"] for r in rows]

    async def get(self, tenant: str, rollout_id: UUID) -> Rollout | None:
        row = await self._pool.fetchrow(GET_ROLLOUT, tenant, rollout_id)
        return None if row is None else _rollout(row)

    async def list(
        self,
        tenant: str,
        *,
        status: RolloutStatus | None,
        hold: RolloutHold | None = None,
        limit: int,
        cursor: str | None,
    ) -> Page[Rollout]:
        at, ident = time_id_cursor(cursor) or (None, None)
        rows = await self._pool.fetch(
            LIST_ROLLOUTS,
            tenant,
            status.value if status else None,
            at,
            ident,
            limit + 1,
            hold.value if hold else None,
        )
        return page_of([_rollout(r) for r in rows], limit, time_id_key)

    async def steering_facts(
        self, tenant: str, rollout_id: UUID
    ) -> SteeringFacts | None:
        """What a steering command's checks need; None: no such rollout."""
        row = await self._pool.fetchrow(STEERING_FACTS, tenant, rollout_id)
        if row is None:
            return None
        text = row["effective_policy"]
        return SteeringFacts(
            policy=None if text is None else EffectivePolicy.model_validate_json(text),
            current_wave_started_at=row["current_wave_started_at"],
            grace_skipped=row["grace_skipped"],
            four_eyes=row["four_eyes_approval"],
        )

    async def runs(
        self, rollout_id: UUID, *, limit: int, cursor: str | None
    ) -> Page[RolloutRun]:
        """Runs of a rollout the caller has already found in its tenant."""
        attempt: int | None = None
        wave: int | None = None
        if cursor is not None:
            a, w = decode_cursor(cursor, 2)
            if not isinstance(a, int) or not isinstance(w, int):
                raise invalid_cursor()
            attempt, wave = a, w
        rows = await self._pool.fetch(LIST_RUNS, rollout_id, attempt, wave, limit + 1)
        items = [RolloutRun.model_validate(dict(r)) for r in rows]
        return page_of(items, limit, lambda r: (r.attempt, r.wave))

    async def plan(
        self, rollout: Rollout, defaults: EffectivePolicy, *, limit: int
    ) -> RolloutPlan:
        """The plan of a rollout: a preview while draft, its targets once started.

        The preview runs the scheduler's planning SQL read-only, under the policy
        the rollout would start with (its policy over ``defaults``). Under
        maintenance windows each listed device shows its zone's window now.
        """
        target = PlanTarget(
            rollout_id=rollout.id,
            tenant=rollout.tenant,
            channel=rollout.channel,
            selector=rollout.selector,
            waves=rollout.waves,
            wave_percentages=rollout.wave_percentages,
        )
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(PLAN_POLICY, rollout.id)
            assert row is not None  # the caller found the rollout
            fields = dict(row)
            default_zone = fields.pop("default_timezone")
            if row["effective_policy"] is not None:
                policy = EffectivePolicy.model_validate_json(row["effective_policy"])
            else:
                # A LEFT JOIN without a policy gives nulls: the defaults apply.
                policy = EffectivePolicy.resolve(fields, defaults)
            return await rollout_plan(
                conn,
                target,
                status=rollout.status,
                skip_offline=policy.skip_offline,
                limit=limit,
                # Each listed device's window, in its zone, as of now.
                windows=PlanWindows(
                    policy.maintenance_windows or (), default_zone, utcnow()
                ),
            )
