"""The wave SQL: start a wave, and the follow-up a start leaves.

A wave start is a flip: the run row (``start_wave``) and ``rollouts.current_wave``
(``rollouts.update_rollout``); its targets were written ahead as pending. The
follow-up (``assign_chunk``, ``prewrite_next``) runs after the start committed,
without the rollout's lock, so it never holds up a gate evaluation (see each).
"""

from __future__ import annotations

from uuid import UUID

from xdp47_common.adapters.planning import Connection, PlanTarget, materialise_waves
from xdp47_common.rollout import RolloutStatus
from xdp47_scheduler.pg.progress import settle_devices
from xdp47_scheduler.pg.rollouts import LOCK_PLAN, json_value
from xdp47_scheduler.ports import RolloutRow

__all__ = [
    "assign_chunk",
    "follow_up_due",
    "plan_target",
    "planned_total",
    "prewrite_next",
    "start_wave",
]


def plan_target(row: RolloutRow) -> PlanTarget:
    return PlanTarget(
        rollout_id=row.id,
        tenant=row.tenant,
        channel=row.channel,
        selector=row.selector,
        waves=row.waves,
        wave_percentages=row.wave_percentages,
    )


_NEW_RUN = """
INSERT INTO rollout_runs (rollout_id, attempt, wave, started_at)
VALUES ($1, $2, $3, now())
ON CONFLICT DO NOTHING
RETURNING 1
"""


# Wave start is a flip: ``rollouts.current_wave`` (``update_rollout``) and the run
# row below. The wave's targets were written ahead as pending (``materialise_waves``,
# with their count in ``rollout_waves``), so ``eligible`` is known without counting
# the wave; devices are told by the read-time definition (``adapters.desired``).
# The count is the fallback for rollouts planned before 0007 (no ``rollout_waves``
# row); COALESCE evaluates it only then.
_OPEN_RUN = """
UPDATE rollout_runs SET eligible = coalesce(
    (SELECT pending FROM rollout_waves WHERE rollout_id = $1 AND wave = $3),
    (SELECT count(*) FROM rollout_targets
     WHERE rollout_id = $1 AND wave = $3 AND state = 'pending' AND active))
WHERE rollout_id = $1 AND attempt = $2 AND wave = $3
RETURNING eligible, skipped
"""


_MATERIALISED = "SELECT materialised FROM rollout_plans WHERE rollout_id = $1"
_PLAN_TOTAL = "SELECT total FROM rollout_plans WHERE rollout_id = $1"


_PREWRITE_TARGET = """
SELECT tenant, channel, selector::text AS selector, waves, wave_percentages,
       status, current_wave
FROM rollouts WHERE id = $1
"""


# The follow-up of a wave start, in chunks: pending targets of the current wave
# move to ``assigned`` (``assigned_at`` = the wave's start, ``baseline_apply`` =
# the device's last apply now, unless that report names this rollout and
# attempt: the device was told at the wave start's commit and answered before
# this chunk, so its report is this attempt's, never an old one;
# ``from_artifact_id`` = what it runs now unless it already runs the target's
# artifact) or, under skip_offline, to ``skipped``/``offline`` when the device
# is not online (the read-time definition never told it). Skips leave
# ``eligible`` for ``skipped`` in the same statement. SKIP LOCKED lets two
# schedulers share the work; the rollout must still be running. Without a stored
# effective policy (a rollout started before it was kept), skip_offline falls
# back to the default of XDP47_SCHED_SKIP_OFFLINE (true), as
# ``adapters.desired`` does.
_ASSIGN_CHUNK = """
WITH cur AS (
    SELECT r.id, r.attempt, r.current_wave AS wave, rr.started_at, r.artifact_id,
           coalesce((r.effective_policy->>'skip_offline')::boolean, true) AS skip
    FROM rollouts AS r
    JOIN rollout_runs AS rr ON rr.rollout_id = r.id AND rr.attempt = r.attempt
                           AND rr.wave = r.current_wave
    WHERE r.id = $1 AND r.status = 'running'
), batch AS (
    SELECT t.device_id FROM rollout_targets AS t JOIN cur ON t.rollout_id = cur.id
    WHERE t.wave = cur.wave AND t.state = 'pending' AND t.active
    LIMIT $2
    FOR UPDATE OF t SKIP LOCKED
), moved AS (
    UPDATE rollout_targets AS t SET
        state = CASE WHEN cur.skip AND d.status <> 'online' THEN 'skipped'
                     ELSE 'assigned' END,
        reason = CASE WHEN cur.skip AND d.status <> 'online' THEN 'offline' END,
        assigned_at = cur.started_at,
        finished_at = CASE WHEN cur.skip AND d.status <> 'online' THEN now() END,
        baseline_apply = CASE
            WHEN d.last_apply->>'rollout_id' = cur.id::text
             AND d.last_apply->>'attempt' = cur.attempt::text THEN NULL
            ELSE d.last_apply END,
        from_artifact_id = CASE
            WHEN d.current_artifact_id IS DISTINCT FROM
                 coalesce(t.artifact_id, cur.artifact_id)
            THEN d.current_artifact_id ELSE t.from_artifact_id END
    FROM batch AS b CROSS JOIN cur, devices AS d
    WHERE t.rollout_id = cur.id AND t.device_id = b.device_id
      AND d.tenant = t.tenant AND d.id = t.device_id
    RETURNING t.tenant, t.device_id, t.state
), counted AS (
    UPDATE rollout_runs AS rr
    SET eligible = rr.eligible - s.n, skipped = rr.skipped + s.n
    FROM cur, (SELECT count(*) AS n FROM moved WHERE state = 'skipped') AS s
    WHERE s.n > 0 AND rr.rollout_id = cur.id AND rr.attempt = cur.attempt
      AND rr.wave = cur.wave
)
SELECT tenant, device_id, state FROM moved
"""


# Is there follow-up work: pending targets in the current wave, or the next wave
# not written yet?
_FOLLOW_UP_DUE = """
SELECT r.status = 'running' AND (
    EXISTS (SELECT 1 FROM rollout_targets AS t
            WHERE t.rollout_id = r.id AND t.wave = r.current_wave
              AND t.state = 'pending' AND t.active)
    OR coalesce(p.materialised < least(r.current_wave + 1, r.waves), false))
FROM rollouts AS r LEFT JOIN rollout_plans AS p ON p.rollout_id = r.id
WHERE r.id = $1
"""


async def start_wave(
    conn: Connection, row: RolloutRow, *, attempt: int, wave: int
) -> tuple[int, int] | None:
    """Start ``wave`` of ``attempt`` exactly once: its run row, with ``eligible``
    from the targets written ahead (``rollout_waves``).

    Devices are told by the read-time definition once the caller's
    ``update_rollout`` (``current_wave``) commits; ``assign_started`` moves the
    target rows afterwards. The wave's targets are written here only if they were
    not written ahead (wave 1 at START, or a follow-up that has not run yet).

    Returns:
        (eligible, skipped), or None when this wave of this attempt already started.
    """
    if await conn.fetchval(_NEW_RUN, row.id, attempt, wave) is None:
        return None
    materialised = await conn.fetchval(_MATERIALISED, row.id)
    if materialised is not None and materialised < wave:
        # Waits for a follow-up writing this wave right now, then writes what is
        # still missing (usually nothing). Lock order: rollout row, then plan row.
        await conn.fetchval(LOCK_PLAN, row.id)
        await materialise_waves(conn, plan_target(row), wave)
    r = await conn.fetchrow(_OPEN_RUN, row.id, attempt, wave)
    assert r is not None  # the run row was inserted just above
    return int(r["eligible"]), int(r["skipped"])


async def planned_total(conn: Connection, rollout_id: UUID) -> int:
    """Devices the stored plan put in the waves (0 without a plan)."""
    return int(await conn.fetchval(_PLAN_TOTAL, rollout_id) or 0)


async def assign_chunk(conn: Connection, rollout_id: UUID, limit: int) -> int:
    """Move up to ``limit`` pending targets of the current wave to their start
    state (assigned, or skipped offline); repeat until it moves none. The devices
    told that already run the artifact are judged at once
    (``progress.settle_devices``), in the same transaction.

    Returns:
        How many moved.
    """
    rows = await conn.fetch(_ASSIGN_CHUNK, rollout_id, limit)
    told = [(r["tenant"], r["device_id"]) for r in rows if r["state"] == "assigned"]
    await settle_devices(conn, told)
    return len(rows)


async def prewrite_next(conn: Connection, rollout_id: UUID) -> int | None:
    """Write the next wave's targets (pending) ahead of its start.

    Runs without the rollout's row lock, so a gate evaluation never waits for it:
    it locks the plan row instead (a wave start that needs the same wave, and a
    terminal release, lock it too) and then re-reads the rollout, so targets are
    never written for a rollout that has ended.

    Returns:
        Targets written; None when the rollout has no compact plan.
    """
    materialised = await conn.fetchval(LOCK_PLAN, rollout_id)
    if materialised is None:
        return None
    r = await conn.fetchrow(_PREWRITE_TARGET, rollout_id)
    if r is None or r["status"] != RolloutStatus.RUNNING.value:
        return 0
    nxt = min((r["current_wave"] or 0) + 1, r["waves"])
    if materialised >= nxt:
        return 0
    target = PlanTarget(
        rollout_id=rollout_id,
        tenant=r["tenant"],
        channel=r["channel"],
        selector=json_value(r["selector"]) or {},
        waves=r["waves"],
        wave_percentages=r["wave_percentages"],
    )
    return await materialise_waves(conn, target, nxt)


async def follow_up_due(conn: Connection, rollout_id: UUID) -> bool:
    """Whether a running rollout has wave-start work left (cheap index probes)."""
    return bool(await conn.fetchval(_FOLLOW_UP_DUE, rollout_id))
