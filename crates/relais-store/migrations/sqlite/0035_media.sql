-- Media customers sent: the images web chat visitors upload before sending a message that
-- refers to one. The bytes live here, not on a disk beside the database, so that several
-- nodes sharing one PostgreSQL serve them and a backup holds them. An upload belongs to
-- the visitor's address: only they may attach it or read it back, besides the tenant.
CREATE TABLE media (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    owner_address TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    bytes BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
-- The per-visitor upload limit counts their recent uploads.
CREATE INDEX media_owner_created ON media(tenant_id, owner_address, created_at);

-- The media an inbound message carries (`{"id", "mime_type", "size"}` as JSON), if any.
ALTER TABLE inbound_messages ADD COLUMN media TEXT;
