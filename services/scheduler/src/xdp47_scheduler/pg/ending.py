"""The SQL of a rollout's end and of its retry: devices let go, and taken back.

Both run in the transaction that holds the rollout's row lock and changes its
status (``rollouts.update_rollout``).
"""

from __future__ import annotations

from uuid import UUID

from xdp47_common.adapters.planning import Connection
from xdp47_common.rollout import RolloutStatus
from xdp47_scheduler.pg.rollouts import LOCK_PLAN

__all__ = ["release_targets", "reset_for_retry"]


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
UPDATE devices AS d SET desired_artifact_id = coalesce(t.artifact_id, r.artifact_id),
                        desired_rollout_id = r.id, updated_at = now()
FROM rollout_targets AS t JOIN rollouts AS r ON r.id = t.rollout_id
WHERE t.rollout_id = $1 AND t.state <> 'applied'
  AND d.tenant = t.tenant AND d.id = t.device_id
  AND d.current_artifact_id = coalesce(t.artifact_id, r.artifact_id)
  AND d.desired_artifact_id IS DISTINCT FROM coalesce(t.artifact_id, r.artifact_id)
"""


# Retry: every target not applied is planned again in its wave, from its first
# try again (per-device tries count within one rollout attempt; the history
# keeps the earlier ones), unless the device
# has meanwhile become a target of another running rollout; ``rollout_waves`` then
# holds the per-wave counts of those (what each wave of the new attempt tells).
_RETRY = """
WITH again AS (
    UPDATE rollout_targets AS t SET state = 'pending', reason = NULL,
        reason_detail = NULL, active = true,
        assigned_at = NULL, finished_at = NULL, baseline_apply = NULL,
        device_attempt = 1, retry_after = NULL, attempts = '[]'::jsonb
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


async def release_targets(
    conn: Connection, rollout_id: UUID, status: RolloutStatus
) -> None:
    aborted = status is RolloutStatus.ABORTED
    reason = "aborted" if aborted else f"rollout_{status.value}"
    # A follow-up writing targets ahead holds the plan row: wait for it, so the
    # statement below sees (and releases) what it wrote.
    await conn.fetchval(LOCK_PLAN, rollout_id)
    await conn.execute(_RELEASE, rollout_id, aborted, reason)
    await conn.execute(_FORGET, rollout_id)
    await conn.execute(_KEEP_APPLIED, rollout_id)


async def reset_for_retry(conn: Connection, rollout_id: UUID) -> tuple[int, int]:
    """Plan the targets not applied again; returns (planned again, left out)."""
    r = await conn.fetchrow(_RETRY, rollout_id)
    assert r is not None
    again = int(r["again"])
    return again, int(r["candidates"]) - again
