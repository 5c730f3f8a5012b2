"""Target progress: devices told to update become applied or failed, set-based.

Level-triggered: a target moves by what its device reports now, whichever heartbeat
brought it. An ``assigned`` target of a running rollout becomes

- ``applied`` when the device runs the rollout's artifact and, under
  ``require_ok``, reports health ``ok``;
- ``failed`` with the device's reason when its last apply of that artifact failed
  and that report is new since the wave started (``baseline_apply``), so an old
  failure does not fail a retry;
- ``failed`` with reason ``unhealthy`` when it runs the artifact but reports
  ``failing`` under ``require_ok``.

The same statement adds the moves to the counters of the current attempt's run,
in the transaction of the device write, so gates read counters and never count a
wave. Two entry points: the heartbeat hook (the changed devices) and a wave start
(devices that already run the artifact count at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from xdp47_common.adapters.planning import Connection

__all__ = ["settle_devices", "settle_wave"]

_MOVE = """
judged AS (
    SELECT s.rollout_id, s.device_id,
        CASE
            WHEN d.current_artifact_id = r.artifact_id
                 AND (NOT p.require_ok OR d.health = 'ok') THEN 'applied'
            WHEN d.last_apply->>'result' = 'failed'
                 AND d.last_apply->>'artifact_id' = r.artifact_id::text
                 AND d.last_apply IS DISTINCT FROM s.baseline_apply THEN 'failed'
            WHEN p.require_ok AND d.current_artifact_id = r.artifact_id
                 AND d.health = 'failing' THEN 'failed'
        END AS state,
        CASE
            WHEN d.current_artifact_id = r.artifact_id
                 AND (NOT p.require_ok OR d.health = 'ok') THEN NULL
            WHEN d.last_apply->>'result' = 'failed'
                 AND d.last_apply->>'artifact_id' = r.artifact_id::text
                 AND d.last_apply IS DISTINCT FROM s.baseline_apply
                THEN left(coalesce(nullif(d.last_apply->>'reason', ''),
                                   'apply_failed'), 500)
            ELSE 'unhealthy'
        END AS reason
    FROM scope AS s
    JOIN rollouts AS r ON r.id = s.rollout_id AND r.status = 'running'
    CROSS JOIN LATERAL (
        SELECT coalesce((r.effective_policy->>'require_ok')::boolean, true)
            AS require_ok
    ) AS p
    JOIN devices AS d ON d.tenant = s.tenant AND d.id = s.device_id
), moved AS (
    UPDATE rollout_targets AS t
    SET state = j.state, reason = j.reason, finished_at = now()
    FROM judged AS j
    WHERE j.state IS NOT NULL AND t.rollout_id = j.rollout_id
      AND t.device_id = j.device_id AND t.state = 'assigned' AND t.active
    RETURNING t.rollout_id, t.wave, t.state
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
"""

_BY_DEVICES = (
    """
WITH scope AS (
    SELECT t.rollout_id, t.tenant, t.device_id, t.baseline_apply
    FROM unnest($1::text[], $2::text[]) AS c(tenant, device_id)
    JOIN rollout_targets AS t ON t.tenant = c.tenant AND t.device_id = c.device_id
    WHERE t.active AND t.state = 'assigned'
), """
    + _MOVE
)

_BY_WAVE = (
    """
WITH scope AS (
    SELECT t.rollout_id, t.tenant, t.device_id, t.baseline_apply
    FROM rollout_targets AS t
    WHERE t.rollout_id = $1 AND t.wave = $2 AND t.state = 'assigned' AND t.active
), """
    + _MOVE
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


async def settle_wave(conn: Connection, rollout_id: UUID, wave: int) -> bool:
    """Move the targets of one wave by their devices' current state.

    Returns:
        Whether any target moved.
    """
    rows = await conn.fetch(_BY_WAVE, rollout_id, wave)
    return bool(rows)
