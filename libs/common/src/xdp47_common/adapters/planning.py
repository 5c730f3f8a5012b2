"""Wave planning in SQL: the scheduler writes the plan, the API previews it.

One rule, two implementations: ``xdp47_common.rollout.planner`` decides the ranking
(``SQL_ORDER_BY``) and the wave boundaries (``wave_bounds``); this module applies
them set-based. The candidates of a rollout are the devices of its tenant with
``channel = rollout.channel``, ``labels @> selector`` and no active target of
another rollout (``exclusions.PLANNING_EXCLUSIONS``); offline devices stay planned
and are skipped at their wave's start under ``skip_offline``.

``write_plan`` is what START runs; ``preview_plan`` is the same ranking as a
read-only SELECT (plus the excluded devices with their reason), and
``stored_plan`` shows the targets of a rollout that has started.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from xdp47_common.models.plan import (
    PlanExclusion,
    PlannedDevice,
    PlanWave,
    RolloutPlan,
)
from xdp47_common.rollout.exclusions import Exclusion
from xdp47_common.rollout.planner import SQL_ORDER_BY, SQL_WAVE_OF_RANK, wave_bounds
from xdp47_common.rollout.policy import EffectivePolicy
from xdp47_common.rollout.status import RolloutStatus
from xdp47_common.settings import ControlSettings

__all__ = [
    "Connection",
    "PlanTarget",
    "count_candidates",
    "default_policy",
    "preview_plan",
    "stored_plan",
    "write_plan",
]

Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


@dataclass(frozen=True)
class PlanTarget:
    """What planning needs to know about a rollout."""

    rollout_id: UUID
    tenant: str
    channel: str
    selector: Mapping[str, str]
    waves: int
    wave_percentages: Sequence[int] | None = None

    @property
    def selector_json(self) -> str:
        return json.dumps(dict(self.selector), sort_keys=True)


def default_policy(settings: ControlSettings) -> EffectivePolicy:
    """The scheduler defaults (``XDP47_SCHED_*``) as a complete policy."""
    return EffectivePolicy(
        require_ok=settings.sched_require_ok,
        skip_offline=settings.sched_skip_offline,
        grace_seconds=settings.sched_grace,
        min_success_ratio=settings.sched_min_success_ratio,
        max_failures_per_wave=settings.sched_max_failures_per_wave,
        abort_on_zero_eligible=settings.sched_abort_on_zero_eligible,
        wave_deadline_seconds=settings.sched_wave_deadline,
    )


def _candidates(rid: str, tenant: str, channel: str, selector: str) -> str:
    """The candidate predicate over ``devices AS d`` with the given placeholders.

    The selector is passed as text and cast, so the query works on connections with
    or without a jsonb codec.
    """
    return f"""
    d.tenant = {tenant} AND d.channel = {channel}
    AND d.labels @> {selector}::text::jsonb
    AND NOT EXISTS (
        SELECT 1 FROM rollout_targets AS o
        WHERE o.tenant = d.tenant AND o.device_id = d.id AND o.active
          AND o.rollout_id <> {rid}::uuid
    )"""


_COUNT = (
    f"SELECT count(*) FROM devices AS d WHERE {_candidates('$1', '$2', '$3', '$4')}"
)

# $1 rollout id and $2 bounds are fixed by the planner's SQL constants. The guard
# ``rn <= bounds[last]`` keeps a device that became a candidate between the count
# and this statement out of the plan instead of giving it no wave.
_RANKED = f"""
ranked AS (
    SELECT d.id, d.status, row_number() OVER (ORDER BY {SQL_ORDER_BY}) AS rn
    FROM devices AS d
    WHERE {_candidates("$1", "$3", "$4", "$5")}
), placed AS (
    SELECT id, status, rn, {SQL_WAVE_OF_RANK}::int AS wave
    FROM ranked WHERE rn <= ($2::int[])[cardinality($2::int[])]
)"""

_INSERT = f"""
WITH {_RANKED}, inserted AS (
    INSERT INTO rollout_targets (rollout_id, tenant, device_id, wave, state, active)
    SELECT $1, $3, id, wave, 'pending', true FROM placed
    ON CONFLICT DO NOTHING
    RETURNING wave
)
SELECT wave, count(*) AS n FROM inserted GROUP BY wave
"""

_PREVIEW = f"""
WITH {_RANKED}, numbered AS (
    SELECT id, status, wave, rn,
           row_number() OVER (PARTITION BY wave ORDER BY rn) AS k,
           count(*) FILTER (WHERE status = 'online') OVER (PARTITION BY wave)
               AS online
    FROM placed
)
SELECT wave, id, status, online FROM numbered WHERE k <= $6 ORDER BY wave, k
"""

# The order of the CASE is the order of ``Exclusion`` (first reason wins), as in
# ``exclusions.classify_device``.
_EXCLUDED = """
WITH classified AS (
    SELECT d.id, CASE
        WHEN d.channel <> $3 THEN 'wrong_channel'
        WHEN NOT d.labels @> $4::text::jsonb THEN 'label_mismatch'
        WHEN EXISTS (
            SELECT 1 FROM rollout_targets AS o
            WHERE o.tenant = d.tenant AND o.device_id = d.id AND o.active
              AND o.rollout_id <> $1
        ) THEN 'in_another_rollout'
        WHEN $5 AND d.status <> 'online' THEN 'offline'
    END AS reason
    FROM devices AS d WHERE d.tenant = $2
), numbered AS (
    SELECT id, reason, count(*) OVER (PARTITION BY reason) AS n,
           row_number() OVER (PARTITION BY reason ORDER BY id COLLATE "C") AS k
    FROM classified WHERE reason IS NOT NULL
)
SELECT reason, id, n FROM numbered WHERE k <= $6 ORDER BY reason, k
"""

_STORED = """
WITH numbered AS (
    SELECT t.wave, t.device_id, t.state, t.reason, d.status,
           row_number() OVER (PARTITION BY t.wave ORDER BY t.device_id COLLATE "C")
               AS k
    FROM rollout_targets AS t
    JOIN devices AS d ON d.tenant = t.tenant AND d.id = t.device_id
    WHERE t.rollout_id = $1
)
SELECT wave, device_id, state, reason, status FROM numbered WHERE k <= $2
ORDER BY wave, k
"""
_STORED_COUNTS = """
SELECT wave, state, count(*) AS n FROM rollout_targets WHERE rollout_id = $1
GROUP BY wave, state
"""


async def count_candidates(conn: Connection, target: PlanTarget) -> int:
    """Count the devices a rollout would plan now."""
    n = await conn.fetchval(
        _COUNT, target.rollout_id, target.tenant, target.channel, target.selector_json
    )
    return int(n)


def _args(target: PlanTarget, bounds: Sequence[int]) -> tuple[Any, ...]:
    return (
        target.rollout_id,
        list(bounds),
        target.tenant,
        target.channel,
        target.selector_json,
    )


async def write_plan(conn: Connection, target: PlanTarget) -> list[int]:
    """Plan a rollout into ``rollout_targets`` (pending, active); idempotent.

    Call inside the transaction that holds the rollout's row lock. Devices already
    planned, or active in another rollout by now, are left as they are
    (``ON CONFLICT DO NOTHING``).

    Args:
        conn: A connection inside a transaction.
        target: The rollout.

    Returns:
        The number of targets written per wave (index 0 is wave 1).
    """
    n = await count_candidates(conn, target)
    bounds = wave_bounds(n, target.waves, target.wave_percentages)
    sizes = [0] * target.waves
    if n == 0:
        return sizes
    for row in await conn.fetch(_INSERT, *_args(target, bounds)):
        sizes[row["wave"] - 1] = int(row["n"])
    return sizes


async def preview_plan(
    conn: Connection,
    target: PlanTarget,
    *,
    status: RolloutStatus,
    skip_offline: bool,
    limit: int,
) -> RolloutPlan:
    """What starting the rollout now would plan, read-only and consistent.

    Args:
        conn: A connection (not in a transaction: this opens a read-only one).
        target: The rollout.
        status: Its status (draft), echoed in the result.
        skip_offline: The effective skip_offline (flags and ``offline`` exclusions).
        limit: Most devices listed per wave and per exclusion reason (>= 1).

    Returns:
        The waves with exact sizes and the excluded devices with their reason.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        n = await count_candidates(conn, target)
        bounds = wave_bounds(n, target.waves, target.wave_percentages)
        rows = await conn.fetch(_PREVIEW, *_args(target, bounds), limit) if n else []
        excluded_rows = await conn.fetch(
            _EXCLUDED,
            target.rollout_id,
            target.tenant,
            target.channel,
            target.selector_json,
            skip_offline,
            limit,
        )
    sizes = [b - a for a, b in zip([0, *bounds], bounds, strict=False)]
    listed: dict[int, list[PlannedDevice]] = {w: [] for w in range(1, len(bounds) + 1)}
    online: dict[int, int] = {}
    for r in rows:
        online[r["wave"]] = int(r["online"])
        listed[r["wave"]].append(
            PlannedDevice(
                device_id=r["id"],
                device_status=r["status"],
                would_skip=skip_offline and r["status"] != "online",
            )
        )
    waves = [
        PlanWave(
            wave=w,
            size=sizes[w - 1],
            states={
                "online": online.get(w, 0),
                "not_online": sizes[w - 1] - online.get(w, 0),
            },
            devices=listed[w],
            truncated=len(listed[w]) < sizes[w - 1],
        )
        for w in listed
    ]
    counts: dict[Exclusion, int] = {}
    excluded: list[PlanExclusion] = []
    for r in excluded_rows:
        reason = Exclusion(r["reason"])
        counts[reason] = int(r["n"])
        excluded.append(PlanExclusion(device_id=r["id"], reason=reason))
    return RolloutPlan(
        rollout_id=target.rollout_id,
        status=status,
        preview=True,
        total=n,
        skip_offline=skip_offline,
        waves=waves,
        excluded_counts=counts,
        excluded=excluded,
        excluded_truncated=len(excluded) < sum(counts.values()),
    )


async def stored_plan(
    conn: Connection,
    target: PlanTarget,
    *,
    status: RolloutStatus,
    skip_offline: bool,
    limit: int,
) -> RolloutPlan:
    """The targets of a started rollout by wave, with their state.

    Args:
        conn: A connection.
        target: The rollout.
        status: Its status, echoed.
        skip_offline: The effective skip_offline it runs under, echoed.
        limit: Most devices listed per wave (>= 1); the counts are exact.

    Returns:
        The plan as stored; ``excluded`` is empty (exclusions were decided at start).
    """
    counts: dict[int, dict[str, int]] = {w: {} for w in range(1, target.waves + 1)}
    for r in await conn.fetch(_STORED_COUNTS, target.rollout_id):
        counts.setdefault(r["wave"], {})[r["state"]] = int(r["n"])
    listed: dict[int, list[PlannedDevice]] = {w: [] for w in counts}
    for r in await conn.fetch(_STORED, target.rollout_id, limit):
        listed[r["wave"]].append(
            PlannedDevice(
                device_id=r["device_id"],
                device_status=r["status"],
                state=r["state"],
                reason=r["reason"],
            )
        )
    waves = [
        PlanWave(
            wave=w,
            size=sum(counts[w].values()),
            states=counts[w],
            devices=listed[w],
            truncated=len(listed[w]) < sum(counts[w].values()),
        )
        for w in sorted(counts)
    ]
    return RolloutPlan(
        rollout_id=target.rollout_id,
        status=status,
        preview=False,
        total=sum(w.size for w in waves),
        skip_offline=skip_offline,
        waves=waves,
    )
