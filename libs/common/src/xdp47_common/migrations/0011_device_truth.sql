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

-- Appended by a row trigger whose WHEN clause passes only for a move into an
-- outcome, so every writer of target states (heartbeat progress, wave follow-up,
-- time-outs, release) is covered without a statement of its own, and the bulk
-- moves that reach no outcome (a wave's 100k targets becoming assigned) pay only
-- the WHEN test: no function call, no queued event (a statement trigger with
-- transition tables would copy every row of such a move twice).
CREATE FUNCTION xdp47_record_target_outcome() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollout_target_history (rollout_id, tenant, device_id, attempt,
        wave, state, reason, reason_detail, assigned_at, finished_at)
    SELECT NEW.rollout_id, NEW.tenant, NEW.device_id, r.attempt, NEW.wave,
           NEW.state, NEW.reason, NEW.reason_detail, NEW.assigned_at,
           NEW.finished_at
    FROM rollouts AS r WHERE r.id = NEW.rollout_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER rollout_targets_outcome
AFTER UPDATE OF state ON rollout_targets
FOR EACH ROW
WHEN (OLD.state IS DISTINCT FROM NEW.state
      AND NEW.state IN ('applied', 'failed', 'skipped'))
EXECUTE FUNCTION xdp47_record_target_outcome();

-- Outcomes reached before this migration, as of the rollout's current attempt.
INSERT INTO rollout_target_history (rollout_id, tenant, device_id, attempt, wave,
    state, reason, assigned_at, finished_at, recorded_at)
SELECT t.rollout_id, t.tenant, t.device_id, r.attempt, t.wave, t.state, t.reason,
       t.assigned_at, t.finished_at, coalesce(t.finished_at, now())
FROM rollout_targets AS t JOIN rollouts AS r ON r.id = t.rollout_id
WHERE t.state IN ('applied', 'failed', 'skipped');
