-- Stored templates (`/v1/templates`): a name per tenant, and its language variants (each a
-- content with `{{ variables }}` and maybe the provider template it maps to) as JSON,
-- checked before they are written.
CREATE TABLE templates (
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    variants TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- The templates a configured channel's provider account holds (WhatsApp's message
-- templates), as the last synchronisation found them: one row per name and language, with
-- the provider's category and approval status. A synchronisation replaces the channel's rows.
CREATE TABLE provider_templates (
    tenant_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    name TEXT NOT NULL,
    language TEXT NOT NULL,
    category TEXT NOT NULL,
    status TEXT NOT NULL,
    components TEXT NOT NULL,
    synced_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, channel_id, name, language)
);
-- The accept path looks templates up by name across the tenant's channels.
CREATE INDEX provider_templates_by_name ON provider_templates(tenant_id, name);
