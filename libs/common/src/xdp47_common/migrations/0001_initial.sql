-- XDP47 initial schema. Owners: api writes tenants, api_tokens, artifacts, policies,
-- rollouts (draft) and device claims; the scheduler writes device state, rollout
-- targets, rollout runs and rollout status.

CREATE TABLE tenants (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY,
    tenant        text NOT NULL REFERENCES tenants (id),
    name          text NOT NULL,
    prefix        text NOT NULL,
    -- sha256 of the whole token; the token itself is never stored.
    token_hash    bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    scopes        text[] NOT NULL,
    created_by    uuid REFERENCES api_tokens (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant, created_at);

CREATE TABLE artifacts (
    id          uuid PRIMARY KEY,
    tenant      text NOT NULL REFERENCES tenants (id),
    uri         text NOT NULL,
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size        bigint CHECK (size >= 0),
    type        text NOT NULL DEFAULT 'application',
    version     text,
    signature   text,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, id)
);
CREATE INDEX artifacts_tenant ON artifacts (tenant, created_at);

CREATE TABLE policies (
    id                     uuid PRIMARY KEY,
    tenant                 text NOT NULL REFERENCES tenants (id),
    name                   text NOT NULL,
    require_ok             boolean,
    skip_offline           boolean,
    grace_seconds          integer CHECK (grace_seconds >= 0),
    min_success_ratio      double precision
                           CHECK (min_success_ratio BETWEEN 0 AND 1),
    max_failures_per_wave  integer CHECK (max_failures_per_wave >= 0),
    abort_on_zero_eligible boolean,
    wave_deadline_seconds  integer CHECK (wave_deadline_seconds > 0),
    created_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, id)
);
CREATE INDEX policies_tenant ON policies (tenant, created_at);

CREATE TABLE devices (
    tenant               text NOT NULL REFERENCES tenants (id),
    id                   text NOT NULL CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$'),
    labels               jsonb NOT NULL DEFAULT '{}'::jsonb,
    channel              text NOT NULL DEFAULT 'stable',
    credential_hash      bytea UNIQUE CHECK (length(credential_hash) = 32),
    status               text NOT NULL DEFAULT 'unknown'
                         CHECK (status IN ('unknown', 'online', 'offline')),
    health               text NOT NULL DEFAULT 'unknown'
                         CHECK (health IN ('ok', 'degraded', 'failing', 'unknown')),
    current_version      text,
    current_artifact_id  uuid,
    desired_artifact_id  uuid,
    desired_rollout_id   uuid,
    last_apply           jsonb,
    last_seq             bigint NOT NULL DEFAULT -1,
    last_seen            timestamptz,
    last_metrics         jsonb,
    claimed_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, desired_artifact_id) REFERENCES artifacts (tenant, id)
);
CREATE INDEX devices_labels ON devices USING gin (labels jsonb_path_ops);
CREATE INDEX devices_last_seen ON devices (last_seen) WHERE status = 'online';
CREATE INDEX devices_tenant_channel ON devices (tenant, channel);

CREATE TABLE rollouts (
    id                uuid PRIMARY KEY,
    tenant            text NOT NULL REFERENCES tenants (id),
    name              text,
    artifact_id       uuid NOT NULL,
    policy_id         uuid,
    selector          jsonb NOT NULL DEFAULT '{}'::jsonb,
    channel           text NOT NULL DEFAULT 'stable',
    waves             integer NOT NULL CHECK (waves BETWEEN 1 AND 100),
    wave_percentages  integer[],
    status            text NOT NULL DEFAULT 'draft'
                      CHECK (status IN ('draft', 'running', 'completed', 'partial',
                                        'failed', 'aborted')),
    reason            text,
    current_wave      integer,
    attempt           integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, id),
    FOREIGN KEY (tenant, artifact_id) REFERENCES artifacts (tenant, id),
    FOREIGN KEY (tenant, policy_id) REFERENCES policies (tenant, id)
);
CREATE INDEX rollouts_tenant ON rollouts (tenant, created_at);
CREATE INDEX rollouts_running ON rollouts (id) WHERE status = 'running';

-- One row per device per rollout. "active" is true while the rollout runs; the
-- partial unique index makes "a device is in at most one running rollout" a fact
-- the database enforces, whatever the schedulers do.
CREATE TABLE rollout_targets (
    rollout_id   uuid NOT NULL REFERENCES rollouts (id),
    tenant       text NOT NULL,
    device_id    text NOT NULL,
    wave         integer NOT NULL CHECK (wave >= 1),
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'assigned', 'applied', 'failed', 'skipped')),
    reason       text,
    active       boolean NOT NULL DEFAULT true,
    assigned_at  timestamptz,
    finished_at  timestamptz,
    PRIMARY KEY (rollout_id, device_id),
    FOREIGN KEY (tenant, device_id) REFERENCES devices (tenant, id)
);
CREATE UNIQUE INDEX rollout_targets_one_active
    ON rollout_targets (tenant, device_id) WHERE active;
CREATE INDEX rollout_targets_wave ON rollout_targets (rollout_id, wave, state);

-- Wave history: one row per wave per attempt (retry starts a new attempt).
-- The counters are kept up to date in the transaction that changes target states,
-- so gate checks never count a whole wave.
CREATE TABLE rollout_runs (
    rollout_id   uuid NOT NULL REFERENCES rollouts (id),
    wave         integer NOT NULL CHECK (wave >= 1),
    attempt      integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    eligible     integer NOT NULL DEFAULT 0,
    succeeded    integer NOT NULL DEFAULT 0,
    failed       integer NOT NULL DEFAULT 0,
    skipped      integer NOT NULL DEFAULT 0,
    started_at   timestamptz,
    finished_at  timestamptz,
    outcome      text CHECK (outcome IN ('succeeded', 'failed', 'aborted', 'skipped')),
    reason       text,
    PRIMARY KEY (rollout_id, attempt, wave)
);

-- Consumers that are not idempotent by nature record each message they applied,
-- in the same transaction as its effect.
CREATE TABLE inbox (
    consumer     text NOT NULL,
    message_id   uuid NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
