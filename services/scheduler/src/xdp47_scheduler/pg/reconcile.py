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
   Found by walking the targets a bounded slice per tick (``pg.audit``), so a tick
   costs the same whatever the wave sizes.

Nothing repairs "told" devices: being told is derived at read time from the
targets and the rollout (``xdp47_common.adapters.desired``), so it cannot drift;
the wave-start follow-up left by a crash is picked up by the engine's timer.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from xdp47_scheduler.metrics import RECONCILE_REPAIRS
from xdp47_scheduler.pg.audit import CounterAudit

__all__ = ["Reconciler"]

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
  AND d.current_artifact_id IS DISTINCT FROM coalesce(t.artifact_id, r.artifact_id)
"""


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[1])


class Reconciler:
    """The repairs of one scheduler process (the counter audit keeps its walk)."""

    def __init__(self, audit: CounterAudit | None = None) -> None:
        self._audit = audit or CounterAudit()

    async def run(self, pool: asyncpg.Pool[Any]) -> dict[str, int]:
        """Run every repair once, each in its own short transaction.

        Returns:
            Rows repaired by kind (all zero when everything is consistent).
        """
        repaired = {
            "stale_desired": _count(await pool.execute(_STALE_DESIRED)),
            "counters": await self._audit.tick(pool),
        }
        for kind, n in repaired.items():
            if n:
                RECONCILE_REPAIRS.labels(kind).inc(n)
                log.warning("reconcile repaired %d rows (%s)", n, kind)
        return repaired
