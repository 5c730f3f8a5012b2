-- analysed_beat: one heartbeat of a device in an analysed rollout, as the
-- scheduler's analysis statement takes it: the device, the rollout, its
-- target as the heartbeat write found it, and the analysed metrics' values.
--
-- The analysis statement probed each device's active target again, after the
-- heartbeat write had probed the same index for the same device: under B1's
-- analysed load, that second probe was ~17 % of PostgreSQL's CPU. The write
-- now returns the target's state, wave and analysed window, and the statement
-- reads the target again only for a device whose target was assigned (the
-- batch's settling may have moved it). One row per device, its metrics as
-- two parallel arrays, instead of one metric_sample row per value
-- (docs/performance.md).
--
-- metric_sample (migration 0030) stays: a scheduler of the previous release
-- keeps working until it is replaced.

CREATE TYPE analysed_beat AS (
    tenant text,
    device_id text,
    rollout_id uuid,
    -- NULL: the target was assigned at the write; read it again.
    state text,
    wave integer,
    analysed_window integer,
    metrics text[],
    vals float8[]
);
