-- Configured channels (an SMPP connection, a WhatsApp number…), per tenant; `config` is
-- the channel's JSON settings, secrets included (the API never returns them).
CREATE TABLE channels (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX channels_name ON channels(tenant_id, name);
CREATE INDEX channels_kind ON channels(kind);
