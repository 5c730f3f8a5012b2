"""The reconcile loop: repair what a lost message or a crash could leave behind.

Decisions and their side effects commit together, so in normal operation there is
nothing to repair; these statements are the safety net of DESIGN principle 1, each
cheap when nothing is wrong:

1. ``stale_desired``: a device whose kept desired state still points at a rollout
   that finished (in the last hour) without it applying forgets it (keeps its
   version). Since 0007 the kept state is only written for applied targets and
   for devices that run the artifact when the rollout ends (they keep the
   release they applied), so this only finds rows written before.
2. ``counters``: the current run of a running rollout whose counters disagree with
   its targets (pending counter vs. targets told and not judged: ``assigned``, or
   ``pending`` before the wave-start follow-up moved them) is recounted from the
   targets of that wave's start (``assigned_at = run.started_at``, or pending).

Nothing repairs "told" devices: being told is derived at read time from the
targets and the rollout (``xdp47_common.adapters.desired``), so it cannot drift;
the wave-start follow-up left by a crash is picked up by the engine's timer.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from xdp47_scheduler.metrics import RECONCILE_REPAIRS

__all__ = ["reconcile"]

log = logging.getLogger(__name__)

# Driven from the few targets not applied (index on (rollout_id, state)) of
# rollouts that finished in the last hour: the clean-up commits with the status
# change, so only a very recent one could need this.
_STALE_DESIRED = """
UPDATE devices AS d
SET desired_artifact_id = NULL, desired_rollout_id = NULL, updated_at = now()
FROM rollouts AS r
JOIN rollout_targets AS t ON t.rollout_id = r.id
WHERE r.status IN ('completed', 'partial', 'failed', 'aborted')
  AND r.finished_at > now() - interval '1 hour'
  AND t.state IN ('pending', 'assigned', 'failed', 'skipped')
  AND d.tenant = t.tenant AND d.id = t.device_id AND d.desired_rollout_id = r.id
  AND d.current_artifact_id IS DISTINCT FROM r.artifact_id
"""

_COUNTERS = """
WITH cur AS (
    SELECT rr.rollout_id, rr.attempt, rr.wave, rr.started_at
    FROM rollouts AS r
    JOIN rollout_runs AS rr ON rr.rollout_id = r.id AND rr.attempt = r.attempt
                           AND rr.wave = r.current_wave
    WHERE r.status = 'running' AND rr.finished_at IS NULL
      AND rr.eligible - rr.succeeded - rr.failed <> (
          SELECT count(*) FROM rollout_targets AS t
          WHERE t.rollout_id = r.id AND t.wave = r.current_wave
            AND t.state IN ('assigned', 'pending') AND t.active)
), actual AS (
    SELECT cur.rollout_id, cur.attempt, cur.wave,
           count(*) FILTER (WHERE t.state <> 'skipped') AS eligible,
           count(*) FILTER (WHERE t.state = 'applied') AS succeeded,
           count(*) FILTER (WHERE t.state = 'failed') AS failed,
           count(*) FILTER (WHERE t.state = 'skipped') AS skipped
    FROM cur
    JOIN rollout_targets AS t ON t.rollout_id = cur.rollout_id AND t.wave = cur.wave
                             AND (t.assigned_at = cur.started_at
                                  OR (t.state = 'pending' AND t.active))
    GROUP BY cur.rollout_id, cur.attempt, cur.wave
)
UPDATE rollout_runs AS rr SET eligible = a.eligible, succeeded = a.succeeded,
                              failed = a.failed, skipped = a.skipped
FROM actual AS a
WHERE rr.rollout_id = a.rollout_id AND rr.attempt = a.attempt AND rr.wave = a.wave
"""


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[1])


async def reconcile(pool: asyncpg.Pool[Any]) -> dict[str, int]:
    """Run every repair once, each in its own short transaction.

    Returns:
        Rows repaired by kind (all zero when everything is consistent).
    """
    repaired: dict[str, int] = {}
    for kind, sql in (
        ("stale_desired", _STALE_DESIRED),
        ("counters", _COUNTERS),
    ):
        n = _count(await pool.execute(sql))
        repaired[kind] = n
        if n:
            RECONCILE_REPAIRS.labels(kind).inc(n)
            log.warning("reconcile repaired %d rows (%s)", n, kind)
    return repaired
