-- metric_sample: one sample of the telemetry analysis as the scheduler's
-- statement that records them takes it.
--
-- The statement took a batch's samples as four parallel arrays; asyncpg
-- checks every element of an array parameter for being a nested array, with
-- isinstance against abstract base classes, and the scheduler built each array
-- from the samples in a loop of its own. One array of this type takes the
-- samples (named tuples) as they are, checked once per row
-- (docs/performance.md, migration 0029 did the same for heartbeats).

CREATE TYPE metric_sample AS (
    tenant text,
    device_id text,
    metric text,
    value float8
);
