-- Indexes the scheduler's set-based statements need at fleet scale.

-- Terminal clean-up, retry and reconcile select a rollout's targets by state
-- (e.g. the few not applied) without reading every target of a large wave.
CREATE INDEX rollout_targets_state ON rollout_targets (rollout_id, state);

-- Reconcile finds devices whose desired state points at a given rollout.
CREATE INDEX devices_desired_rollout ON devices (desired_rollout_id)
    WHERE desired_rollout_id IS NOT NULL;

-- The device's last_apply when its wave started: a failure report identical to it
-- is an old one (e.g. from before a retry), not a new failure of this attempt.
ALTER TABLE rollout_targets ADD COLUMN baseline_apply jsonb;
