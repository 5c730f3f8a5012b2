-- The transactional outbox of rollout events, and webhook subscriptions with
-- their deliveries.
--
-- outbox: every rollout event is written here in the transaction that decides
-- it (xdp47_scheduler.runner); the relay (xdp47_scheduler.relay) publishes the
-- unsent rows to xdp47.events with publisher confirms and stamps sent_at.
-- Several relays take disjoint rows (FOR UPDATE SKIP LOCKED). A commit that
-- wrote rows sends NOTIFY xdp47_outbox, which wakes the relays at once; a sweep
-- every few seconds is the safety net. Sent rows are deleted after a retention.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    -- The event's envelope message_id: consumers deduplicate by it.
    message_id   uuid NOT NULL UNIQUE,
    tenant       text NOT NULL,
    routing_key  text NOT NULL,
    -- The envelope as it goes on the wire (its JSON, byte for byte).
    payload      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- A tenant's subscription of a URL to rollout event types. The secret signs
-- every delivery (HMAC-SHA256); it is shown once, at creation.
CREATE TABLE webhooks (
    id           uuid PRIMARY KEY,
    tenant       text NOT NULL REFERENCES tenants (id),
    url          text NOT NULL CHECK (length(url) <= 2048),
    -- Event names (rollout events' ``event``); empty: every event.
    events       text[] NOT NULL DEFAULT '{}',
    secret       text NOT NULL,
    description  text,
    created_by   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, id)
);
CREATE INDEX webhooks_tenant ON webhooks (tenant, created_at);

-- One event for one subscription. ``next_attempt_at`` is when a job for it must
-- have been consumed: the worker's sweep publishes a job again for a pending
-- delivery past it (a job lost to a crash), and a redelivery by hand sets it to
-- now. ``attempts`` is the claim of an attempt: a job names the attempt it is
-- for, and only one job per attempt wins.
CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY,
    webhook_id       uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    tenant           text NOT NULL,
    event_id         uuid NOT NULL,
    event            text NOT NULL,
    rollout_id       uuid,
    payload          text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'parked')),
    attempts         integer NOT NULL DEFAULT 0,
    redeliveries     integer NOT NULL DEFAULT 0,
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_list ON webhook_deliveries (webhook_id, created_at DESC, id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
