-- heartbeat_row: one heartbeat as the scheduler's write statement takes it.
--
-- The statement used to take a batch as ten parallel arrays (one per field).
-- asyncpg checks every element of an array parameter for being a nested
-- array (two or three isinstance checks against abstract base classes each),
-- which cost the scheduler more CPU than encoding the values. One array of
-- this type is checked once per row, and each row's fields are encoded
-- directly. Measured on the parameters alone (batches of 350, B1's
-- heartbeat): 3.6 → 2.2 µs of client CPU per heartbeat, PostgreSQL's share
-- no higher (docs/performance.md).
--
-- Creating a type takes no lock on devices: the older statement keeps working
-- until the scheduler that uses this one starts.

CREATE TYPE heartbeat_row AS (
    tenant text,
    device_id text,
    seq bigint,
    health text,
    current_version text,
    current_artifact_id uuid,
    last_apply text,
    metrics text,
    recent text,
    received_at timestamptz
);
