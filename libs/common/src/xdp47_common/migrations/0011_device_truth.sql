-- Per-device truth: why a target failed, what a device reported lately, and the
-- history of every target of every attempt.

-- rollout_targets.reason is a code (a FailureCode the agent reported, or the
-- scheduler's own: unhealthy, timed_out, offline, aborted, rollout_<status>);
-- reason_detail is the bounded message beside it (the agent's text, or the
-- metric values that made a device unhealthy).
ALTER TABLE rollout_targets ADD COLUMN reason_detail text
    CHECK (length(reason_detail) <= 500);

-- The last few heartbeats of a device, newest first, as a JSON array of
-- {seq, at, health, metrics}: written by the scheduler's batched heartbeat
-- statement itself (no statement or round trip of its own); its length is
-- xdp47_scheduler.heartbeats.RECENT_HEARTBEATS.
ALTER TABLE devices ADD COLUMN recent_heartbeats jsonb;

-- One row each time a target reaches an outcome (applied, failed, skipped), with
-- the rollout's attempt at that moment. A retry resets failed and skipped targets
-- to pending in place, so rollout_targets alone forgets earlier attempts; this
-- table keeps them. Pending and assigned targets are read from rollout_targets.
CREATE TABLE rollout_target_history (
    id             bigserial PRIMARY KEY,
    rollout_id     uuid NOT NULL,
    tenant         text NOT NULL,
    device_id      text NOT NULL,
    attempt        integer NOT NULL CHECK (attempt >= 1),
    wave           integer NOT NULL CHECK (wave >= 1),
    state          text NOT NULL CHECK (state IN ('applied', 'failed', 'skipped')),
    reason         text,
    reason_detail  text,
    assigned_at    timestamptz,
    finished_at    timestamptz,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rollout_target_history_device
    ON rollout_target_history (tenant, device_id, id);

-- Appended by a statement-level trigger with transition tables, so every writer
-- of target states (heartbeat progress, wave follow-up, time-outs, release) is
-- covered without a statement of its own, set-based: one INSERT per UPDATE
-- statement, whatever its row count. Statements that move no target to an
-- outcome insert nothing.
CREATE FUNCTION xdp47_record_target_outcomes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollout_target_history (rollout_id, tenant, device_id, attempt,
        wave, state, reason, reason_detail, assigned_at, finished_at)
    SELECT n.rollout_id, n.tenant, n.device_id, r.attempt, n.wave, n.state,
           n.reason, n.reason_detail, n.assigned_at, n.finished_at
    FROM new_targets AS n
    JOIN old_targets AS o
      ON o.rollout_id = n.rollout_id AND o.device_id = n.device_id
    JOIN rollouts AS r ON r.id = n.rollout_id
    WHERE n.state IN ('applied', 'failed', 'skipped')
      AND o.state IS DISTINCT FROM n.state;
    RETURN NULL;
END
$$;

CREATE TRIGGER rollout_targets_outcomes
AFTER UPDATE ON rollout_targets
REFERENCING OLD TABLE AS old_targets NEW TABLE AS new_targets
FOR EACH STATEMENT EXECUTE FUNCTION xdp47_record_target_outcomes();

-- Outcomes reached before this migration, as of the rollout's current attempt.
INSERT INTO rollout_target_history (rollout_id, tenant, device_id, attempt, wave,
    state, reason, assigned_at, finished_at, recorded_at)
SELECT t.rollout_id, t.tenant, t.device_id, r.attempt, t.wave, t.state, t.reason,
       t.assigned_at, t.finished_at, coalesce(t.finished_at, now())
FROM rollout_targets AS t JOIN rollouts AS r ON r.id = t.rollout_id
WHERE t.state IN ('applied', 'failed', 'skipped');
