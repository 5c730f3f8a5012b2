-- Per-device retries: a device whose download, verification or apply fails is
-- told to try again (up to the policy's max_device_retries, with exponential
-- backoff) before its target counts as failed. The rule is the pure core's
-- (xdp47_common.rollout.retries); the scheduler's progress statement applies it
-- (xdp47_scheduler.pg.progress).

-- The policy fields (null: the scheduler's XDP47_SCHED_* default).
ALTER TABLE policies
    ADD COLUMN max_device_retries integer
        CHECK (max_device_retries BETWEEN 0 AND 10),
    ADD COLUMN retry_backoff_seconds integer
        CHECK (retry_backoff_seconds BETWEEN 0 AND 86400),
    ADD COLUMN retry_backoff_max_seconds integer
        CHECK (retry_backoff_max_seconds BETWEEN 1 AND 86400);

-- The target's try in this rollout attempt (1, then one more per retry; reset
-- by a rollout retry), when the device may try it (null: at once), and every
-- try that failed, oldest first, as [{attempt, code, reason, at}]. A device
-- names the try it answers (last_apply.device_attempt), so a late report of an
-- earlier try never fails the current one.
ALTER TABLE rollout_targets
    ADD COLUMN device_attempt integer NOT NULL DEFAULT 1
        CHECK (device_attempt >= 1),
    ADD COLUMN retry_after timestamptz,
    ADD COLUMN attempts jsonb NOT NULL DEFAULT '[]'::jsonb;

-- The history keeps the tries of each outcome.
ALTER TABLE rollout_target_history
    ADD COLUMN device_attempt integer,
    ADD COLUMN attempts jsonb NOT NULL DEFAULT '[]'::jsonb;

CREATE OR REPLACE FUNCTION xdp47_record_target_outcome() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollout_target_history (rollout_id, tenant, device_id, attempt,
        wave, state, reason, reason_detail, assigned_at, finished_at,
        device_attempt, attempts)
    SELECT NEW.rollout_id, NEW.tenant, NEW.device_id, r.attempt, NEW.wave,
           NEW.state, NEW.reason, NEW.reason_detail, NEW.assigned_at,
           NEW.finished_at, NEW.device_attempt, NEW.attempts
    FROM rollouts AS r WHERE r.id = NEW.rollout_id;
    RETURN NULL;
END
$$;

-- A scheduled retry changes what the device is answered (its try and when):
-- tell ingest replicas to drop the tenant's cached answers (migration 0008).
-- Only a changed try fires it; the hot moves (assigned -> applied) never set
-- the column, so they pay nothing.
CREATE TRIGGER rollout_targets_retry_scheduled
AFTER UPDATE OF device_attempt ON rollout_targets
FOR EACH ROW
WHEN (OLD.device_attempt IS DISTINCT FROM NEW.device_attempt)
EXECUTE FUNCTION xdp47_notify_desired();
