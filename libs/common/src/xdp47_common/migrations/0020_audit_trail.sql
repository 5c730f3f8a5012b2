-- The audit trail: one append-only row per write (API, UI, CLI) and per
-- scheduler decision, inserted in the transaction of the change it records, so
-- a change without its row (or a row without its change) cannot commit.
--
-- Not the scheduler's "counter audit" (xdp47_scheduler.pg.audit), which checks
-- wave counters against targets.
--
-- seq orders the trail (newest first in GET /api/audit) and is the keyset
-- cursor. There is no foreign key to tenants: a record outlives what it names.
CREATE TABLE audit_records (
    seq               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant            text NOT NULL,
    at                timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Who: 'token:<id>' (or the dev token) for a request, 'scheduler' for the
    -- scheduler's own decisions.
    actor             text NOT NULL,
    actor_name        text,
    -- A scheduler decision that applies an operator's command: that operator.
    on_behalf_of      text,
    on_behalf_of_name text,
    action            text NOT NULL,
    subject_type      text NOT NULL,
    subject_id        text NOT NULL,
    rollout_id        uuid,
    request_id        text,
    status_before     text,
    status_after      text,
    -- applied | no_op | rejected (the scheduler); accepted | refused | failed
    -- (a request the API answered).
    outcome           text NOT NULL,
    detail            jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX audit_records_tenant ON audit_records (tenant, seq);
CREATE INDEX audit_records_rollout ON audit_records (tenant, rollout_id, seq)
    WHERE rollout_id IS NOT NULL;
CREATE INDEX audit_records_actor ON audit_records (tenant, actor, seq);
CREATE INDEX audit_records_on_behalf ON audit_records (tenant, on_behalf_of, seq)
    WHERE on_behalf_of IS NOT NULL;

-- Append-only in the database itself, whatever the client: UPDATE, DELETE and
-- TRUNCATE are refused for every role the trigger binds (a superuser can still
-- drop the trigger, which is a schema change, not an API call).
CREATE FUNCTION audit_records_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_records is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_records_no_change
    BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_records_append_only();

CREATE TRIGGER audit_records_no_truncate
    BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_append_only();
