-- Messages (A2P), their event log, the outbox (the one queue of work to do) and the
-- sandbox's simulated phones.
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    contact_id TEXT,
    to_address TEXT NOT NULL,
    channel TEXT NOT NULL,
    step BIGINT NOT NULL,
    chain TEXT NOT NULL,
    content TEXT NOT NULL,
    purpose TEXT NOT NULL,
    status TEXT NOT NULL,
    segments BIGINT,
    provider_id TEXT,
    idempotency_key TEXT,
    request_hash TEXT,
    send_at BIGINT,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX messages_tenant ON messages(tenant_id, id);
CREATE INDEX messages_contact ON messages(tenant_id, contact_id);
CREATE UNIQUE INDEX messages_idempotency ON messages(tenant_id, idempotency_key);
CREATE INDEX messages_provider ON messages(provider_id);

CREATE TABLE message_events (
    id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    status TEXT NOT NULL,
    at BIGINT NOT NULL,
    reason TEXT,
    detail TEXT,
    attempt BIGINT,
    channel TEXT
);
CREATE INDEX message_events_message ON message_events(message_id, seq);

CREATE TABLE outbox (
    message_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    phase TEXT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    attempts BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox(due_at);

CREATE TABLE sim_messages (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    number TEXT NOT NULL,
    direction TEXT NOT NULL,
    message_id TEXT,
    text TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX sim_messages_number ON sim_messages(tenant_id, number, at);

-- Outgoing webhooks and their delivery log; a delivery is written in the transaction that
-- changes a message's status.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhooks_tenant ON webhooks(tenant_id);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_code BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, due_at);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries(tenant_id, webhook_id, created_at);
