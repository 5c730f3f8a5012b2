"""Target progress: devices told to update become applied or failed, set-based.

Level-triggered: a target moves by what its device reports now, whichever heartbeat
brought it. An ``assigned`` target of a running rollout becomes

- ``applied`` when the device runs the target's artifact (``artifact_id``: a
  rollback's per-device previous artifact, else the rollout's) and, under
  ``require_ok``, reports health ``ok``;
- ``failed`` with the device's failure code as ``reason`` (``apply_failed`` from
  an agent that predates codes) and its message as ``reason_detail``, when its
  last apply of that artifact failed for this rollout's current attempt (the
  report names them) and that report is new since the wave started
  (``baseline_apply``), so an old failure does not fail a retry, even when it
  arrives after the retry started;
- ``failed`` with reason ``unhealthy`` when it runs the artifact but reports
  ``failing`` under ``require_ok``; ``reason_detail`` then lists the health and
  the metric values of the heartbeat that judged it (``error_rate=0.31, ...``).

Every outcome is also appended to ``rollout_target_history`` by the table's
row trigger (migration 0011), in this statement's transaction.

The same statement adds the moves to the counters of the current attempt's run,
in the transaction of the device write, so gates read counters and never count a
wave, and keeps the artifact of an ``applied`` target as the device's desired
state (``devices.desired_artifact_id``: what it should run once the rollout has
ended, see ``xdp47_common.adapters.desired``). Entry points: the heartbeat hook
(the changed devices) and the wave-start follow-up (devices just told that
already run the artifact count at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from xdp47_common.adapters.planning import Connection

__all__ = ["settle_devices"]

# The device's last apply is a failure of this rollout's artifact, reported for
# this attempt: an agent names the rollout and attempt it answered
# (``last_apply.rollout_id``/``attempt``), so a report of an earlier attempt that
# arrives after a retry started is not this attempt's failure. Reports without
# them (agents that predate the fields) count when they differ from the device's
# last apply when the wave started (``baseline_apply``).
_NEW_FAILURE = """d.last_apply->>'result' = 'failed'
                 AND d.last_apply->>'artifact_id' = a.artifact_id::text
                 AND coalesce(d.last_apply->>'rollout_id', r.id::text) = r.id::text
                 AND coalesce((d.last_apply->>'attempt')::int, r.attempt) = r.attempt
                 AND d.last_apply IS DISTINCT FROM s.baseline_apply"""

_MOVE = f"""
judged AS (
    SELECT s.rollout_id, s.device_id, s.tid,
        CASE
            WHEN d.current_artifact_id = a.artifact_id
                 AND (NOT p.require_ok OR d.health = 'ok') THEN 'applied'
            WHEN {_NEW_FAILURE} THEN 'failed'
            WHEN p.require_ok AND d.current_artifact_id = a.artifact_id
                 AND d.health = 'failing' THEN 'failed'
        END AS state,
        CASE
            WHEN d.current_artifact_id = a.artifact_id
                 AND (NOT p.require_ok OR d.health = 'ok') THEN NULL
            WHEN {_NEW_FAILURE}
                THEN coalesce(d.last_apply->>'code', 'apply_failed')
            ELSE 'unhealthy'
        END AS reason,
        CASE
            WHEN d.current_artifact_id = a.artifact_id
                 AND (NOT p.require_ok OR d.health = 'ok') THEN NULL
            WHEN {_NEW_FAILURE}
                THEN left(d.last_apply->>'reason', 500)
            ELSE left('health ' || d.health || coalesce(': ' || (
                SELECT string_agg(m.key || '=' || m.value, ', ' ORDER BY m.key)
                FROM jsonb_each_text(d.last_metrics) AS m
                WHERE m.value IS NOT NULL), ''), 500)
        END AS reason_detail
    FROM scope AS s
    JOIN rollouts AS r ON r.id = s.rollout_id AND r.status = 'running'
    CROSS JOIN LATERAL (
        SELECT coalesce(s.target_artifact, r.artifact_id) AS artifact_id
    ) AS a
    CROSS JOIN LATERAL (
        SELECT coalesce((r.effective_policy->>'require_ok')::boolean, true)
            AS require_ok
    ) AS p
    JOIN devices AS d ON d.tenant = s.tenant AND d.id = s.device_id
), moved AS (
    UPDATE rollout_targets AS t
    SET state = j.state, reason = j.reason, reason_detail = j.reason_detail,
        finished_at = now()
    FROM judged AS j
    WHERE j.state IS NOT NULL AND t.ctid = j.tid
      AND (t.rollout_id = j.rollout_id AND t.device_id = j.device_id
           AND t.state = 'assigned' AND t.active) IS TRUE
    RETURNING t.rollout_id, t.tenant, t.device_id, t.wave, t.state, t.artifact_id
), kept AS (
    UPDATE devices AS d
    SET desired_artifact_id = coalesce(m.artifact_id, r.artifact_id),
        desired_rollout_id = r.id
    FROM moved AS m JOIN rollouts AS r ON r.id = m.rollout_id
    WHERE m.state = 'applied' AND d.tenant = m.tenant AND d.id = m.device_id
), tally AS (
    SELECT rollout_id, wave,
           count(*) FILTER (WHERE state = 'applied') AS ok,
           count(*) FILTER (WHERE state = 'failed') AS bad
    FROM moved GROUP BY rollout_id, wave
), bumped AS (
    UPDATE rollout_runs AS rr
    SET succeeded = rr.succeeded + tally.ok, failed = rr.failed + tally.bad
    FROM tally JOIN rollouts AS r ON r.id = tally.rollout_id
    WHERE rr.rollout_id = tally.rollout_id AND rr.attempt = r.attempt
      AND rr.wave = tally.wave
    RETURNING rr.rollout_id
)
SELECT DISTINCT rollout_id FROM bumped
"""  # nosec B608

# Shaped so the plan cannot depend on the statistics of rollout_targets, which are
# stale right after a wave's 100k targets were written or moved (an estimate of
# "2 assigned rows" once produced a nested loop scanning the whole wave for each
# device): each device probes the partial unique index of active targets once
# (LATERAL … LIMIT 1 keeps the subquery from being flattened into a join), and
# the UPDATE finds its rows by TID (its other conditions are wrapped in IS TRUE,
# which no index can serve, so the planner cannot prefer scanning the wave by
# state; they are still rechecked on a concurrently updated row). A target
# changed concurrently since the read
# fails the TID recheck and is left for the device's next heartbeat
# (level-triggered).
_BY_DEVICES = (
    """
WITH scope AS (
    SELECT t.rollout_id, c.tenant, c.device_id, t.baseline_apply, t.tid,
           t.artifact_id AS target_artifact
    FROM unnest($1::text[], $2::text[]) AS c(tenant, device_id)
    CROSS JOIN LATERAL (
        SELECT o.rollout_id, o.state, o.baseline_apply, o.ctid AS tid,
               o.artifact_id
        FROM rollout_targets AS o
        WHERE o.tenant = c.tenant AND o.device_id = c.device_id AND o.active
        LIMIT 1
    ) AS t
    WHERE t.state = 'assigned'
), """
    + _MOVE  # nosec B608
)


async def settle_devices(
    conn: Connection, devices: Sequence[tuple[str, str]]
) -> set[UUID]:
    """Move the targets of these (tenant, device) pairs; call in their write's tx.

    Returns:
        The running rollouts whose counters changed (their gates are due).
    """
    if not devices:
        return set()
    rows = await conn.fetch(
        _BY_DEVICES, [t for t, _ in devices], [d for _, d in devices]
    )
    return {r["rollout_id"] for r in rows}
