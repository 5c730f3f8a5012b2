"""The telemetry analysis SQL: running aggregates per rollout, wave and cohort.

``record_samples`` runs in the heartbeat batch's transaction, after the target
progress (``progress.settle_devices``), for the samples of devices whose active
target belongs to a rollout with an analysis (the heartbeat write already
returned which rollout holds each device). One statement per batch:

- each device's cohort is decided from its target as the heartbeat write
  found it (that statement probes the partial unique index of active targets
  anyway), or, for a target that was assigned, as the batch's settling moved
  it (one still assigned is not sent). ``updated`` when it applied in the
  rollout's current wave, ``baseline`` when it is pending in a later wave
  (same selector, not told yet), else none (still updating, failed, skipped,
  or applied in an earlier wave). A second probe of every device here was
  ~17 % of PostgreSQL's CPU under B1's analysed load (docs/performance.md);
- a device counts once per window (``attempt * 1000 + wave``) in ``devices``:
  its target's ``analysed_window`` is set at its first counted heartbeat there;
- the devices counted in the window already come summed by the scheduler
  (``SummedSamples``, per rollout, cohort and metric, decided by the window the
  scheduler knows): added when that window is still the rollout's current one,
  dropped otherwise. Sending each such device as a row cost ~2.4 µs of the
  scheduler's CPU to encode and ~3 µs of PostgreSQL's per heartbeat under B1's
  analysed load (docs/performance.md);
- the samples are added to ``rollout_analysis`` by relative increments, one row
  per (rollout, attempt, wave, cohort, metric), in key order;
- the statement answers each sent rollout's current window (when it runs), which
  the scheduler sums the next batch by.

Gate evaluation reads the current wave's rows (``read_observations``): a handful
of rows, never the heartbeats. Timed beside the heartbeat ``UPDATE`` on a
1,000-device batch with two metrics (loaded 2-core machine): 0.14x its time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from uuid import UUID

from pydantic import ValidationError

from xdp47_common.adapters.planning import Connection
from xdp47_common.rollout import AnalysisPolicy, Cohort, MetricAggregate, Observations
from xdp47_scheduler.ports import (
    WINDOWS_PER_ATTEMPT,
    AnalysedBeat,
    RolloutRow,
    SummedSamples,
)

__all__ = ["analysed_metrics", "read_observations", "record_samples"]

# A window is ``attempt * WINDOWS_PER_ATTEMPT + wave`` (``_WIN``). The batch
# comes as one array of ``analysed_beat`` (migration 0032), the
# ``AnalysedBeat`` tuples as they are: one per device,
# with its target's state and wave as the heartbeat write found them or the
# batch's settling moved them (``state`` is never NULL: the type allows it for
# a scheduler of the previous release, which had this statement read such a
# target again). A device is counted in ``devices`` only when
# this statement marks its target: a concurrent batch that marked it first
# fails the recheck of ``analysed_window`` on the newer row version. The mark
# finds a target by the partial unique index of active targets; its other
# conditions are wrapped in IS TRUE, which no index serves, so the plan cannot
# prefer scanning the whole rollout by ``rollout_id``. The sums ($2-$7) join
# their rollout by its primary key and count no device.
_WIN = f"r.attempt * {WINDOWS_PER_ATTEMPT} + r.current_wave"
_RECORD = f"""
WITH counted AS (
    SELECT b.tenant, b.device_id, b.rollout_id, b.metrics, b.vals, r.attempt,
           r.current_wave AS wave, {_WIN} AS win,
           b.analysed_window IS DISTINCT FROM {_WIN}
               AS first,
           CASE WHEN b.state = 'applied' AND b.wave = r.current_wave
                    THEN 'updated'
                WHEN b.state = 'pending' AND b.wave > r.current_wave
                    THEN 'baseline'
           END AS cohort
    FROM unnest($1::analysed_beat[]) AS b
    JOIN rollouts AS r ON r.id = b.rollout_id AND r.status = 'running'
    WHERE r.current_wave IS NOT NULL
), marked AS (
    UPDATE rollout_targets AS t SET analysed_window = c.win
    FROM counted AS c
    WHERE c.cohort IS NOT NULL AND c.first
      AND t.tenant = c.tenant AND t.device_id = c.device_id AND t.active
      AND (t.rollout_id = c.rollout_id
           AND t.analysed_window IS DISTINCT FROM c.win) IS TRUE
    RETURNING t.rollout_id, t.device_id
), added AS (
    SELECT c.rollout_id, c.attempt, c.wave, c.cohort, s.metric,
           (m.device_id IS NOT NULL)::int AS devices, 1 AS samples,
           s.value AS total
    FROM counted AS c
    CROSS JOIN LATERAL unnest(c.metrics, c.vals) AS s(metric, value)
    LEFT JOIN marked AS m
        ON m.rollout_id = c.rollout_id AND m.device_id = c.device_id
    WHERE c.cohort IS NOT NULL
    UNION ALL
    SELECT s.rollout_id, r.attempt, r.current_wave, s.cohort, s.metric, 0,
           s.samples, s.total
    FROM unnest($2::uuid[], $3::int[], $4::text[], $5::text[], $6::bigint[],
                $7::float8[]) AS s(rollout_id, win, cohort, metric, samples, total)
    JOIN rollouts AS r ON r.id = s.rollout_id AND r.status = 'running'
        AND {_WIN} = s.win
), written AS (
    INSERT INTO rollout_analysis AS a
        (rollout_id, attempt, wave, cohort, metric, devices, samples, total)
    SELECT rollout_id, attempt, wave, cohort, metric,
           sum(devices), sum(samples), sum(total)
    FROM added
    GROUP BY rollout_id, attempt, wave, cohort, metric
    ORDER BY rollout_id, attempt, wave, cohort, metric
    ON CONFLICT (rollout_id, attempt, wave, cohort, metric) DO UPDATE SET
        devices = a.devices + excluded.devices,
        samples = a.samples + excluded.samples,
        total = a.total + excluded.total
)
SELECT r.id, {_WIN} AS win FROM rollouts AS r
WHERE r.id = ANY($8::uuid[]) AND r.status = 'running'
  AND r.current_wave IS NOT NULL
"""  # nosec B608 (constants only)

_READ = """
SELECT cohort, metric, devices, samples, total FROM rollout_analysis
WHERE rollout_id = $1 AND attempt = $2 AND wave = $3
"""

_POLICIES = """
SELECT id, (effective_policy->'analysis')::text AS analysis FROM rollouts
WHERE id = ANY($1::uuid[])
"""


async def record_samples(
    conn: Connection,
    beats: Sequence[AnalysedBeat],
    sums: Sequence[SummedSamples],
    rollouts: Sequence[UUID],
) -> dict[UUID, int]:
    """Add ``beats`` and ``sums`` to the running aggregates; call in the batch's
    transaction. The current window of each of ``rollouts`` that is running."""
    if not beats and not sums:
        return {}
    rows = await conn.fetch(
        _RECORD,
        beats,
        [s.rollout_id for s in sums],
        [s.window for s in sums],
        [s.cohort for s in sums],
        [s.metric for s in sums],
        [s.samples for s in sums],
        [s.total for s in sums],
        rollouts,
    )
    return {r["id"]: r["win"] for r in rows}


async def read_observations(conn: Connection, row: RolloutRow) -> Observations:
    """The aggregates of the rollout's current wave in its current attempt."""
    if row.current_wave is None or row.attempt < 1:
        return {}
    rows = await conn.fetch(_READ, row.id, row.attempt, row.current_wave)
    return {
        (Cohort(r["cohort"]), r["metric"]): MetricAggregate(
            devices=r["devices"], samples=r["samples"], total=r["total"]
        )
        for r in rows
    }


async def analysed_metrics(
    conn: Connection, rollout_ids: Sequence[UUID]
) -> dict[UUID, frozenset[str]]:
    """The metrics each rollout's kept policy analyses; empty without analysis
    (and for a rollout not started, or whose stored analysis no longer parses)."""
    found: dict[UUID, frozenset[str]] = dict.fromkeys(rollout_ids, frozenset())
    for r in await conn.fetch(_POLICIES, list(rollout_ids)):
        if r["analysis"] is None or r["analysis"] == "null":
            continue
        try:
            analysis = AnalysisPolicy.model_validate(json.loads(r["analysis"]))
        except (ValidationError, ValueError):
            continue
        found[r["id"]] = frozenset(analysis.metrics)
    return found
