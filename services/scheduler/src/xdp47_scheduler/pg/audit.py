"""The counter audit of the reconcile loop: a bounded slice of targets per tick.

A running wave's pending counter (``eligible - succeeded - failed``) must equal its
targets told and not judged (``assigned``, or ``pending`` before the wave-start
follow-up moved them, and active). Counting them every tick costs the wave's size
every tick; instead each tick reads one slice of at most ``slice_rows`` targets of
one running rollout, in primary-key order (``rollout_id, device_id``), and adds up
the open ones of the current wave. When the walk reaches the rollout's last target
the sum is compared with the counter:

- during a run the open set only shrinks (targets move from pending or assigned
  to an outcome, never back; a retry or a new wave is a new run and restarts the
  walk), so a consistent counter read when the walk began (``before``) and when it
  ended (``after``) brackets the sum: ``after <= sum <= before``;
- a sum outside that bracket is drift: the run is recounted from its targets by
  the full statement (``_RECOUNT``), which counts once more and repairs only if
  the disagreement is still there.

Per tick the statements read the running rollouts' run rows and at most
``slice_rows`` target rows, whatever the wave sizes; a full check of a rollout
takes ``targets / slice_rows`` ticks (rotating between running rollouts). A drift
smaller than what moved during one walk is seen by a later walk (once the wave
quietens, which is when a wrong counter holds it open).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

__all__ = ["SLICE_ROWS", "CounterAudit"]

SLICE_ROWS = 2000

# The current run of every running rollout (index ``rollouts_running``, then the
# run's primary key): one row per running rollout.
_RUNS = """
SELECT rr.rollout_id, rr.attempt, rr.wave,
       rr.eligible - rr.succeeded - rr.failed AS open
FROM rollouts AS r
JOIN rollout_runs AS rr ON rr.rollout_id = r.id AND rr.attempt = r.attempt
                       AND rr.wave = r.current_wave
WHERE r.status = 'running' AND rr.finished_at IS NULL
ORDER BY rr.rollout_id
"""

# One slice: the next ``$4`` targets of the rollout after ``$2`` in primary-key order.
_SLICE = """
WITH s AS (
    SELECT t.device_id, t.wave, t.state, t.active FROM rollout_targets AS t
    WHERE t.rollout_id = $1 AND t.device_id > $2
    ORDER BY t.device_id
    LIMIT $4
)
SELECT count(*) AS visited, max(device_id) AS last,
       count(*) FILTER (WHERE wave = $3 AND state IN ('assigned', 'pending')
                          AND active) AS open
FROM s
"""

# The repair of one rollout's current run: recounted from the targets of that
# wave's start (``assigned_at = run.started_at``, or pending), if its pending
# counter still disagrees with a full count.
_RECOUNT = """
WITH cur AS (
    SELECT rr.rollout_id, rr.attempt, rr.wave, rr.started_at
    FROM rollouts AS r
    JOIN rollout_runs AS rr ON rr.rollout_id = r.id AND rr.attempt = r.attempt
                           AND rr.wave = r.current_wave
    WHERE r.id = $1 AND r.status = 'running' AND rr.finished_at IS NULL
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

Run = tuple[UUID, int, int]  # rollout, attempt, wave


@dataclass
class _Walk:
    before: int  # the run's pending counter when the walk began
    after: str = ""  # the last device_id read
    open: int = 0  # open targets of the wave read so far


class CounterAudit:
    """Walks running rollouts' targets a slice per tick; one per scheduler process.

    A restart, or another scheduler doing the same, only repeats work: the state
    is where the walks are, and a repair re-checks with a full count.
    """

    def __init__(self, slice_rows: int = SLICE_ROWS) -> None:
        self._slice_rows = slice_rows
        self._walks: dict[Run, _Walk] = {}
        self._last: Run | None = None

    async def tick(self, pool: asyncpg.Pool[Any]) -> int:
        """Read one slice; recount a run whose walk ended outside its bracket.

        Returns:
            Run rows repaired (0 or 1).
        """
        counters: dict[Run, int] = {
            (r["rollout_id"], r["attempt"], r["wave"]): r["open"]
            for r in await pool.fetch(_RUNS)
        }
        self._walks = {k: w for k, w in self._walks.items() if k in counters}
        if not counters:
            self._last = None
            return 0
        order = sorted(counters)
        nxt = [k for k in order if self._last is None or k > self._last]
        run = nxt[0] if nxt else order[0]
        self._last = run
        walk = self._walks.setdefault(run, _Walk(before=counters[run]))
        rollout_id, _, wave = run
        r = await pool.fetchrow(_SLICE, rollout_id, walk.after, wave, self._slice_rows)
        assert r is not None  # an aggregate always returns a row
        walk.open += r["open"]
        if r["visited"] == self._slice_rows:
            walk.after = r["last"]
            return 0
        del self._walks[run]
        # Re-read: the counter may have moved while this slice was read.
        after = await pool.fetchval(
            "SELECT eligible - succeeded - failed FROM rollout_runs "
            "WHERE rollout_id = $1 AND attempt = $2 AND wave = $3",
            *run,
        )
        lo, hi = sorted((walk.before, counters[run] if after is None else after))
        if lo <= walk.open <= hi:
            return 0
        return int((await pool.execute(_RECOUNT, rollout_id)).rsplit(" ", 1)[1])
