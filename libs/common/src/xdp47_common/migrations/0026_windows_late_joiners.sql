-- Maintenance windows in each device's time zone, and late joiners.
--
-- A policy's ``maintenance_windows`` (weekly ranges such as 'Mon-Fri 01:00-05:00',
-- validated by xdp47_common.rollout.windows) keep a started wave's devices from
-- being told outside their window; ``late_joiners`` says what a device that
-- starts matching a running rollout after its wave was written gets
-- (current_wave, last_wave, ignore). NULL: the default (no windows; last_wave).
ALTER TABLE policies
    ADD COLUMN maintenance_windows text[]
        CHECK (cardinality(maintenance_windows) <= 20),
    ADD COLUMN late_joiners text
        CHECK (late_joiners IN ('current_wave', 'last_wave', 'ignore'));

-- The zone a device's agent reports (XDP47_DEVICE_TIMEZONE); else its
-- ``timezone`` label; else its tenant's default; else UTC.
ALTER TABLE devices ADD COLUMN timezone text CHECK (length(timezone) <= 64);
ALTER TABLE tenants ADD COLUMN default_timezone text
    CHECK (length(default_timezone) <= 64);

-- The window per (rollout, zone), kept by the scheduler's timer for every zone
-- zoneinfo knows ('' is the tenant's default zone): whether it is ``open``,
-- since when, when it next changes (``changes_at``: the timer recomputes the
-- rows that are due), when it next opens, ``resolved``: the zone it was computed
-- in ('' and unknown names: the tenant's default or UTC), and ``wave_opened``:
-- when the window first opened at or after the current wave's start
-- (``wave_started``), from which the wave's deadline counts for the zone's
-- devices. The desired state reads
-- ``open`` (one index probe per device of a rollout with windows).
CREATE TABLE rollout_windows (
    rollout_id   uuid NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    zone         text NOT NULL,
    tenant       text NOT NULL,
    open         boolean NOT NULL,
    since        timestamptz,
    changes_at   timestamptz,
    next_open    timestamptz,
    wave_started timestamptz,
    resolved     text NOT NULL,
    wave_opened  timestamptz,
    PRIMARY KEY (rollout_id, zone)
);
CREATE INDEX rollout_windows_due ON rollout_windows (changes_at);

-- A window that opens or closes changes what the zone's devices are answered.
CREATE TRIGGER rollout_windows_written
AFTER INSERT ON rollout_windows
FOR EACH ROW EXECUTE FUNCTION xdp47_notify_desired();
CREATE TRIGGER rollout_windows_changed
AFTER UPDATE OF open ON rollout_windows
FOR EACH ROW WHEN (OLD.open IS DISTINCT FROM NEW.open)
EXECUTE FUNCTION xdp47_notify_desired();

-- A device's zone changes which window it reads.
CREATE TRIGGER devices_zone_changed
AFTER UPDATE OF timezone, labels ON devices
FOR EACH ROW
WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone
      OR OLD.labels->>'timezone' IS DISTINCT FROM NEW.labels->>'timezone')
EXECUTE FUNCTION xdp47_notify_desired();

-- Whether the rollout's effective policy has windows: the desired state reads
-- rollout_windows only then, so rollouts without windows pay nothing.
ALTER TABLE rollouts ADD COLUMN windowed boolean NOT NULL DEFAULT false;

-- A late joiner's target: shown in the plan and counted in the progress.
ALTER TABLE rollout_targets ADD COLUMN late boolean NOT NULL DEFAULT false;
