"""The progress read model of a rollout, read from PostgreSQL: devices per wave and
progress state (``xdp47_common.models.progress``), the runs, the devices of a
rollout one page at a time, the frozen effective policy and the tenant's
heartbeat rate. The REST API, the web UI and (through the API) the CLI all read
progress here; ``xdp47_common.rollout.progress`` assembles it.

``PROGRESS_STATE`` is the one mapping from a stored target (``rollout_targets``)
to the state operators read:

- ``applied`` → succeeded, ``failed`` → failed, ``assigned`` → updating;
- ``skipped`` → skipped, except the targets an abort released in waves the
  rollout never reached (reason ``aborted``) → not_started;
- ``pending`` in a wave its running rollout has reached → updating (the device
  is told at once, ``xdp47_common.adapters.desired``; the scheduler's follow-up
  moves the row moments later); in a later wave of a draft or running rollout →
  waiting; once the rollout ended → not_started.

Every query is scoped by tenant (it joins ``rollouts`` on the caller's tenant),
so another tenant's rollout id yields nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from xdp47_api.pagination import Page, decode_cursor, invalid_cursor
from xdp47_api.repositories._paging import page_of
from xdp47_common.models import (
    ProgressState,
    Rollout,
    RolloutDevice,
    RolloutProgress,
    RolloutRun,
)
from xdp47_common.rollout.progress import CountRow, StoredPlan, build_progress

__all__ = [
    "PROGRESS_STATE",
    "FleetActivity",
    "PgRolloutProgressRepository",
]

PROGRESS_STATE = """CASE
    WHEN t.state = 'applied' THEN 'succeeded'
    WHEN t.state = 'failed' THEN 'failed'
    WHEN t.state = 'assigned' THEN 'updating'
    WHEN t.state = 'skipped' AND t.reason = 'aborted'
         AND t.wave > coalesce(r.current_wave, 0) THEN 'not_started'
    WHEN t.state = 'skipped' THEN 'skipped'
    WHEN r.status = 'running' AND t.active AND t.wave <= r.current_wave
        THEN 'updating'
    WHEN r.status IN ('draft', 'running') THEN 'waiting'
    ELSE 'not_started'
END"""
# The stored states each progress state can come from: lets a filtered device list
# use the (rollout_id, wave, state) index before the exact mapping is applied.
STORED_STATES: dict[ProgressState, list[str]] = {
    ProgressState.SUCCEEDED: ["applied"],
    ProgressState.FAILED: ["failed"],
    ProgressState.SKIPPED: ["skipped"],
    ProgressState.UPDATING: ["assigned", "pending"],
    ProgressState.WAITING: ["pending"],
    ProgressState.NOT_STARTED: ["pending", "skipped"],
}

WAVE_STATE_COUNTS = f"""
SELECT t.wave, {PROGRESS_STATE} AS state,
       CASE WHEN t.state = 'skipped' THEN t.reason END AS reason, count(*) AS n,
       count(*) FILTER (WHERE t.late) AS late
FROM rollout_targets t
JOIN rollouts r ON r.id = t.rollout_id AND r.tenant = $1
WHERE t.rollout_id = $2
GROUP BY 1, 2, 3
"""  # nosec B608
ROLLOUT_ROW = """
SELECT id, tenant, name, artifact_id, policy_id, selector, channel, waves,
       wave_percentages, status, hold, held_since, reason, current_wave, attempt,
       started_by, created_at, started_at, finished_at, kind, rollback_of
FROM rollouts WHERE tenant = $1 AND id = $2
"""
STORED_PLAN = (
    "SELECT total, bounds, materialised FROM rollout_plans WHERE rollout_id = $1"
)
ALL_RUNS = """
SELECT rollout_id, wave, attempt, eligible, succeeded, failed, skipped, started_at,
       finished_at, outcome, reason
FROM rollout_runs WHERE rollout_id = $1 ORDER BY attempt, wave LIMIT $2
"""
DEVICES = f"""
SELECT t.device_id, t.wave, {PROGRESS_STATE} AS state, t.reason, t.late,
       coalesce(d.status, 'unknown') AS device_status, t.assigned_at, t.finished_at,
       t.device_attempt, t.retry_after, t.attempts,
       t.from_artifact_id, fa.version AS from_version,
       coalesce(t.artifact_id, r.artifact_id) AS artifact_id, ta.version
FROM rollout_targets t
JOIN rollouts r ON r.id = t.rollout_id AND r.tenant = $1
LEFT JOIN devices d ON d.tenant = t.tenant AND d.id = t.device_id
LEFT JOIN artifacts fa ON fa.tenant = t.tenant AND fa.id = t.from_artifact_id
LEFT JOIN artifacts ta ON ta.tenant = t.tenant
                      AND ta.id = coalesce(t.artifact_id, r.artifact_id)
WHERE t.rollout_id = $2
  AND ($3::int IS NULL OR t.wave = $3)
  AND ($4::text[] IS NULL OR t.state = ANY($4::text[]))
  AND ($5::text IS NULL OR {PROGRESS_STATE} = $5)
  AND ($6::text IS NULL OR t.device_id > $6)
ORDER BY t.device_id
LIMIT $7
"""  # nosec B608
EXISTS = "SELECT EXISTS (SELECT 1 FROM rollouts WHERE tenant = $1 AND id = $2)"
FLEET_ACTIVITY = """
SELECT count(*) AS devices,
       count(*) FILTER (WHERE last_seen > now() - interval '1 minute') AS last_minute,
       count(*) FILTER (WHERE status = 'online') AS online
FROM devices WHERE tenant = $1
"""
# Runs shown with a rollout's progress; /api/rollouts/{id}/runs pages through all.
RUNS_LIMIT = 1000


@dataclass(frozen=True)
class FleetActivity:
    devices: int
    seen_last_minute: int
    online: int


def _sizes(bounds: list[int]) -> list[int]:
    return [b - a for a, b in zip([0, *bounds], bounds, strict=False)]


class PgRolloutProgressRepository:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def progress(self, tenant: str, rollout_id: UUID) -> RolloutProgress | None:
        """The rollout's progress, read in one snapshot; None if not the tenant's."""
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            row = await conn.fetchrow(ROLLOUT_ROW, tenant, rollout_id)
            if row is None:
                return None
            rollout = Rollout.model_validate(dict(row))
            counts = await conn.fetch(WAVE_STATE_COUNTS, tenant, rollout_id)
            plan = await conn.fetchrow(STORED_PLAN, rollout_id)
            runs = await conn.fetch(ALL_RUNS, rollout_id, RUNS_LIMIT)
        return build_progress(
            rollout,
            [
                CountRow(
                    r["wave"],
                    ProgressState(r["state"]),
                    r["reason"],
                    int(r["n"]),
                    int(r["late"]),
                )
                for r in counts
            ],
            StoredPlan(_sizes(list(plan["bounds"])), int(plan["materialised"]))
            if plan is not None
            else None,
            [RolloutRun.model_validate(dict(r)) for r in runs],
        )

    async def exists(self, tenant: str, rollout_id: UUID) -> bool:
        return bool(await self._pool.fetchval(EXISTS, tenant, rollout_id))

    async def devices(
        self,
        tenant: str,
        rollout_id: UUID,
        *,
        wave: int | None,
        state: ProgressState | None,
        limit: int,
        cursor: str | None,
    ) -> Page[RolloutDevice]:
        """The rollout's devices of written waves by device id, one page.

        Ordered by the primary key (rollout_id, device_id), so a page is an index
        range however large the rollout (measured on 400k targets: 0.1 ms a page,
        where ordering by (wave, device id) sorted them all, 42 ms); a wave or
        state filter reads that range (or the (rollout_id, state) index for a
        rare state such as failed).
        """
        after: str | None = None
        if cursor is not None:
            (d,) = decode_cursor(cursor, 1)
            if not isinstance(d, str):
                raise invalid_cursor()
            after = d
        rows = await self._pool.fetch(
            DEVICES,
            tenant,
            rollout_id,
            wave,
            STORED_STATES[state] if state else None,
            state.value if state else None,
            after,
            limit + 1,
        )
        items = [RolloutDevice.model_validate(dict(r)) for r in rows]
        return page_of(items, limit, lambda d: (d.device_id,))

    async def fleet_activity(self, tenant: str) -> FleetActivity:
        row = await self._pool.fetchrow(FLEET_ACTIVITY, tenant)
        assert row is not None
        return FleetActivity(
            devices=int(row["devices"]),
            seen_last_minute=int(row["last_minute"]),
            online=int(row["online"]),
        )
