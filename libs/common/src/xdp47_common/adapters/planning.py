"""Wave planning in SQL: the scheduler writes the plan, the API previews it.

``xdp47_common.rollout.planner`` states the ranking (``SQL_ORDERING_KEY``) and
the wave boundaries (``wave_bounds``); this module applies them set-based, and
property tests hold it to the planner's pure reference (``plan_waves``). The
candidates of a rollout are the devices of its tenant with
``channel = rollout.channel``, matched by its selector and group, compatible
with its artifact (``adapters.selector_sql``) and no active target of another
rollout (``exclusions.PLANNING_EXCLUSIONS``); offline devices stay planned
and are skipped at their wave's start under ``skip_offline``.

``write_plan`` is what START runs: it stores the plan compactly (``rollout_plans``:
the rank key of each wave's first device); each wave's target rows are written as
``pending`` by ``materialise_waves`` ahead of the wave (wave 1 at START, wave k+1
right after wave k started), with their count in ``rollout_waves``.
``plan_preview`` shows the same ranking read-only (the API's plan). A running
rollout with waves still to write reserves the devices matching its selector
against later rollouts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from xdp47_common.adapters import selector_sql
from xdp47_common.adapters.planning_forms import (
    FORMS,
    FULL_FORM,
    Connection,
    PlanningForm,
    by_form,
    planning_form,
)
from xdp47_common.rollout.planner import SQL_ORDERING_KEY, wave_bounds
from xdp47_common.selectors import SelectorJson

__all__ = [
    "FORMS",
    "FULL_FORM",
    "RANK_KEY",
    "Connection",
    "PlanTarget",
    "PlanningForm",
    "by_form",
    "candidate_filter",
    "count_candidates",
    "count_incompatible",
    "count_matched",
    "first_ranks",
    "materialise_waves",
    "plan_args",
    "planning_form",
    "reserving_cte",
    "unwritten_candidates",
    "wave_members_ctes",
    "write_plan",
]


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


# The rank key of ``devices AS d`` in rollout $1: the planner's ordering key followed
# by the id. md5 hex is fixed-width, so ordering by this one string under "C" is
# exactly ordering by (key, id), the rule of ``plan_waves``.
RANK_KEY = f'({SQL_ORDERING_KEY} || d.id) COLLATE "C"'
# Greater than every rank key (hex digits and id characters are all below '~'):
# the first key of an empty trailing wave.
_AFTER_ALL = "~"


def reserving_cte(rid: str, tenant: str) -> str:
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


def candidate_filter(
    rid: str,
    tenant: str,
    channel: str,
    selector: str,
    form: PlanningForm = FULL_FORM,
) -> str:
    """The candidate predicate over ``devices AS d`` (needs the ``reserving`` CTE).

    The selector is passed as text and cast, so the query works on connections with
    or without a jsonb codec. ``form`` (``planning_form``) leaves out the
    conditions that hold for every device of the rollout: without
    ``form.compat`` the per-device compatibility check (the jsonpath over each
    device's properties is most of what planning costs beyond the selector);
    without ``form.group`` / ``form.rollback`` the group and rollback
    membership, whose unestimable predicates made PostgreSQL probe the index of
    active targets once per device instead of hashing it.
    """
    compatible = f"AND {selector_sql.rollout_compatible(rid)}" if form.compat else ""
    selects = selector_sql.rollout_selects(
        rid, selector, group=form.group, rollback=form.rollback
    )
    return f"""
    d.tenant = {tenant} AND d.channel = {channel}
    AND {selects}
    {compatible}
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
    rid: str, tenant: str, channel: str, selector: str, wave: str, form: PlanningForm
) -> str:
    """CTEs ``plan``, ``bump``, ``reserving`` and ``members`` for a wave start.

    ``members`` (tenant, id, status, last_apply, wave, current_artifact_id and,
    for a rollback, the artifact each goes back to) are today's candidates whose
    rank key falls in waves ``materialised + 1 .. wave`` of the stored plan; ``bump``
    records those waves as written. Empty when the waves were written already (or
    the rollout was planned before compact plans, with every target written).
    Use in one statement that inserts ``members`` into ``rollout_targets``.
    ``form`` as in ``candidate_filter``.
    """
    columns = (
        "d.tenant, d.id, d.status, d.last_apply, w.wave, d.current_artifact_id, "
        f"{selector_sql.rollback_target_artifact(rid)} AS artifact_id"
    )
    return f"""plan AS (
    SELECT firsts, materialised FROM rollout_plans
    WHERE rollout_id = {rid}::uuid AND materialised < {wave}
), bump AS (
    UPDATE rollout_plans SET materialised = {wave}
    WHERE rollout_id = {rid}::uuid AND materialised < {wave}
), {reserving_cte(rid, tenant)}, members AS (
    {unwritten_candidates(rid, tenant, channel, selector, columns, form)}
      AND w.wave <= {wave}
)"""  # nosec B608


def unwritten_candidates(
    rid: str, tenant: str, channel: str, selector: str, columns: str, form: PlanningForm
) -> str:
    """SELECT ``columns`` of today's candidates (``candidate_filter``) whose rank
    key falls in a wave of the stored plan not written yet (``w.wave``); needs
    the CTEs ``plan`` (its ``rollout_plans`` row) and ``reserving``."""
    return f"""SELECT {columns}
    FROM plan CROSS JOIN devices AS d
    CROSS JOIN LATERAL (SELECT width_bucket({RANK_KEY}, plan.firsts) AS wave) AS w
    WHERE {candidate_filter(rid, tenant, channel, selector, form)}
      AND w.wave > plan.materialised"""  # nosec B608


# The statements below come in each form (``PlanningForm``, ``candidate_filter``).
_COUNT = by_form(
    lambda form: (
        f"""
WITH {reserving_cte("$1", "$2")}
SELECT count(*) FROM devices AS d
WHERE {candidate_filter("$1", "$2", "$3", "$4", form)}
"""  # nosec B608
    )
)

# Devices the selector and channel match, whatever else keeps them out of the plan
# (the zero-eligible reason counts them).
_MATCHED = f"""
SELECT count(*) FROM devices AS d
WHERE d.tenant = $1 AND d.channel = $2 AND {selector_sql.rollout_selects("$4", "$3")}
"""  # nosec B608

# The matched devices the rollout's artifact is not compatible with.
_INCOMPATIBLE = f"""
SELECT count(*) FROM devices AS d
WHERE d.tenant = $1 AND d.channel = $2 AND {selector_sql.rollout_selects("$4", "$3")}
  AND NOT ({selector_sql.rollout_compatible("$4")})
"""  # nosec B608

# Rank every candidate once and keep the keys at the given ranks ($5, ``int8[]``).
_FIRSTS = by_form(
    lambda form: (
        f"""
WITH {reserving_cte("$1", "$2")}, ranked AS (
    SELECT {RANK_KEY} AS rk, row_number() OVER (ORDER BY {RANK_KEY}) AS rn
    FROM devices AS d
    WHERE {candidate_filter("$1", "$2", "$3", "$4", form)}
)
SELECT rn, rk FROM ranked WHERE rn = ANY($5::int8[])
"""  # nosec B608
    )
)

_SAVE_PLAN = """
INSERT INTO rollout_plans (rollout_id, total, bounds, firsts)
VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1
"""

# Each target records what its device runs now (``from_artifact_id``, refreshed
# when its wave starts) and, for a rollback, the artifact it goes back to.
# Also records how many targets each written wave got (``rollout_waves``, every
# wave of the range, zeros included): the run's ``eligible`` when the wave starts.
_MATERIALISE = by_form(
    lambda form: (
        f"""
WITH {wave_members_ctes("$1", "$2", "$3", "$4", "$5", form)}, inserted AS (
    INSERT INTO rollout_targets (rollout_id, tenant, device_id, wave, state, active,
                                 from_artifact_id, artifact_id)
    SELECT $1, m.tenant, m.id, m.wave, 'pending', true, m.current_artifact_id,
           m.artifact_id
    FROM members AS m
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
    )
)


def plan_args(target: PlanTarget) -> tuple[Any, ...]:
    return (target.rollout_id, target.tenant, target.channel, target.selector_json)


def first_ranks(bounds: Sequence[int]) -> list[int]:
    """The rank of each wave's first device; ``total + 1`` for an empty tail."""
    return [1, *(b + 1 for b in bounds[:-1])]


async def count_candidates(
    conn: Connection, target: PlanTarget, form: PlanningForm | None = None
) -> int:
    """Count the devices a rollout would plan now (``form``: its
    ``planning_form``, looked up when not given)."""
    if form is None:
        form = await planning_form(conn, target.rollout_id)
    return int(await conn.fetchval(_COUNT[form], *plan_args(target)))


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
    form = await planning_form(conn, target.rollout_id)
    n = await count_candidates(conn, target, form)
    bounds = wave_bounds(n, target.waves, target.wave_percentages)
    ranks = first_ranks(bounds)
    keys = {
        int(r["rn"]): r["rk"]
        for r in await conn.fetch(
            _FIRSTS[form], *plan_args(target), [k for k in ranks if k <= n]
        )
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
    form = await planning_form(conn, target.rollout_id)
    return int(await conn.fetchval(_MATERIALISE[form], *plan_args(target), wave))
