"""Late joiners: devices that start matching a running rollout after the wave
their rank falls in was written (claimed, relabelled, joined its dynamic group,
freed by another rollout).

A device whose rank falls in a wave not written yet simply joins that wave when
it is written (``adapters.planning``); one whose wave is written was left out
until the policy's ``late_joiners`` said otherwise. The timer (every
``XDP47_SCHED_LATE_JOIN_INTERVAL``) gives each such device of a running,
unheld rollout a target marked ``late`` (under ``skip_offline``, once it is
online: a device not heard from yet joins at a later look): in the current wave
(``current_wave``: told at once, judged by this wave's gate), in the last wave
(``last_wave``: once the last wave is written; told when it starts) or none
(``ignore``). The wave's count grows with it (the run's ``eligible`` for the
current wave, ``rollout_waves.pending`` for a later one), so the gate waits
for it like any other device. Rollbacks take no late joiners.
"""

from __future__ import annotations

from xdp47_common.adapters.planning import (
    RANK_KEY,
    Connection,
    PlanningForm,
    by_form,
    candidate_filter,
    planning_form,
    reserving_cte,
)
from xdp47_scheduler.pg.rollouts import LOCK_PLAN

__all__ = ["join_late"]

# Running rollouts that take late joiners now, and the wave they join.
_TAKING = """
SELECT r.id, r.tenant, r.attempt, r.current_wave,
       CASE WHEN r.effective_policy->>'late_joiners' = 'current_wave'
            THEN r.current_wave ELSE r.waves END AS join_wave,
       coalesce((r.effective_policy->>'skip_offline')::boolean, true) AS skip
FROM rollouts AS r JOIN rollout_plans AS p ON p.rollout_id = r.id
WHERE r.status = 'running' AND r.hold IS NULL AND r.kind <> 'rollback'
  AND r.current_wave IS NOT NULL
  AND r.effective_policy->>'late_joiners' IN ('current_wave', 'last_wave')
  AND (r.effective_policy->>'late_joiners' = 'current_wave'
       OR p.materialised >= r.waves)
ORDER BY r.id
"""


# Ingest's cached answers: a joiner of the running wave is told at once, so
# the transaction names the rollout, the wave and ``late`` (each ingest replica
# drops the entries of that wave's late targets only, ``xdp47_ingest.notices``);
# a joiner of a later wave is told when that wave starts, whose notification
# drops it with the rest of its wave, so nothing is sent now. A tenant-wide drop
# here, at every look that found a joiner, kept a growing million-device
# tenant's cache empty.
#
# Today's candidates whose rank falls in a written wave and that have no target
# of this rollout (a device it skipped or released does not join again), in
# each ``PlanningForm``; under skip_offline ($8) only online ones: a device
# claimed a moment ago is ``unknown`` until its first heartbeat, and the
# wave-start follow-up would skip it offline (out of ``eligible``) for good. It
# joins at a later look instead.
def _join_sql(form: PlanningForm) -> str:
    return f"""
WITH plan AS (
    SELECT firsts, materialised FROM rollout_plans WHERE rollout_id = $1
), {reserving_cte("$1", "$2")}, joined AS (
    INSERT INTO rollout_targets (rollout_id, tenant, device_id, wave, state, active,
                                 from_artifact_id, late)
    SELECT $1, d.tenant, d.id, $5, 'pending', true, d.current_artifact_id, true
    FROM plan CROSS JOIN devices AS d
    CROSS JOIN LATERAL (SELECT width_bucket({RANK_KEY}, plan.firsts) AS wave) AS w
    WHERE {candidate_filter("$1", "$2", "$3", "$4", form)}
      AND w.wave <= plan.materialised
      AND (NOT $8 OR d.status = 'online')
      AND NOT EXISTS (SELECT 1 FROM rollout_targets AS o
                      WHERE o.rollout_id = $1 AND o.device_id = d.id)
    ON CONFLICT DO NOTHING
    RETURNING 1
), counted AS (
    SELECT count(*) AS n FROM joined
), eligible AS (
    UPDATE rollout_runs SET eligible = eligible + c.n FROM counted AS c
    WHERE c.n > 0 AND $5 = $6 AND rollout_id = $1 AND attempt = $7 AND wave = $5
), pending AS (
    UPDATE rollout_waves SET pending = pending + c.n FROM counted AS c
    WHERE c.n > 0 AND rollout_id = $1 AND wave = $5
)
SELECT c.n, CASE WHEN c.n > 0 AND $5 <= $6 THEN pg_notify(
    'xdp47_desired', format('%s %s %s %s late', $2, $1, $5 - 1, $5)) END
FROM counted AS c
"""  # nosec B608 (constants only)


_JOIN = by_form(_join_sql)

# The rollout's row lock, then its plan's (the lock order of a wave start): a
# join never races a gate evaluation, a wave start or the rollout's end.
_LOCK = """
SELECT tenant, channel, selector::text AS selector, current_wave, attempt
FROM rollouts
WHERE id = $1 AND status = 'running' AND hold IS NULL AND current_wave = $2
FOR UPDATE
"""


async def join_late(conn: Connection) -> int:
    """Give every running rollout's late joiners their targets; how many."""
    total = 0
    for r in await conn.fetch(_TAKING):
        async with conn.transaction():
            target = await conn.fetchrow(_LOCK, r["id"], r["current_wave"])
            if target is None:  # moved on since: the next round sees it
                continue
            await conn.fetchval(LOCK_PLAN, r["id"])
            form = await planning_form(conn, r["id"])
            row = await conn.fetchrow(
                _JOIN[form],
                r["id"],
                target["tenant"],
                target["channel"],
                target["selector"],
                r["join_wave"],
                r["current_wave"],
                max(r["attempt"], 1),
                r["skip"],
            )
            total += int(row["n"]) if row is not None else 0
    return total
