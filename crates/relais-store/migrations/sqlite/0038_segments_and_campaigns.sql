-- Segments: a tenant's saved filters over its contacts.
CREATE TABLE segments (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    filter TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

-- Campaigns: what to send to a segment, and how far the sending went. `name` is also the
-- campaign label of its messages. `definition` is the campaign as created (JSON); `plan`
-- what starting it fixed (JSON: the filter, the best hours learned then).
CREATE TABLE campaigns (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    state TEXT NOT NULL,
    phase TEXT NOT NULL,
    plan TEXT,
    winner TEXT,
    test_ends_at BIGINT,
    started_at BIGINT,
    finished_at BIGINT,
    lease_owner TEXT,
    lease_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE INDEX campaigns_state ON campaigns(state, lease_until);

-- Each recipient of a started campaign, fixed when it started, and what became of them:
-- `pending` (to do), `waiting` (the rest of an A/B test, until the winner is known),
-- `enqueued` (its message is stored), `skipped` (with a reason), `canceled`.
CREATE TABLE campaign_recipients (
    campaign_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    state TEXT NOT NULL,
    variant TEXT,
    message_id TEXT,
    reason TEXT,
    PRIMARY KEY (campaign_id, contact_id)
) WITHOUT ROWID;
CREATE INDEX campaign_recipients_state ON campaign_recipients(campaign_id, state, contact_id);

-- A contact's messages over a period (the frequency cap, a segment's behaviours) are read
-- by contact and time: the contact index gains the time, at no cost to inserts.
DROP INDEX messages_contact;
CREATE INDEX messages_contact ON messages(tenant_id, contact_id, created_at);
