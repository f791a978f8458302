-- Timestamps are microseconds since the Unix epoch; ids are UUIDv7 text (time-ordered,
-- so ordering by id is ordering by creation, which the cursor pagination relies on).
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    scopes TEXT NOT NULL,
    label TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id);

CREATE TABLE contacts (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    attributes TEXT NOT NULL,
    timezone TEXT,
    locale TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX contacts_tenant_id ON contacts(tenant_id, id);

CREATE TABLE identities (
    tenant_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    contact_id TEXT NOT NULL REFERENCES contacts(id),
    created_at BIGINT NOT NULL,
    -- Address before channel: look-ups by address alone (any channel) use the key too.
    PRIMARY KEY (tenant_id, address, channel)
);
CREATE INDEX identities_contact ON identities(contact_id);

CREATE TABLE consents (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    channel TEXT,
    purpose TEXT NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    proof TEXT,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX consents_contact ON consents(tenant_id, contact_id);

CREATE TABLE contact_merges (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    survivor_id TEXT NOT NULL,
    merged_id TEXT NOT NULL,
    merged_snapshot TEXT NOT NULL,
    merged_at BIGINT NOT NULL
);
CREATE INDEX contact_merges_survivor ON contact_merges(tenant_id, survivor_id);
