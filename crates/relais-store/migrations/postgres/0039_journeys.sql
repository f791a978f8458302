-- Customer events (`POST /v1/events`): what a contact did, kept for journeys, segments'
-- behaviour filters and conversion attribution. `idempotency_id` is the client's event id:
-- one per tenant, so a retried event is found instead of applied twice (NULLs are
-- distinct). `outcome` is the answer the event got (journeys entered and exited, areas
-- matched), given again to a retry.
CREATE TABLE contact_events (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    name TEXT NOT NULL,
    properties TEXT NOT NULL,
    value DOUBLE PRECISION,
    idempotency_id TEXT,
    outcome TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE UNIQUE INDEX contact_events_by_idempotency_id ON contact_events(tenant_id, idempotency_id);
CREATE INDEX contact_events_by_contact ON contact_events(tenant_id, contact_id, name, at);

-- Geofences a tenant names: circles an `entered_area` event's position is matched against.
CREATE TABLE geofences (
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    lat DOUBLE PRECISION NOT NULL,
    lon DOUBLE PRECISION NOT NULL,
    radius_m DOUBLE PRECISION NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- Journeys (`PUT /v1/journeys/{name}`), kept as uploaded after they were checked.
CREATE TABLE journeys (
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    revision BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- Where each contact stands in a journey. A worker claims runs whose `due_at` passed with
-- a lease (`lease_owner`, `lease_until`), like the outbox, so several nodes share them and
-- a run whose node died is taken up once its lease runs out.
-- `entry_key` says which trigger occurrence entered the run (the event's id, `once`, a
-- birthday's year): one run per (journey, contact, entry_key), so a duplicate trigger
-- never enters twice. `active_key` is the contact's id while a run of a journey whose
-- re-entry rule allows one run at a time is active, NULL otherwise: its unique index
-- refuses a second active run.
-- `phase` is `enter` (the step's action is to do) or `wait` (a wait or a branch waits for
-- `due_at`).
CREATE TABLE journey_runs (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    journey TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    entry_key TEXT NOT NULL,
    active_key TEXT,
    entered_by TEXT,
    event_properties TEXT NOT NULL,
    step TEXT NOT NULL,
    phase TEXT NOT NULL,
    steps_taken BIGINT NOT NULL,
    state TEXT NOT NULL,
    due_at BIGINT,
    deadline BIGINT,
    last_message_id TEXT,
    last_sent_at BIGINT,
    ended_reason TEXT,
    lease_owner TEXT,
    lease_until BIGINT,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE UNIQUE INDEX journey_runs_by_entry ON journey_runs(tenant_id, journey, contact_id, entry_key);
CREATE UNIQUE INDEX journey_runs_one_active ON journey_runs(tenant_id, journey, active_key);
CREATE INDEX journey_runs_due ON journey_runs(due_at) WHERE state = 'active';
CREATE INDEX journey_runs_by_contact ON journey_runs(tenant_id, contact_id, state);
