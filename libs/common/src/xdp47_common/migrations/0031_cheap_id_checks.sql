-- The id checks without bounded repetition.
--
-- PostgreSQL evaluates every CHECK constraint of a table on every UPDATE of
-- its rows, whatever the columns changed, and its regular expression engine
-- pays for a bounded repetition such as {0,127} state by state: the device id
-- check cost ~5.2 µs per evaluation, against ~0.2 µs for the same rule as a
-- length bound and an unbounded class (300,000 ids, one backend). The heartbeat
-- write updates a device row per heartbeat: a native profile of the
-- scheduler's PostgreSQL backends under B1's load found ~28 % of their CPU in
-- that one regular expression (docs/performance.md).
--
-- Each check accepts exactly the ids it accepted before (every character is
-- ASCII, so length() counts bytes as the class does). The tenant and artifact
-- checks have the same shape and are rewritten alike. The devices table is
-- locked for the validation (one scan of its rows in this transaction):
-- heartbeats wait in the queue meanwhile.

ALTER TABLE devices
    DROP CONSTRAINT devices_id_check,
    ADD CONSTRAINT devices_id_check
        CHECK (length(id) <= 128 AND id ~ '^[A-Za-z0-9][A-Za-z0-9_-]*$');

ALTER TABLE tenants
    DROP CONSTRAINT tenants_id_check,
    ADD CONSTRAINT tenants_id_check
        CHECK (length(id) <= 63 AND id ~ '^[a-z0-9][a-z0-9-]*$');

ALTER TABLE artifacts
    DROP CONSTRAINT artifacts_sha256_check,
    ADD CONSTRAINT artifacts_sha256_check
        CHECK (length(sha256) = 64 AND sha256 ~ '^[0-9a-f]*$');
