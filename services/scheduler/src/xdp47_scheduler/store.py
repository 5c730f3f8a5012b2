"""The rollout SQL of the scheduler: lock a rollout, read its wave, apply decisions.

Every function runs inside the caller's transaction, which holds the rollout's row
lock (``lock_rollout``), so a rollout changes in one place at a time even with
several schedulers. Counters of ``rollout_runs`` are changed by relative
increments in the statements that move targets, never recounted from a wave.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from xdp47_common.adapters.planning import Connection, PlanTarget, wave_members_ctes
from xdp47_common.rollout import (
    Decision,
    EffectivePolicy,
    RolloutState,
    RolloutStatus,
    WaveCounters,
    WaveOutcome,
)

__all__ = [
    "RolloutRow",
    "finish_run",
    "load_policy_overrides",
    "lock_rollout",
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
    selector: dict[str, str]
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

_COUNTERS = """
SELECT eligible, succeeded, failed, skipped FROM rollout_runs
WHERE rollout_id = $1 AND attempt = $2 AND wave = $3
"""

_NEW_RUN = """
INSERT INTO rollout_runs (rollout_id, attempt, wave, started_at)
VALUES ($1, $2, $3, now())
ON CONFLICT DO NOTHING
RETURNING 1
"""

# Wave start, one statement. ``fresh``: the wave's devices from the compact plan
# (``wave_members_ctes``: today's candidates in the wave's rank-key range) are
# written directly in their start state; ``moved``: targets written before (a
# retry, or a rollout planned before compact plans) go from pending to their start
# state. Both are told to update (assigned) or skipped when offline under
# skip_offline, and their devices get the desired artifact. ``assigned_at`` is the
# wave start (equal to the run's ``started_at``) for both.
_ASSIGN = f"""
WITH {wave_members_ctes("$1", "$6", "$7", "$8", "$2")}, fresh AS (
    INSERT INTO rollout_targets AS t (rollout_id, tenant, device_id, wave, state,
        reason, active, assigned_at, finished_at, baseline_apply)
    SELECT $1, m.tenant, m.id, m.wave,
        CASE WHEN m.wave < $2 THEN 'pending'
             WHEN $4 AND m.status <> 'online' THEN 'skipped' ELSE 'assigned' END,
        CASE WHEN m.wave = $2 AND $4 AND m.status <> 'online' THEN 'offline' END,
        true,
        CASE WHEN m.wave = $2 THEN now() END,
        CASE WHEN m.wave = $2 AND $4 AND m.status <> 'online' THEN now() END,
        CASE WHEN m.wave = $2 THEN m.last_apply END
    FROM members AS m
    ON CONFLICT DO NOTHING
    RETURNING t.tenant, t.device_id, t.state, t.wave
), moved AS (
    UPDATE rollout_targets AS t SET
        state = CASE WHEN $4 AND d.status <> 'online' THEN 'skipped' ELSE 'assigned'
                END,
        reason = CASE WHEN $4 AND d.status <> 'online' THEN 'offline' END,
        assigned_at = now(),
        finished_at = CASE WHEN $4 AND d.status <> 'online' THEN now() END,
        baseline_apply = d.last_apply
    FROM devices AS d
    WHERE t.rollout_id = $1 AND t.wave = $2 AND t.state = 'pending' AND t.active
      AND d.tenant = t.tenant AND d.id = t.device_id
    RETURNING t.tenant, t.device_id, t.state
), started AS (
    SELECT tenant, device_id, state FROM fresh WHERE wave = $2
    UNION ALL
    SELECT tenant, device_id, state FROM moved
), told AS (
    UPDATE devices AS d
    SET desired_artifact_id = $3, desired_rollout_id = $1, updated_at = now()
    FROM started AS m
    WHERE m.state = 'assigned' AND d.tenant = m.tenant AND d.id = m.device_id
    RETURNING 1
)
UPDATE rollout_runs SET
    eligible = (SELECT count(*) FROM started WHERE state = 'assigned'),
    skipped = (SELECT count(*) FROM started WHERE state = 'skipped')
WHERE rollout_id = $1 AND attempt = $5 AND wave = $2
RETURNING eligible, skipped
"""

_FINISH_RUN = """
UPDATE rollout_runs SET outcome = $4, reason = $5, finished_at = now()
WHERE rollout_id = $1 AND attempt = $2 AND wave = $3 AND finished_at IS NULL
"""

_UPDATE_ROLLOUT = """
UPDATE rollouts SET
    status = $2, attempt = $3, current_wave = $4, reason = $5,
    current_wave_started_at = CASE WHEN $6 THEN now() ELSE current_wave_started_at END,
    started_at = CASE WHEN $2 = 'running' THEN coalesce(started_at, now())
                      ELSE started_at END,
    finished_at = CASE WHEN $7 THEN now() WHEN $2 = 'running' THEN NULL
                       ELSE finished_at END,
    updated_at = now()
WHERE id = $1
"""

_TIME_OUT = """
WITH gone AS (
    UPDATE rollout_targets SET state = 'failed', reason = 'timed_out',
                               finished_at = now()
    WHERE rollout_id = $1 AND wave = $2 AND state = 'assigned' AND active
    RETURNING 1
)
UPDATE rollout_runs SET failed = failed + (SELECT count(*) FROM gone)
WHERE rollout_id = $1 AND attempt = $3 AND wave = $2
RETURNING (SELECT count(*) FROM gone) AS n
"""

# Terminal: the rollout lets go of its devices. Devices it told to update and that
# did not apply it forget the desired artifact (they keep their version); pending
# targets of an aborted rollout, and targets still updating, become skipped.
_RELEASE = """
WITH released AS (
    UPDATE rollout_targets SET
        active = false,
        state = CASE WHEN state = 'assigned' OR (state = 'pending' AND $2)
                     THEN 'skipped' ELSE state END,
        reason = CASE WHEN state = 'assigned' OR (state = 'pending' AND $2)
                      THEN $3 ELSE reason END,
        finished_at = CASE WHEN state = 'assigned' OR (state = 'pending' AND $2)
                           THEN now() ELSE finished_at END
    WHERE rollout_id = $1 AND active
    RETURNING tenant, device_id, state
)
UPDATE devices AS d SET desired_artifact_id = NULL, desired_rollout_id = NULL,
                        updated_at = now()
FROM released AS r
WHERE r.state <> 'applied' AND d.tenant = r.tenant AND d.id = r.device_id
  AND d.desired_rollout_id = $1
"""

# Retry: every target not applied is planned again in its wave, unless the device
# has meanwhile become a target of another running rollout.
_RETRY = """
WITH again AS (
    UPDATE rollout_targets AS t SET state = 'pending', reason = NULL, active = true,
        assigned_at = NULL, finished_at = NULL, baseline_apply = NULL
    WHERE t.rollout_id = $1 AND t.state <> 'applied' AND NOT t.active
      AND NOT EXISTS (
          SELECT 1 FROM rollout_targets AS o
          WHERE o.tenant = t.tenant AND o.device_id = t.device_id AND o.active
            AND o.rollout_id <> $1
      )
    RETURNING 1
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
        r["eligible"], r["succeeded"], r["failed"], r["skipped"]
    )


async def start_wave(
    conn: Connection,
    row: RolloutRow,
    *,
    attempt: int,
    wave: int,
    skip_offline: bool,
) -> tuple[int, int] | None:
    """Start ``wave`` of ``attempt`` exactly once.

    Returns:
        (eligible, skipped), or None when this wave of this attempt already started.
    """
    if await conn.fetchval(_NEW_RUN, row.id, attempt, wave) is None:
        return None
    r = await conn.fetchrow(
        _ASSIGN,
        row.id,
        wave,
        row.artifact_id,
        skip_offline,
        attempt,
        row.tenant,
        row.channel,
        json.dumps(row.selector, sort_keys=True),
    )
    assert r is not None  # the run row was inserted just above
    return int(r["eligible"]), int(r["skipped"])


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
    await conn.execute(_RELEASE, rollout_id, aborted, reason)


async def reset_for_retry(conn: Connection, rollout_id: UUID) -> tuple[int, int]:
    """Plan the targets not applied again; returns (planned again, left out)."""
    r = await conn.fetchrow(_RETRY, rollout_id)
    assert r is not None
    again = int(r["again"])
    return again, int(r["candidates"]) - again
