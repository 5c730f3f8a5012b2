"""The rollout SQL: lock a rollout, read its wave, apply a decision.

Every function runs inside the caller's transaction, which holds the rollout's row
lock (``lock_rollout``, ``SELECT ... FOR UPDATE``), so a rollout changes in one
place at a time even with several schedulers. Counters of ``rollout_runs`` are
changed by relative increments in the statements that move targets, never
recounted from a wave.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from uuid import UUID

from xdp47_common.adapters.planning import Connection
from xdp47_common.rollout import (
    Decision,
    EffectivePolicy,
    EventName,
    RolloutHold,
    RolloutKind,
    RolloutStatus,
    WaveCounters,
    WaveOutcome,
)
from xdp47_scheduler.ports import RolloutRow

__all__ = [
    "LOCK_PLAN",
    "create_rollback",
    "finish_run",
    "four_eyes",
    "json_value",
    "load_policy_overrides",
    "lock_rollout",
    "read_counters",
    "rollbackable",
    "save_policy",
    "save_starter",
    "shortfall",
    "time_out_wave",
    "update_rollout",
]

# Lock order: the rollout row, then its plan row.
LOCK_PLAN = "SELECT materialised FROM rollout_plans WHERE rollout_id = $1 FOR UPDATE"


_LOCK = """
SELECT id, tenant, artifact_id, policy_id, selector::text AS selector, channel, waves,
       wave_percentages, status, current_wave, current_wave_started_at, attempt,
       effective_policy::text AS effective_policy, kind, rollback_of, hold,
       held_since, grace_skipped, started_by
FROM rollouts WHERE id = $1 FOR UPDATE
"""


_POLICY = """
SELECT require_ok, skip_offline, grace_seconds, min_success_ratio,
       max_failures_per_wave, abort_on_zero_eligible, wave_deadline_seconds,
       on_failure, max_device_retries, retry_backoff_seconds,
       retry_backoff_max_seconds, approval_before_waves,
       analysis::text AS analysis, maintenance_windows, late_joiners
FROM policies WHERE tenant = $1 AND id = $2
"""


# ``windowed``: the desired state reads the window rows only for such rollouts.
_SAVE_POLICY = """
UPDATE rollouts SET effective_policy = $2::text::jsonb, windowed = $3 WHERE id = $1
"""
_SAVE_STARTER = "UPDATE rollouts SET started_by = $2 WHERE id = $1"
_FOUR_EYES = "SELECT four_eyes_approval FROM tenants WHERE id = $1"


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


_FINISH_RUN = """
UPDATE rollout_runs SET outcome = $4, reason = $5, finished_at = now()
WHERE rollout_id = $1 AND attempt = $2 AND wave = $3 AND finished_at IS NULL
"""


_UPDATE_ROLLOUT = """
UPDATE rollouts SET
    status = $2, attempt = $3, current_wave = $4, reason = $5,
    current_wave_started_at = CASE WHEN $6 THEN now()
                                   ELSE current_wave_started_at + $11::interval END,
    hold = $9, held_since = $10,
    grace_skipped = CASE WHEN $6 THEN false ELSE $12 END,
    started_at = CASE WHEN $2 = 'running' OR $8 THEN coalesce(started_at, now())
                      ELSE started_at END,
    finished_at = CASE WHEN $7 THEN now() WHEN $2 = 'running' THEN NULL
                       ELSE finished_at END,
    updated_at = now()
WHERE id = $1
"""


# ``pending`` too: a target of the started wave whose follow-up never ran (a crash)
# is in ``eligible`` and must not hold the wave open. A device still retrying
# (per-device retries) times out like any other; its failed tries stay in
# ``attempts`` and the detail names how many there were and the last one's code.
_TIME_OUT = """
WITH gone AS (
    UPDATE rollout_targets SET state = 'failed', reason = 'timed_out',
        reason_detail = CASE WHEN jsonb_array_length(attempts) > 0 THEN
            'while retrying: ' || jsonb_array_length(attempts)
            || CASE WHEN jsonb_array_length(attempts) = 1 THEN ' failed try'
                    ELSE ' failed tries' END
            || ', the last ' || coalesce(attempts->-1->>'code', '?')
        END,
        retry_after = NULL, finished_at = now()
    WHERE rollout_id = $1 AND wave = $2 AND state IN ('assigned', 'pending')
      AND active
    RETURNING 1
)
UPDATE rollout_runs SET failed = failed + (SELECT count(*) FROM gone)
WHERE rollout_id = $1 AND attempt = $3 AND wave = $2
RETURNING (SELECT count(*) FROM gone) AS n
"""


def json_value(text: str | None) -> Any:
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
        selector=json_value(row["selector"]) or {},
        channel=row["channel"],
        waves=row["waves"],
        wave_percentages=row["wave_percentages"],
        status=RolloutStatus(row["status"]),
        current_wave=row["current_wave"],
        current_wave_started_at=row["current_wave_started_at"],
        attempt=row["attempt"],
        effective_policy=json_value(row["effective_policy"]),
        kind=RolloutKind(row["kind"]),
        rollback_of=row["rollback_of"],
        hold=None if row["hold"] is None else RolloutHold(row["hold"]),
        held_since=row["held_since"],
        grace_skipped=row["grace_skipped"],
        started_by=row["started_by"],
    )


async def load_policy_overrides(
    conn: Connection, tenant: str, policy_id: UUID | None
) -> dict[str, Any] | None:
    if policy_id is None:
        return None
    row = await conn.fetchrow(_POLICY, tenant, policy_id)
    if row is None:
        return None
    return dict(row) | {"analysis": json_value(row["analysis"])}


async def save_policy(
    conn: Connection, rollout_id: UUID, policy: EffectivePolicy
) -> None:
    await conn.execute(
        _SAVE_POLICY,
        rollout_id,
        policy.model_dump_json(),
        bool(policy.maintenance_windows),
    )


async def save_starter(
    conn: Connection, rollout_id: UUID, started_by: str | None
) -> None:
    await conn.execute(_SAVE_STARTER, rollout_id, started_by)


async def four_eyes(conn: Connection, tenant: str) -> bool:
    return bool(await conn.fetchval(_FOUR_EYES, tenant))


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
        None if terminal or decision.hold is None else decision.hold.value,
        None if terminal or decision.hold is None else decision.held_since,
        decision.shift_wave_clock or timedelta(0),
        decision.skip_grace and not terminal,
    )


async def time_out_wave(
    conn: Connection, rollout_id: UUID, attempt: int, wave: int
) -> int:
    """Fail the wave's devices still updating with reason ``timed_out``."""
    n = await conn.fetchval(_TIME_OUT, rollout_id, wave, attempt)
    return int(n or 0)


# The devices a rollback would send back (``selector_sql.rollback_member``),
# counted from the rollout's targets (primary key: rollout_id, device_id).
_ROLLBACKABLE = """
SELECT count(*) FROM rollout_targets AS s
JOIN devices AS d ON d.tenant = s.tenant AND d.id = s.device_id
WHERE s.rollout_id = $1 AND s.from_artifact_id IS NOT NULL
  AND d.current_artifact_id = $2 AND s.from_artifact_id <> d.current_artifact_id
"""

# A rollback is a draft copy of the undone rollout's artifact, channel and waves
# that selects by ``rollback_of`` (``selector_sql.rollout_selects``), not by
# labels or group; started in the same transaction. A policy that is not the
# tenant's (the API answers 404 before publishing) falls back to the original's.
_CREATE_ROLLBACK = """
INSERT INTO rollouts (id, tenant, name, artifact_id, policy_id, selector, channel,
                      waves, wave_percentages, kind, rollback_of)
SELECT $2, o.tenant,
       left('rollback of ' || coalesce(o.name, o.id::text), 200),
       o.artifact_id,
       coalesce((SELECT p.id FROM policies AS p
                 WHERE p.tenant = o.tenant AND p.id = $3), o.policy_id),
       '{}'::jsonb, o.channel, o.waves,
       o.wave_percentages, 'rollback', o.id
FROM rollouts AS o WHERE o.id = $1
ON CONFLICT (id) DO NOTHING
RETURNING id
"""


async def rollbackable(conn: Connection, row: RolloutRow) -> int:
    return int(await conn.fetchval(_ROLLBACKABLE, row.id, row.artifact_id) or 0)


async def create_rollback(
    conn: Connection, original: RolloutRow, rollback_id: UUID, policy_id: UUID | None
) -> RolloutRow | None:
    created = await conn.fetchval(_CREATE_ROLLBACK, original.id, rollback_id, policy_id)
    if created is None:
        return None
    return await lock_rollout(conn, rollback_id)
