-- The recipients a channel started conversations with (business-initiated messages) and
-- when each was last messaged: WhatsApp's messaging limit counts distinct recipients over
-- a moving 24 h, and that count must survive a restart. One row per recipient; old rows
-- are forgotten as new ones are written.
CREATE TABLE channel_reach (
    tenant_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    to_address TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, channel, to_address)
);
CREATE INDEX channel_reach_at ON channel_reach(tenant_id, channel, at);
