-- GDPR erasure: each tenant's secret for the keyed digests of erased addresses, and the
-- digests themselves (never the addresses), which block re-creating the person by import
-- or API without a fresh opt-in.
CREATE TABLE suppression_keys (
    tenant_id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE suppressions (
    tenant_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    erased_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, digest)
);

-- Retention: the sweeper finds old content by time.
CREATE INDEX inbound_messages_received ON inbound_messages(tenant_id, received_at);
CREATE INDEX media_created ON media(tenant_id, created_at);
