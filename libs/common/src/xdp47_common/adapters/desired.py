"""What a device should run: the one SQL definition of "desired", read-time derived.

Starting a wave only moves ``rollouts.current_wave``; nobody writes the wave's
devices at that moment. A device's desired artifact is derived whenever it is
read, by ingest (the device's own poll and heartbeat answer), the API and the UI,
all with the fragments below over ``devices AS d``:

1. **live**: the device's active target (the partial unique index
   ``rollout_targets_one_active``, one probe) whose rollout is ``running`` and has
   reached the target's wave (``wave <= current_wave``; a retry restarts at wave
   1, so a later wave's re-planned targets wait for it again). The target's
   artifact (a rollback's targets each carry the device's previous one), else
   its rollout's, is desired when the target is ``assigned``, ``applied`` or ``failed``
   (as when the column was written at wave start), or still ``pending`` after
   the flip (not yet moved by the scheduler's follow-up) unless the rollout skips
   offline devices and this one is not ``online``: the follow-up will mark it
   ``skipped``, so it is never told.
2. otherwise **kept**: ``devices.desired_artifact_id`` / ``desired_rollout_id``,
   which the scheduler writes when a target becomes ``applied`` and, when the
   rollout ends, for devices that run its artifact without an applied target
   (judged unhealthy, or not judged yet): the device keeps naming the version it
   updated to after the rollout ends.

A rollout with maintenance windows answers from (2) while the device's window is
closed, with when it opens (``DESIRED_WINDOW_OPENS``).

So abort and failure take effect with the commit that changes the rollout's
status: a device that did not apply the artifact is answered from (2), which
never names that rollout, and a device that applied it keeps it; none falls back
to a version an earlier rollout gave it.
"""

from __future__ import annotations

__all__ = [
    "DESIRED_ARTIFACT",
    "DESIRED_ATTEMPT",
    "DESIRED_DEVICE_ATTEMPT",
    "DESIRED_JOIN",
    "DESIRED_RETRY_AFTER",
    "DESIRED_ROLLBACK",
    "DESIRED_ROLLOUT",
    "DESIRED_WINDOW_OPENS",
    "DEVICE_ZONE",
    "target_state",
]

# The zone key of ``devices AS d``: the zone its agent reports, else its
# ``timezone`` label, else '' (the tenant's default). ``rollout_windows`` has a
# row per key the scheduler knows.
DEVICE_ZONE = "coalesce(d.timezone, d.labels->>'timezone', '')"

# LEFT JOIN LATERALs over ``devices AS d`` giving ``cand`` (the live target
# whatever its window) and ``live(artifact_id, rollout_id, attempt, rollback,
# device_attempt, retry_after)``, the same row only while the device may be told:
# a rollout with maintenance windows (``rollouts.windowed``) tells a device only
# while the window of its zone is open (``rollout_windows``, kept per zone by the
# scheduler: the device's reported zone, else its ``timezone`` label, else ''
# for the tenant's default; a zone without a row, not an IANA name, reads the
# default's). Rollouts without windows never read ``rollout_windows``.
DESIRED_JOIN = f"""
LEFT JOIN LATERAL (
    SELECT coalesce(t.artifact_id, r.artifact_id) AS artifact_id,
           r.id AS rollout_id, r.attempt, r.kind = 'rollback' AS rollback,
           t.device_attempt, t.retry_after,
           (NOT r.windowed OR coalesce(win.open, false)) AS told,
           win.next_open AS window_opens_at
    FROM rollout_targets AS t
    JOIN rollouts AS r ON r.id = t.rollout_id
    LEFT JOIN LATERAL (
        SELECT w.open, w.next_open FROM rollout_windows AS w
        WHERE r.windowed AND w.rollout_id = r.id
          AND w.zone IN ({DEVICE_ZONE}, '')
        ORDER BY w.zone = '' LIMIT 1
    ) AS win ON true
    WHERE t.tenant = d.tenant AND t.device_id = d.id AND t.active
      AND r.status = 'running' AND t.wave <= r.current_wave
      AND (t.state IN ('assigned', 'applied', 'failed')
           OR (t.state = 'pending'
               AND (d.status = 'online'
                    OR NOT coalesce((r.effective_policy->>'skip_offline')::boolean,
                                    true))))
) AS cand ON true
LEFT JOIN LATERAL (SELECT cand.* WHERE cand.told) AS live ON true
"""  # nosec B608 (constants only)
# A rollout keeps its effective policy from its start (``effective_policy``); the
# fallback, for a running rollout without one, is the default of
# XDP47_SCHED_SKIP_OFFLINE (true), as in the scheduler's wave-start follow-up.
# The desired artifact and the rollout that asks for it (NULL: nothing desired).
DESIRED_ARTIFACT = "coalesce(live.artifact_id, d.desired_artifact_id)"
DESIRED_ROLLOUT = (
    "CASE WHEN live.artifact_id IS NULL THEN d.desired_rollout_id "
    "ELSE live.rollout_id END"
)
# The attempt of the running rollout that asks (NULL for a kept desired state;
# 0, never started, is NULL too: the answer's attempt is at least 1).
DESIRED_ATTEMPT = "nullif(live.attempt, 0)"
# Whether a running rollback asks (the agent's downgrade guard lets it through);
# a kept desired state names what the device already applied: false.
DESIRED_ROLLBACK = "coalesce(live.rollback, false)"
# The device's own try at its live target (per-device retries,
# ``xdp47_common.rollout.retries``) and when it may make it; NULL for a kept
# desired state. Named only with a rollout attempt: a try belongs to one.
DESIRED_DEVICE_ATTEMPT = (
    "CASE WHEN nullif(live.attempt, 0) IS NOT NULL THEN live.device_attempt END"
)
DESIRED_RETRY_AFTER = (
    "CASE WHEN nullif(live.attempt, 0) IS NOT NULL THEN live.retry_after END"
)
# When the device's window next opens, while a running rollout waits for it
# (NULL otherwise): the answer says nothing new and when to come back.
DESIRED_WINDOW_OPENS = "CASE WHEN cand.told IS FALSE THEN cand.window_opens_at END"


def target_state(t: str = "t", r: str = "r") -> str:
    """A target's state as devices experience it (alias ``t`` of rollout_targets,
    ``r`` of its rollout): a ``pending`` target of a wave its running rollout has
    reached is ``assigned`` (told), though the scheduler moves the row itself
    shortly after the wave starts."""
    return (
        f"CASE WHEN {t}.state = 'pending' AND {t}.active AND {r}.status = 'running' "
        f"AND {t}.wave <= {r}.current_wave THEN 'assigned' ELSE {t}.state END"
    )
