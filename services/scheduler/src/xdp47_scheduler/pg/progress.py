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
- still ``assigned``, with its next try (``device_attempt`` + 1) and when it may
  make it (``retry_after``), when that failure is retried (per-device retries,
  ``xdp47_common.rollout.retries``): the gates count it pending, never failed;
  every failed try is appended to the target's ``attempts`` (code, message,
  time, try), and a report must name the target's current try
  (``last_apply.device_attempt``, when the agent sends it) so a late report of
  an earlier try never fails a later one;
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

from xdp47_common.adapters.planning import Connection
from xdp47_common.rollout.retries import NOT_RETRIED
from xdp47_scheduler.ports import NOTHING_SETTLED, Settled

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
                 AND coalesce((d.last_apply->>'device_attempt')::int,
                              s.device_attempt) = s.device_attempt
                 AND d.last_apply IS DISTINCT FROM s.baseline_apply"""

# A new failure is retried (``xdp47_common.rollout.retries.after_failure``, the
# rule this applies; tests/integration/scheduler/test_device_retries_sql.py
# holds the two together) when its code is not one that cannot pass ($3, the
# core's NOT_RETRIED), the try has retries left and the backoff ends before the
# wave's deadline (its start, ``assigned_at``, plus wave_deadline_seconds). A
# rollout whose kept policy predates the fields gets no retries, as it started.
_POLICY = """
    CROSS JOIN LATERAL (
        SELECT coalesce((r.effective_policy->>'require_ok')::boolean, true)
                   AS require_ok,
               coalesce((r.effective_policy->>'max_device_retries')::int, 0)
                   AS max_retries,
               coalesce((r.effective_policy->>'retry_backoff_seconds')::float8, 30)
                   AS backoff,
               coalesce((r.effective_policy->>'retry_backoff_max_seconds')::float8,
                        300) AS backoff_max,
               (r.effective_policy->>'wave_deadline_seconds')::float8 AS deadline
    ) AS p"""

_MOVE = f"""
judged AS (
    SELECT s.rollout_id, s.device_id, s.tid, s.device_attempt, d.last_apply,
        CASE
            WHEN c.ok THEN 'applied'
            WHEN c.new_failure AND b.retry_at IS NOT NULL THEN 'retry'
            WHEN c.new_failure THEN 'failed'
            WHEN p.require_ok AND d.current_artifact_id = a.artifact_id
                 AND d.health = 'failing' THEN 'failed'
        END AS state,
        b.retry_at,
        CASE WHEN c.ok THEN NULL WHEN c.new_failure THEN c.code
             ELSE 'unhealthy' END AS reason,
        CASE
            WHEN c.ok THEN NULL
            WHEN c.new_failure THEN c.message
            ELSE left('health ' || d.health || coalesce(': ' || (
                SELECT string_agg(m.key || '=' || m.value, ', ' ORDER BY m.key)
                FROM jsonb_each_text(d.last_metrics) AS m
                WHERE m.value IS NOT NULL), ''), 500)
        END AS reason_detail,
        -- The failed try, as the target's attempts keep it.
        CASE WHEN c.new_failure AND NOT c.ok THEN jsonb_build_array(
            jsonb_build_object('attempt', s.device_attempt, 'code', c.code,
                               'reason', c.message, 'at', now()))
        END AS failed_try
    FROM scope AS s
    JOIN rollouts AS r ON r.id = s.rollout_id AND r.status = 'running'
    CROSS JOIN LATERAL (
        SELECT coalesce(s.target_artifact, r.artifact_id) AS artifact_id
    ) AS a
    {_POLICY}
    JOIN devices AS d ON d.tenant = s.tenant AND d.id = s.device_id
    CROSS JOIN LATERAL (
        SELECT coalesce(d.current_artifact_id = a.artifact_id
                        AND (NOT p.require_ok OR d.health = 'ok'), false) AS ok,
               coalesce({_NEW_FAILURE}, false) AS new_failure,
               coalesce(d.last_apply->>'code', 'apply_failed') AS code,
               left(d.last_apply->>'reason', 500) AS message
    ) AS c
    CROSS JOIN LATERAL (
        SELECT CASE WHEN NOT (c.code = ANY($3::text[]))
                     AND s.device_attempt <= p.max_retries
                     AND (p.deadline IS NULL OR s.assigned_at IS NULL
                          OR w.at < s.assigned_at
                                    + make_interval(secs => p.deadline))
                    THEN w.at END AS retry_at
        FROM (SELECT now() + make_interval(secs => least(
                  p.backoff * 2 ^ least(s.device_attempt - 1, 30),
                  p.backoff_max)) AS at) AS w
    ) AS b
), moved AS (
    UPDATE rollout_targets AS t
    SET state = j.state, reason = j.reason, reason_detail = j.reason_detail,
        finished_at = now(), retry_after = NULL,
        attempts = t.attempts || coalesce(j.failed_try, '[]'::jsonb)
    FROM judged AS j
    WHERE j.state IN ('applied', 'failed') AND t.ctid = j.tid
      AND (t.rollout_id = j.rollout_id AND t.device_id = j.device_id
           AND t.state = 'assigned' AND t.active) IS TRUE
    RETURNING t.rollout_id, t.tenant, t.device_id, t.wave, t.state, t.artifact_id
), retried AS (
    -- The target stays ``assigned`` (the gates count it pending, never failed)
    -- with its next try; the report it answered becomes the baseline, so the
    -- same report (an agent that predates device_attempt repeats it in every
    -- heartbeat) is never counted twice.
    UPDATE rollout_targets AS t
    SET device_attempt = t.device_attempt + 1, retry_after = j.retry_at,
        attempts = t.attempts || j.failed_try, baseline_apply = j.last_apply
    FROM judged AS j
    WHERE j.state = 'retry' AND t.ctid = j.tid
      AND (t.rollout_id = j.rollout_id AND t.device_id = j.device_id
           AND t.state = 'assigned' AND t.active
           AND t.device_attempt = j.device_attempt) IS TRUE
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
SELECT m.rollout_id, m.tenant, m.device_id, m.state, m.wave,
       m.rollout_id IN (SELECT rollout_id FROM bumped) AS counted
FROM moved AS m
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
           t.artifact_id AS target_artifact, t.device_attempt, t.assigned_at
    FROM unnest($1::text[], $2::text[]) AS c(tenant, device_id)
    CROSS JOIN LATERAL (
        SELECT o.rollout_id, o.state, o.baseline_apply, o.ctid AS tid,
               o.artifact_id, o.device_attempt, o.assigned_at
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
) -> Settled:
    """Move the targets of these (tenant, device) pairs; call in their write's tx.

    Returns:
        The running rollouts whose counters changed (their gates are due), and
        the targets moved with their new state and wave (the telemetry
        analysis counts a device that applied with this heartbeat as updated).
    """
    if not devices:
        return NOTHING_SETTLED
    rows = await conn.fetch(
        _BY_DEVICES,
        [t for t, _ in devices],
        [d for _, d in devices],
        sorted(NOT_RETRIED),
    )
    return Settled(
        touched={r["rollout_id"] for r in rows if r["counted"]},
        moved={(r["tenant"], r["device_id"]): (r["state"], r["wave"]) for r in rows},
    )
