-- Inbound messages (P2A): what customers wrote, on any channel, with what NLU read in it.
-- A provider that redelivers the same message (same provider id on the same channel) gets
-- the row it already created; messages without a provider id are never deduplicated
-- (NULLs are distinct in a UNIQUE constraint).
CREATE TABLE inbound_messages (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    channel_id TEXT,
    from_address TEXT NOT NULL,
    to_address TEXT NOT NULL,
    contact_id TEXT,
    text TEXT NOT NULL,
    provider_id TEXT,
    received_at BIGINT NOT NULL,
    annotations TEXT,
    annotated_at BIGINT,
    UNIQUE (tenant_id, channel, provider_id)
);
CREATE INDEX inbound_messages_tenant ON inbound_messages(tenant_id, id);
CREATE INDEX inbound_messages_contact ON inbound_messages(tenant_id, contact_id, id);
