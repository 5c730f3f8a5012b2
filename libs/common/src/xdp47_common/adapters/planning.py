"""Wave planning in SQL: the scheduler writes the plan, the API previews it.

One rule, two implementations: ``xdp47_common.rollout.planner`` decides the ranking
(``SQL_ORDER_BY``) and the wave boundaries (``wave_bounds``); this module applies
them set-based. The candidates of a rollout are the devices of its tenant with
``channel = rollout.channel``, matched by its selector and group, compatible
with its artifact (``adapters.selector_sql``) and no active target of another
rollout (``exclusions.PLANNING_EXCLUSIONS``); offline devices stay planned
and are skipped at their wave's start under ``skip_offline``.

``write_plan`` is what START runs: it stores the plan compactly (``rollout_plans``:
the rank key of each wave's first device); each wave's target rows are written as
``pending`` by ``materialise_waves`` ahead of the wave (wave 1 at START, wave k+1
right after wave k started), with their count in ``rollout_waves``.
``preview_plan`` is the same ranking as a read-only SELECT (plus the excluded
devices with their reason), and ``stored_plan`` shows a started rollout: the
targets of its written waves (states as devices see them), and the waves to come
as they would start now. A running rollout with waves still to write reserves the
devices matching its selector against later rollouts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from xdp47_common.adapters import selector_sql
from xdp47_common.adapters.desired import target_state
from xdp47_common.models.plan import (
    PlanExclusion,
    PlannedDevice,
    PlanWave,
    RolloutPlan,
)
from xdp47_common.rollout.exclusions import Exclusion
from xdp47_common.rollout.planner import SQL_ORDERING_KEY, wave_bounds
from xdp47_common.rollout.policy import EffectivePolicy
from xdp47_common.rollout.status import RolloutStatus, TargetState
from xdp47_common.selectors import SelectorJson
from xdp47_common.settings import ControlSettings

__all__ = [
    "Connection",
    "PlanTarget",
    "count_candidates",
    "count_incompatible",
    "count_matched",
    "default_policy",
    "materialise_waves",
    "preview_plan",
    "stored_plan",
    "wave_members_ctes",
    "write_plan",
]

Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


@dataclass(frozen=True)
class PlanTarget:
    """What planning needs to know about a rollout."""

    rollout_id: UUID
    tenant: str
    channel: str
    # Either JSON form of ``xdp47_common.selectors`` (as stored with the rollout).
    selector: SelectorJson
    waves: int
    wave_percentages: Sequence[int] | None = None

    @property
    def selector_json(self) -> str:
        return json.dumps(self.selector, sort_keys=True)


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


# The rank key of ``devices AS d`` in rollout $1: the planner's ordering key followed
# by the id. md5 hex is fixed-width, so ordering by this one string under "C" is
# exactly ordering by (key, id), the rule of ``plan_waves``.
_RANK_KEY = f'({SQL_ORDERING_KEY} || d.id) COLLATE "C"'
# Greater than every rank key (hex digits and id characters are all below '~'):
# the first key of an empty trailing wave.
_AFTER_ALL = "~"


def _reserving(rid: str, tenant: str) -> str:
    """CTE ``reserving``: running rollouts that started before rollout ``rid`` and
    still have waves to write. Each reserves the devices matching its channel and
    selector, so a later rollout cannot take a device out of its unwritten waves.
    Precedence by (started_at, id) keeps two such rollouts from excluding each
    other's devices; a draft comes after every running rollout."""
    return f"""reserving AS MATERIALIZED (
    SELECT {selector_sql.reserving_columns("o")} FROM rollouts AS o
    JOIN rollout_plans AS p ON p.rollout_id = o.id
    WHERE o.status = 'running' AND o.tenant = {tenant} AND o.id <> {rid}::uuid
      AND p.materialised < o.waves
      AND (o.started_at, o.id) < (
          SELECT coalesce(me.started_at, 'infinity'::timestamptz), me.id
          FROM rollouts AS me WHERE me.id = {rid}::uuid)
)"""  # nosec B608


def _candidates(rid: str, tenant: str, channel: str, selector: str) -> str:
    """The candidate predicate over ``devices AS d`` (needs the ``reserving`` CTE).

    The selector is passed as text and cast, so the query works on connections with
    or without a jsonb codec.
    """
    return f"""
    d.tenant = {tenant} AND d.channel = {channel}
    AND {selector_sql.rollout_selects(rid, selector)}
    AND {selector_sql.rollout_compatible(rid)}
    AND NOT EXISTS (
        SELECT 1 FROM rollout_targets AS o
        WHERE o.tenant = d.tenant AND o.device_id = d.id AND o.active
          AND o.rollout_id <> {rid}::uuid
    )
    AND NOT EXISTS (
        SELECT 1 FROM reserving AS v
        WHERE v.channel = d.channel AND {selector_sql.reserving_match("v")}
    )"""  # nosec B608


def wave_members_ctes(
    rid: str, tenant: str, channel: str, selector: str, wave: str
) -> str:
    """CTEs ``plan``, ``bump``, ``reserving`` and ``members`` for a wave start.

    ``members`` (tenant, id, status, last_apply, wave) are today's candidates whose
    rank key falls in waves ``materialised + 1 .. wave`` of the stored plan; ``bump``
    records those waves as written. Empty when the waves were written already (or
    the rollout was planned before compact plans, with every target written).
    Use in one statement that inserts ``members`` into ``rollout_targets``.
    """
    return f"""plan AS (
    SELECT firsts, materialised FROM rollout_plans
    WHERE rollout_id = {rid}::uuid AND materialised < {wave}
), bump AS (
    UPDATE rollout_plans SET materialised = {wave}
    WHERE rollout_id = {rid}::uuid AND materialised < {wave}
), {_reserving(rid, tenant)}, members AS (
    SELECT d.tenant, d.id, d.status, d.last_apply, w.wave
    FROM plan CROSS JOIN devices AS d
    CROSS JOIN LATERAL (SELECT width_bucket({_RANK_KEY}, plan.firsts) AS wave) AS w
    WHERE {_candidates(rid, tenant, channel, selector)}
      AND w.wave > plan.materialised AND w.wave <= {wave}
)"""  # nosec B608


_COUNT = f"""
WITH {_reserving("$1", "$2")}
SELECT count(*) FROM devices AS d WHERE {_candidates("$1", "$2", "$3", "$4")}
"""  # nosec B608

# Devices the selector and channel match, whatever else keeps them out of the plan
# (the zero-eligible reason counts them).
_MATCHED = f"""
SELECT count(*) FROM devices AS d
WHERE d.tenant = $1 AND d.channel = $2 AND {selector_sql.rollout_selects("$4", "$3")}
"""  # nosec B608

# Rank every candidate once and keep the keys at the given ranks ($5, ``int8[]``).
_FIRSTS = f"""
WITH {_reserving("$1", "$2")}, ranked AS (
    SELECT {_RANK_KEY} AS rk, row_number() OVER (ORDER BY {_RANK_KEY}) AS rn
    FROM devices AS d WHERE {_candidates("$1", "$2", "$3", "$4")}
)
SELECT rn, rk FROM ranked WHERE rn = ANY($5::int8[])
"""  # nosec B608

_SAVE_PLAN = """
INSERT INTO rollout_plans (rollout_id, total, bounds, firsts)
VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1
"""

# Also records how many targets each written wave got (``rollout_waves``, every
# wave of the range, zeros included): the run's ``eligible`` when the wave starts.
_MATERIALISE = f"""
WITH {wave_members_ctes("$1", "$2", "$3", "$4", "$5")}, inserted AS (
    INSERT INTO rollout_targets (rollout_id, tenant, device_id, wave, state, active)
    SELECT $1, m.tenant, m.id, m.wave, 'pending', true FROM members AS m
    ON CONFLICT DO NOTHING
    RETURNING wave
), sized AS (
    INSERT INTO rollout_waves AS w (rollout_id, wave, pending)
    SELECT $1, g.wave, count(i.wave)
    FROM plan CROSS JOIN generate_series(plan.materialised + 1, $5) AS g(wave)
    LEFT JOIN inserted AS i ON i.wave = g.wave
    GROUP BY g.wave
    ON CONFLICT (rollout_id, wave) DO UPDATE SET pending = w.pending + EXCLUDED.pending
)
SELECT count(*) FROM inserted
"""  # nosec B608

# $5 is the first rank of each wave (``int8[]``, see ``_first_ranks``): the wave
# of rank rn is the number of first ranks <= rn. The guard ``rn <= total`` keeps a
# device that became a candidate between the count and this statement out.
_RANKED = f"""
{_reserving("$1", "$2")}, ranked AS (
    SELECT d.id, d.status, row_number() OVER (ORDER BY {_RANK_KEY}) AS rn
    FROM devices AS d
    WHERE {_candidates("$1", "$2", "$3", "$4")}
), placed AS (
    SELECT id, status, rn, width_bucket(rn, $5::int8[]) AS wave
    FROM ranked WHERE rn <= $6
)"""  # nosec B608

_PREVIEW = f"""
WITH {_RANKED}, numbered AS (
    SELECT id, status, wave, rn,
           row_number() OVER (PARTITION BY wave ORDER BY rn) AS k,
           count(*) FILTER (WHERE status = 'online') OVER (PARTITION BY wave)
               AS online
    FROM placed
)
SELECT wave, id, status, online FROM numbered WHERE k <= $7 ORDER BY wave, k
"""  # nosec B608

# The order of the CASE is the order of ``Exclusion`` (first reason wins), as in
# ``exclusions.classify_device``.
_EXCLUDED = f"""
WITH {_reserving("$1", "$2")}, classified AS (
    SELECT d.id, CASE
        WHEN d.channel <> $3 THEN 'wrong_channel'
        WHEN NOT ({selector_sql.rollout_selects("$1", "$4")}) THEN 'label_mismatch'
        WHEN NOT ({selector_sql.rollout_compatible("$1")}) THEN 'incompatible'
        WHEN EXISTS (
            SELECT 1 FROM rollout_targets AS o
            WHERE o.tenant = d.tenant AND o.device_id = d.id AND o.active
              AND o.rollout_id <> $1
        ) OR EXISTS (
            SELECT 1 FROM reserving AS v
            WHERE v.channel = d.channel AND {selector_sql.reserving_match("v")}
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
"""  # nosec B608

# States as devices see them (``target_state``: a pending target of a started
# wave is told, before the scheduler's follow-up moves the row).
_STORED = f"""
WITH numbered AS (
    SELECT t.wave, t.device_id, {target_state("t", "r")} AS state, t.reason, d.status,
           row_number() OVER (PARTITION BY t.wave ORDER BY t.device_id COLLATE "C")
               AS k
    FROM rollout_targets AS t
    JOIN rollouts AS r ON r.id = t.rollout_id
    JOIN devices AS d ON d.tenant = t.tenant AND d.id = t.device_id
    WHERE t.rollout_id = $1
)
SELECT wave, device_id, state, reason, status FROM numbered WHERE k <= $2
ORDER BY wave, k
"""  # nosec B608
_STORED_COUNTS = f"""
SELECT t.wave, {target_state("t", "r")} AS state, count(*) AS n
FROM rollout_targets AS t JOIN rollouts AS r ON r.id = t.rollout_id
WHERE t.rollout_id = $1
GROUP BY 1, 2
"""  # nosec B608
# The waves not written yet: who they would hold if they started now ($5 limit).
_UNWRITTEN = f"""
WITH {_reserving("$1", "$2")}, plan AS (
    SELECT firsts, materialised FROM rollout_plans WHERE rollout_id = $1
), placed AS (
    SELECT d.id, d.status, w.wave, {_RANK_KEY} AS rk
    FROM plan CROSS JOIN devices AS d
    CROSS JOIN LATERAL (SELECT width_bucket({_RANK_KEY}, plan.firsts) AS wave) AS w
    WHERE {_candidates("$1", "$2", "$3", "$4")} AND w.wave > plan.materialised
), numbered AS (
    SELECT wave, id, status, count(*) OVER (PARTITION BY wave) AS n,
           row_number() OVER (PARTITION BY wave ORDER BY rk) AS k
    FROM placed
)
SELECT wave, id, status, n FROM numbered WHERE k <= $5 ORDER BY wave, k
"""  # nosec B608


def _base(target: PlanTarget) -> tuple[Any, ...]:
    return (target.rollout_id, target.tenant, target.channel, target.selector_json)


def _first_ranks(bounds: Sequence[int]) -> list[int]:
    """The rank of each wave's first device; ``total + 1`` for an empty tail."""
    return [1, *(b + 1 for b in bounds[:-1])]


async def count_candidates(conn: Connection, target: PlanTarget) -> int:
    """Count the devices a rollout would plan now."""
    return int(await conn.fetchval(_COUNT, *_base(target)))


async def count_matched(conn: Connection, target: PlanTarget) -> int:
    """Count the devices of the tenant on the channel whose labels match the
    selector, planned or not (``in_another_rollout`` ones included)."""
    return int(
        await conn.fetchval(
            _MATCHED,
            target.tenant,
            target.channel,
            target.selector_json,
            target.rollout_id,
        )
    )


_INCOMPATIBLE = f"""
SELECT count(*) FROM devices AS d
WHERE d.tenant = $1 AND d.channel = $2 AND {selector_sql.rollout_selects("$4", "$3")}
  AND NOT ({selector_sql.rollout_compatible("$4")})
"""  # nosec B608


async def count_incompatible(conn: Connection, target: PlanTarget) -> int:
    """Count the matched devices (``count_matched``) the rollout's artifact is
    not compatible with."""
    return int(
        await conn.fetchval(
            _INCOMPATIBLE,
            target.tenant,
            target.channel,
            target.selector_json,
            target.rollout_id,
        )
    )


async def write_plan(conn: Connection, target: PlanTarget) -> list[int]:
    """Plan a rollout as a compact description in ``rollout_plans``; idempotent.

    Ranks today's candidates once (``plan_waves``' rule) and stores, per wave, the
    rank key of its first device. No target row is written: wave ``k``'s targets
    are written ahead of it (``materialise_waves``, when wave ``k - 1`` starts), as
    the candidates then whose rank key falls in its range, so an unchanged fleet
    gets exactly the waves ranked here. Call inside the transaction that holds the
    rollout's row lock.

    Args:
        conn: A connection inside a transaction.
        target: The rollout.

    Returns:
        The planned size of each wave (index 0 is wave 1); all zeros when the
        rollout was planned already.
    """
    n = await count_candidates(conn, target)
    bounds = wave_bounds(n, target.waves, target.wave_percentages)
    ranks = _first_ranks(bounds)
    keys = {
        int(r["rn"]): r["rk"]
        for r in await conn.fetch(_FIRSTS, *_base(target), [k for k in ranks if k <= n])
    }
    # Wave 1 starts before every key, so devices ranked before the first one today
    # still have a wave when it starts.
    firsts = ["", *(keys.get(k, _AFTER_ALL) for k in ranks[1:])]
    saved = await conn.fetchval(_SAVE_PLAN, target.rollout_id, n, bounds, firsts)
    if saved is None:
        return [0] * target.waves
    return [b - a for a, b in zip([0, *bounds], bounds, strict=False)]


async def materialise_waves(conn: Connection, target: PlanTarget, wave: int) -> int:
    """Write the targets (pending) of the planned waves up to ``wave`` not written yet.

    The scheduler writes wave 1 at START and wave k+1 right after wave k started
    (off the gate's critical path); starting a wave then only flips
    ``rollouts.current_wave``. Each written wave's count goes to ``rollout_waves``.
    Idempotent (a wave is written once). Returns the number of targets written.
    """
    return int(await conn.fetchval(_MATERIALISE, *_base(target), wave))


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
        rows = (
            await conn.fetch(_PREVIEW, *_base(target), _first_ranks(bounds), n, limit)
            if n
            else []
        )
        excluded_rows = await conn.fetch(_EXCLUDED, *_base(target), skip_offline, limit)
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
    # Waves not written yet are shown as they would start now: pending, or
    # skipped once an abort made sure they never start.
    unwritten = (
        TargetState.SKIPPED if status is RolloutStatus.ABORTED else TargetState.PENDING
    )
    for r in await conn.fetch(_UNWRITTEN, *_base(target), limit):
        counts[r["wave"]] = {unwritten.value: int(r["n"])}
        listed[r["wave"]].append(
            PlannedDevice(device_id=r["id"], device_status=r["status"], state=unwritten)
        )
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
