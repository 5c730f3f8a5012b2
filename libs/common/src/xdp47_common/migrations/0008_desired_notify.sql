-- Tell ingest replicas when what a device is answered may have changed.
--
-- Ingest keeps each credential's identity and desired state in memory
-- (xdp47_ingest.cache) and drops a tenant's entries when it hears
-- NOTIFY xdp47_desired '<tenant>'. NOTIFY is transactional: it is delivered with
-- the commit that made the change and never for a rolled-back one, so no code
-- path has to remember to send it. The triggers fire only on the changes that
-- alter the read-time definition of desired state (xdp47_common.adapters.desired)
-- or a credential's owner; heartbeats, counters and target progress
-- (assigned -> applied / failed) do not, so the hot paths pay nothing.
--
--   rollouts:  status, current_wave, attempt or artifact changed; deleted
--   devices:   credential changed (claim, rotation), kept desired cleared
--              (release after abort, reconcile repair), deleted
--   artifacts: any update or delete (rare: the upload fills in a draft row)

CREATE FUNCTION xdp47_notify_desired() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- PostgreSQL folds identical notifications of one transaction into one.
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('xdp47_desired', OLD.tenant);
        RETURN OLD;
    END IF;
    PERFORM pg_notify('xdp47_desired', NEW.tenant);
    RETURN NEW;
END
$$;

CREATE TRIGGER rollouts_desired_changed
AFTER UPDATE OF status, current_wave, attempt, artifact_id ON rollouts
FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status
      OR OLD.current_wave IS DISTINCT FROM NEW.current_wave
      OR OLD.attempt IS DISTINCT FROM NEW.attempt
      OR OLD.artifact_id IS DISTINCT FROM NEW.artifact_id)
EXECUTE FUNCTION xdp47_notify_desired();

CREATE TRIGGER rollouts_deleted
AFTER DELETE ON rollouts
FOR EACH ROW EXECUTE FUNCTION xdp47_notify_desired();

CREATE TRIGGER devices_credential_changed
AFTER UPDATE OF credential_hash ON devices
FOR EACH ROW
WHEN (OLD.credential_hash IS DISTINCT FROM NEW.credential_hash)
EXECUTE FUNCTION xdp47_notify_desired();

CREATE TRIGGER devices_desired_cleared
AFTER UPDATE OF desired_artifact_id ON devices
FOR EACH ROW
WHEN (OLD.desired_artifact_id IS NOT NULL AND NEW.desired_artifact_id IS NULL)
EXECUTE FUNCTION xdp47_notify_desired();

CREATE TRIGGER devices_deleted
AFTER DELETE ON devices
FOR EACH ROW EXECUTE FUNCTION xdp47_notify_desired();

CREATE TRIGGER artifacts_changed
AFTER UPDATE OR DELETE ON artifacts
FOR EACH ROW EXECUTE FUNCTION xdp47_notify_desired();
