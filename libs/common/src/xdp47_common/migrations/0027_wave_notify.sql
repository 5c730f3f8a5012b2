-- A wave's start tells ingest which devices it changes, not only which tenant.
--
-- Migration 0008 sends NOTIFY xdp47_desired '<tenant>' for every rollout change
-- that alters what devices are answered, and each ingest replica then drops all
-- of that tenant's cached answers. A running rollout moving on to its next wave
-- changes the answer of that wave's devices only (xdp47_common.adapters.desired:
-- a target is live once its wave <= current_wave; earlier waves were live
-- already, later ones are not yet, other rollouts are untouched). At a million
-- devices in one tenant, a tenant-wide drop at every wave start made every
-- device's next request a database read. For that one change the payload is
-- '<tenant> <rollout id> <previous wave> <new wave>': each replica drops the
-- credentials of the targets in waves (previous, new] (xdp47_ingest.cache).
-- A draft's start is the same change from wave 0 (a draft tells nobody). Every
-- other change (an end, a retry, an artifact, a wave going back) still sends
-- the tenant alone.

CREATE FUNCTION xdp47_notify_rollout() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND OLD.status = 'running' AND NEW.status = 'running'
       AND OLD.attempt = NEW.attempt
       AND OLD.artifact_id IS NOT DISTINCT FROM NEW.artifact_id
       AND OLD.current_wave IS NOT NULL
       AND NEW.current_wave > OLD.current_wave THEN
        PERFORM pg_notify(
            'xdp47_desired',
            format('%s %s %s %s', NEW.tenant, NEW.id, OLD.current_wave,
                   NEW.current_wave));
        RETURN NEW;
    END IF;
    -- A draft has told nobody: its start changes the answer of the waves it
    -- starts with only (0, current_wave].
    IF TG_OP = 'UPDATE'
       AND OLD.status = 'draft' AND NEW.status = 'running'
       AND OLD.artifact_id IS NOT DISTINCT FROM NEW.artifact_id
       AND NEW.current_wave > 0 THEN
        PERFORM pg_notify(
            'xdp47_desired',
            format('%s %s %s %s', NEW.tenant, NEW.id, 0, NEW.current_wave));
        RETURN NEW;
    END IF;
    -- A NULL in the test above lands here too: the tenant-wide drop is safe.
    PERFORM pg_notify('xdp47_desired', NEW.tenant);
    RETURN NEW;
END
$$;

DROP TRIGGER rollouts_desired_changed ON rollouts;
CREATE TRIGGER rollouts_desired_changed
AFTER UPDATE OF status, current_wave, attempt, artifact_id ON rollouts
FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status
      OR OLD.current_wave IS DISTINCT FROM NEW.current_wave
      OR OLD.attempt IS DISTINCT FROM NEW.attempt
      OR OLD.artifact_id IS DISTINCT FROM NEW.artifact_id)
EXECUTE FUNCTION xdp47_notify_rollout();
