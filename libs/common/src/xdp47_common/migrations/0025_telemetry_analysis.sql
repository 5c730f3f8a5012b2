-- Telemetry analysis (policy field ``analysis``): a policy's checks, and the
-- running aggregates the scheduler keeps per rollout, attempt, wave, cohort and
-- metric as heartbeat batches arrive, so gate evaluation never reads raw
-- heartbeats.

-- {"checks": ["error_rate: updated - baseline <= 0.02", ...], "min_devices": 3,
--  "metrics": [...]} as the API validated it (xdp47_common.rollout.analysis).
ALTER TABLE policies ADD COLUMN analysis jsonb;

-- One row per (rollout, attempt, wave, cohort, metric): ``devices`` that
-- reported the metric in the wave's window, ``samples`` (heartbeats) and their
-- ``total``. ``updated``: the wave's applied devices; ``baseline``: the
-- rollout's devices of a later wave, not told yet. Written by the heartbeat
-- batch's transaction (xdp47_scheduler.pg.analysis), with relative increments.
-- No foreign key: only the scheduler writes it, for rollouts it runs (as
-- rollout_waves).
CREATE TABLE rollout_analysis (
    rollout_id  uuid NOT NULL,
    attempt     integer NOT NULL CHECK (attempt >= 1),
    wave        integer NOT NULL CHECK (wave >= 1),
    cohort      text NOT NULL CHECK (cohort IN ('updated', 'baseline')),
    metric      text NOT NULL CHECK (length(metric) <= 64),
    devices     integer NOT NULL DEFAULT 0 CHECK (devices >= 0),
    samples     bigint NOT NULL DEFAULT 0 CHECK (samples >= devices),
    total       double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (rollout_id, attempt, wave, cohort, metric)
);

-- The window (attempt * 1000 + wave; waves are at most 100) in which the
-- target's device was last counted in ``rollout_analysis.devices``: a device
-- counts once per window, at its first heartbeat there. Not indexed, so the
-- once-per-window write stays a HOT update.
ALTER TABLE rollout_targets ADD COLUMN analysed_window integer;

-- A wave whose analysis could not be judged (too few devices on a side) holds
-- the rollout `analysis_inconclusive` until an operator resumes it.
ALTER TABLE rollouts DROP CONSTRAINT rollouts_hold_check;
ALTER TABLE rollouts ADD CONSTRAINT rollouts_hold_check
    CHECK (hold IN ('paused', 'awaiting_approval', 'analysis_inconclusive'));
