-- The Twilio-compatible API (docs/twilio.md).
-- One Twilio account per tenant: its SID (`AC` + 32 hex digits) names the tenant in the
-- API's paths, its auth token authenticates (compared by digest) and signs what Relais
-- posts (kept sealed with the master key, since signing needs it in clear).
-- Inbound messages are posted to `inbound_url` in arrival order: `inbound_cursor` is the id
-- of the last one done with (ids are UUIDv7), claimed with a lease, retried with backoff.
CREATE TABLE twilio_accounts (
    tenant_id TEXT PRIMARY KEY,
    account_sid TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL,
    auth_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    inbound_url TEXT,
    inbound_cursor TEXT,
    inbound_due_at BIGINT NOT NULL DEFAULT 0,
    inbound_attempts BIGINT NOT NULL DEFAULT 0,
    inbound_lease_owner TEXT,
    inbound_lease_until BIGINT,
    inbound_error TEXT
);

-- A message's `StatusCallback`: the status last called back, and whether more may come
-- (`pending` 1 until a final status was called back). Claimed with a lease, retried with
-- backoff (`attempts`, `due_at`).
CREATE TABLE twilio_callbacks (
    message_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    url TEXT NOT NULL,
    notified_status TEXT,
    pending BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX twilio_callbacks_due ON twilio_callbacks (pending, due_at);

-- Messaging Services: a pool of senders under an `MG` SID; a message sent with the
-- service's SID takes the pool's sender for its recipient (the same while the pool is).
CREATE TABLE twilio_services (
    sid TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    senders TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX twilio_services_tenant ON twilio_services (tenant_id, created_at);
