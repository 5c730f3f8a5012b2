"""The rollout SQL of the scheduler: lock a rollout, read its wave, apply decisions.

Every function runs inside the caller's transaction, which holds the rollout's row
lock (``lock_rollout``), so a rollout changes in one place at a time even with
several schedulers; except the wave-start follow-up (``assign_chunk``,
``prewrite_next``), which runs after the start committed and must not hold up
gate evaluations (see each). Counters of ``rollout_runs`` are changed by relative
increments in the statements that move targets, never recounted from a wave.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from xdp47_common.adapters.planning import Connection, PlanTarget, materialise_waves
from xdp47_common.rollout import (
    Decision,
    EffectivePolicy,
    EventName,
    RolloutState,
    RolloutStatus,
    WaveCounters,
    WaveOutcome,
)
from xdp47_common.selectors import SelectorJson

__all__ = [
    "RolloutRow",
    "assign_chunk",
    "finish_run",
    "follow_up_due",
    "load_policy_overrides",
    "lock_rollout",
    "planned_total",
    "prewrite_next",
    "read_counters",
    "release_targets",
    "reset_for_retry",
    "save_policy",
    "shortfall",
    "start_wave",
    "time_out_wave",
    "update_rollout",
]


@dataclass(frozen=True)
class RolloutRow:
    id: UUID
    tenant: str
    artifact_id: UUID
    policy_id: UUID | None
    selector: SelectorJson
    channel: str
    waves: int
    wave_percentages: list[int] | None
    status: RolloutStatus
    current_wave: int | None
    current_wave_started_at: datetime | None
    attempt: int
    effective_policy: dict[str, Any] | None

    def state(self, *, shortfall: bool = False) -> RolloutState:
        return RolloutState(
            id=self.id,
            status=self.status,
            waves=self.waves,
            current_wave=self.current_wave,
            current_wave_started_at=self.current_wave_started_at,
            attempt=self.attempt,
            shortfall=shortfall,
        )

    def plan_target(self) -> PlanTarget:
        return PlanTarget(
            rollout_id=self.id,
            tenant=self.tenant,
            channel=self.channel,
            selector=self.selector,
            waves=self.waves,
            wave_percentages=self.wave_percentages,
        )


_LOCK = """
SELECT id, tenant, artifact_id, policy_id, selector::text AS selector, channel, waves,
       wave_percentages, status, current_wave, current_wave_started_at, attempt,
       effective_policy::text AS effective_policy
FROM rollouts WHERE id = $1 FOR UPDATE
"""

_POLICY = """
SELECT require_ok, skip_offline, grace_seconds, min_success_ratio,
       max_failures_per_wave, abort_on_zero_eligible, wave_deadline_seconds
FROM policies WHERE tenant = $1 AND id = $2
"""

_SAVE_POLICY = "UPDATE rollouts SET effective_policy = $2::text::jsonb WHERE id = $1"

_SHORTFALL = """
SELECT EXISTS (
    SELECT 1 FROM rollout_runs
    WHERE rollout_id = $1 AND attempt = $2 AND wave < $3 AND (failed > 0 OR skipped > 0)
)
"""

# ``prior``: in a retry, the wave's devices that applied in earlier attempts
# (written by the retry, ``_RETRY``): the gates judge the wave as a whole.
_COUNTERS = """
SELECT rr.eligible, rr.succeeded, rr.failed, rr.skipped,
       CASE WHEN rr.attempt > 1 THEN coalesce(w.prior_applied, 0) ELSE 0 END
           AS prior
FROM rollout_runs AS rr
LEFT JOIN rollout_waves AS w ON w.rollout_id = rr.rollout_id AND w.wave = rr.wave
WHERE rr.rollout_id = $1 AND rr.attempt = $2 AND rr.wave = $3
"""

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
_LOCK_PLAN = "SELECT materialised FROM rollout_plans WHERE rollout_id = $1 FOR UPDATE"

_PREWRITE_TARGET = """
SELECT tenant, channel, selector::text AS selector, waves, wave_percentages,
       status, current_wave
FROM rollouts WHERE id = $1
"""

# The follow-up of a wave start, in chunks: pending targets of the current wave
# move to ``assigned`` (``assigned_at`` = the wave's start, ``baseline_apply`` =
# the device's last apply now) or, under skip_offline, to ``skipped``/``offline``
# when the device is not online (the read-time definition never told it). Skips
# leave ``eligible`` for ``skipped`` in the same statement. SKIP LOCKED lets two
# schedulers share the work; the rollout must still be running.
_ASSIGN_CHUNK = """
WITH cur AS (
    SELECT r.id, r.attempt, r.current_wave AS wave, rr.started_at,
           coalesce((r.effective_policy->>'skip_offline')::boolean, false) AS skip
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
        baseline_apply = d.last_apply
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

_FINISH_RUN = """
UPDATE rollout_runs SET outcome = $4, reason = $5, finished_at = now()
WHERE rollout_id = $1 AND attempt = $2 AND wave = $3 AND finished_at IS NULL
"""

_UPDATE_ROLLOUT = """
UPDATE rollouts SET
    status = $2, attempt = $3, current_wave = $4, reason = $5,
    current_wave_started_at = CASE WHEN $6 THEN now() ELSE current_wave_started_at END,
    started_at = CASE WHEN $2 = 'running' OR $8 THEN coalesce(started_at, now())
                      ELSE started_at END,
    finished_at = CASE WHEN $7 THEN now() WHEN $2 = 'running' THEN NULL
                       ELSE finished_at END,
    updated_at = now()
WHERE id = $1
"""

# ``pending`` too: a target of the started wave whose follow-up never ran (a crash)
# is in ``eligible`` and must not hold the wave open.
_TIME_OUT = """
WITH gone AS (
    UPDATE rollout_targets SET state = 'failed', reason = 'timed_out',
                               reason_detail = NULL, finished_at = now()
    WHERE rollout_id = $1 AND wave = $2 AND state IN ('assigned', 'pending')
      AND active
    RETURNING 1
)
UPDATE rollout_runs SET failed = failed + (SELECT count(*) FROM gone)
WHERE rollout_id = $1 AND attempt = $3 AND wave = $2
RETURNING (SELECT count(*) FROM gone) AS n
"""

# Terminal: the rollout lets go of its devices; pending targets of an aborted
# rollout, and targets still updating, become skipped. Devices stop being told at
# the commit of the status change (the read-time definition needs ``running``);
# the kept desired state names a rollout only for devices that applied it, and
# the second statement clears it for any other (rows written before 0007).
_RELEASE = """
UPDATE rollout_targets SET
        active = false,
        state = CASE WHEN state = 'assigned' OR (state = 'pending' AND $2)
                     THEN 'skipped' ELSE state END,
        reason = CASE WHEN state = 'assigned' OR (state = 'pending' AND $2)
                      THEN $3 ELSE reason END,
        finished_at = CASE WHEN state = 'assigned' OR (state = 'pending' AND $2)
                           THEN now() ELSE finished_at END
WHERE rollout_id = $1 AND active
"""
_FORGET = """
UPDATE devices AS d SET desired_artifact_id = NULL, desired_rollout_id = NULL,
                        updated_at = now()
WHERE d.desired_rollout_id = $1 AND NOT EXISTS (
    SELECT 1 FROM rollout_targets AS t
    WHERE t.rollout_id = $1 AND t.device_id = d.id AND t.tenant = d.tenant
      AND t.state = 'applied')
"""
# What a device is told once the rollout has ended: the release it applied. A
# device that runs the rollout's artifact without an applied target (judged
# unhealthy, or not judged yet) keeps it as its desired state, rather than
# falling back to the last version an earlier rollout gave it; a device that
# never applied it keeps what it had. After ``_FORGET``.
_KEEP_APPLIED = """
UPDATE devices AS d SET desired_artifact_id = r.artifact_id, desired_rollout_id = r.id,
                        updated_at = now()
FROM rollout_targets AS t JOIN rollouts AS r ON r.id = t.rollout_id
WHERE t.rollout_id = $1 AND t.state <> 'applied'
  AND d.tenant = t.tenant AND d.id = t.device_id
  AND d.current_artifact_id = r.artifact_id
  AND d.desired_artifact_id IS DISTINCT FROM r.artifact_id
"""

# Retry: every target not applied is planned again in its wave, unless the device
# has meanwhile become a target of another running rollout; ``rollout_waves`` then
# holds the per-wave counts of those (what each wave of the new attempt tells).
_RETRY = """
WITH again AS (
    UPDATE rollout_targets AS t SET state = 'pending', reason = NULL,
        reason_detail = NULL, active = true,
        assigned_at = NULL, finished_at = NULL, baseline_apply = NULL
    WHERE t.rollout_id = $1 AND t.state <> 'applied' AND NOT t.active
      AND NOT EXISTS (
          SELECT 1 FROM rollout_targets AS o
          WHERE o.tenant = t.tenant AND o.device_id = t.device_id AND o.active
            AND o.rollout_id <> $1
      )
    RETURNING t.wave
), prior AS (
    SELECT wave, count(*) AS n FROM rollout_targets
    WHERE rollout_id = $1 AND state = 'applied'
    GROUP BY wave
), sized AS (
    INSERT INTO rollout_waves AS w (rollout_id, wave, pending, prior_applied)
    SELECT $1, g.wave, count(a.wave), coalesce(max(p.n), 0)
    FROM generate_series(1, (SELECT waves FROM rollouts WHERE id = $1)) AS g(wave)
    LEFT JOIN again AS a ON a.wave = g.wave
    LEFT JOIN prior AS p ON p.wave = g.wave
    GROUP BY g.wave
    ON CONFLICT (rollout_id, wave) DO UPDATE
        SET pending = EXCLUDED.pending, prior_applied = EXCLUDED.prior_applied
)
SELECT (SELECT count(*) FROM again) AS again,
       (SELECT count(*) FROM rollout_targets
        WHERE rollout_id = $1 AND state <> 'applied' AND NOT active) AS candidates
"""


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


async def lock_rollout(
    conn: Connection, rollout_id: UUID, *, skip_locked: bool = False
) -> RolloutRow | None:
    """Lock and read a rollout; None if missing (or locked, with ``skip_locked``)."""
    sql = _LOCK + " SKIP LOCKED" if skip_locked else _LOCK
    row = await conn.fetchrow(sql, rollout_id)
    if row is None:
        return None
    return RolloutRow(
        id=row["id"],
        tenant=row["tenant"],
        artifact_id=row["artifact_id"],
        policy_id=row["policy_id"],
        selector=_json(row["selector"]) or {},
        channel=row["channel"],
        waves=row["waves"],
        wave_percentages=row["wave_percentages"],
        status=RolloutStatus(row["status"]),
        current_wave=row["current_wave"],
        current_wave_started_at=row["current_wave_started_at"],
        attempt=row["attempt"],
        effective_policy=_json(row["effective_policy"]),
    )


async def load_policy_overrides(
    conn: Connection, tenant: str, policy_id: UUID | None
) -> dict[str, Any] | None:
    if policy_id is None:
        return None
    row = await conn.fetchrow(_POLICY, tenant, policy_id)
    return None if row is None else dict(row)


async def save_policy(
    conn: Connection, rollout_id: UUID, policy: EffectivePolicy
) -> None:
    await conn.execute(_SAVE_POLICY, rollout_id, policy.model_dump_json())


async def shortfall(conn: Connection, row: RolloutRow) -> bool:
    if row.current_wave is None or row.attempt < 1:
        return False
    return bool(await conn.fetchval(_SHORTFALL, row.id, row.attempt, row.current_wave))


async def read_counters(conn: Connection, row: RolloutRow) -> WaveCounters | None:
    if row.current_wave is None:
        return None
    r = await conn.fetchrow(_COUNTERS, row.id, row.attempt, row.current_wave)
    if r is None:
        return None
    return WaveCounters.from_run(
        r["eligible"], r["succeeded"], r["failed"], r["skipped"], r["prior"]
    )


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
        await conn.fetchval(_LOCK_PLAN, row.id)
        await materialise_waves(conn, row.plan_target(), wave)
    r = await conn.fetchrow(_OPEN_RUN, row.id, attempt, wave)
    assert r is not None  # the run row was inserted just above
    return int(r["eligible"]), int(r["skipped"])


async def planned_total(conn: Connection, rollout_id: UUID) -> int:
    """Devices the stored plan put in the waves (0 without a plan)."""
    return int(await conn.fetchval(_PLAN_TOTAL, rollout_id) or 0)


async def assign_chunk(
    conn: Connection, rollout_id: UUID, limit: int
) -> tuple[int, list[tuple[str, str]]]:
    """Move up to ``limit`` pending targets of the current wave to their start
    state (assigned, or skipped offline); repeat until it moves none.

    Returns:
        How many moved, and the (tenant, device) pairs that became ``assigned``:
        settle those (``progress.settle_devices``) in the same transaction.
    """
    rows = await conn.fetch(_ASSIGN_CHUNK, rollout_id, limit)
    told = [(r["tenant"], r["device_id"]) for r in rows if r["state"] == "assigned"]
    return len(rows), told


async def prewrite_next(conn: Connection, rollout_id: UUID) -> int | None:
    """Write the next wave's targets (pending) ahead of its start.

    Runs without the rollout's row lock, so a gate evaluation never waits for it:
    it locks the plan row instead (a wave start that needs the same wave, and a
    terminal release, lock it too) and then re-reads the rollout, so targets are
    never written for a rollout that has ended.

    Returns:
        Targets written; None when the rollout has no compact plan.
    """
    materialised = await conn.fetchval(_LOCK_PLAN, rollout_id)
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
        selector=_json(r["selector"]) or {},
        waves=r["waves"],
        wave_percentages=r["wave_percentages"],
    )
    return await materialise_waves(conn, target, nxt)


async def follow_up_due(conn: Connection, rollout_id: UUID) -> bool:
    """Whether a running rollout has wave-start work left (cheap index probes)."""
    return bool(await conn.fetchval(_FOLLOW_UP_DUE, rollout_id))


async def finish_run(
    conn: Connection,
    rollout_id: UUID,
    attempt: int,
    wave: int,
    outcome: WaveOutcome,
    reason: str,
) -> None:
    await conn.execute(_FINISH_RUN, rollout_id, attempt, wave, outcome.value, reason)


async def update_rollout(
    conn: Connection, rollout_id: UUID, decision: Decision, reason: str | None
) -> None:
    terminal = decision.status not in (RolloutStatus.DRAFT, RolloutStatus.RUNNING)
    await conn.execute(
        _UPDATE_ROLLOUT,
        rollout_id,
        decision.status.value,
        decision.attempt,
        decision.current_wave,
        reason,
        decision.start_wave is not None,
        terminal,
        # A start that ends at once (zero eligible) did start.
        any(e.name is EventName.STARTED for e in decision.events),
    )


async def time_out_wave(
    conn: Connection, rollout_id: UUID, attempt: int, wave: int
) -> int:
    """Fail the wave's devices still updating with reason ``timed_out``."""
    n = await conn.fetchval(_TIME_OUT, rollout_id, wave, attempt)
    return int(n or 0)


async def release_targets(
    conn: Connection, rollout_id: UUID, status: RolloutStatus
) -> None:
    aborted = status is RolloutStatus.ABORTED
    reason = "aborted" if aborted else f"rollout_{status.value}"
    # A follow-up writing targets ahead holds the plan row: wait for it, so the
    # statement below sees (and releases) what it wrote.
    await conn.fetchval(_LOCK_PLAN, rollout_id)
    await conn.execute(_RELEASE, rollout_id, aborted, reason)
    await conn.execute(_FORGET, rollout_id)
    await conn.execute(_KEEP_APPLIED, rollout_id)


async def reset_for_retry(conn: Connection, rollout_id: UUID) -> tuple[int, int]:
    """Plan the targets not applied again; returns (planned again, left out)."""
    r = await conn.fetchrow(_RETRY, rollout_id)
    assert r is not None
    again = int(r["again"])
    return again, int(r["candidates"]) - again
