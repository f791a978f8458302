-- Per-tenant settings (knowledge base, LLM endpoint, quiet hours…) as JSON documents.
CREATE TABLE tenant_settings (
    tenant_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

-- Intent models, versioned per tenant; the highest version is the live one.
CREATE TABLE nlu_models (
    tenant_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    model BYTEA NOT NULL,
    summary TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
