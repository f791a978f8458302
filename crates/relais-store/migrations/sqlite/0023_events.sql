-- The live event stream's log (`GET /v1/events/stream`): what happened in a tenant, in the
-- order a client reads it. `seq` counts each tenant's events from 1 without gaps, so a
-- client that saw every event up to N resumes after N and misses nothing; a gap it meets
-- means the events there were pruned (retention). The next `seq` of a tenant comes from
-- its row in `stream_event_seqs`, bumped in the transaction that inserts the event: on
-- PostgreSQL that row's lock makes one tenant's appends commit in `seq` order (a sequence
-- would hand 7 to one transaction and 8 to another that commits first, and a reader that
-- saw 8 would never read 7). The row outlives pruning, so numbers are never reused.
-- `key`, when set, makes an append idempotent: a pipeline step that runs again after a
-- crash appends nothing twice.
CREATE TABLE stream_events (
    tenant_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    conversation_id TEXT,
    team TEXT,
    data TEXT NOT NULL,
    key TEXT,
    at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE UNIQUE INDEX stream_events_key ON stream_events(tenant_id, key) WHERE key IS NOT NULL;
-- Retention deletes the oldest first.
CREATE INDEX stream_events_age ON stream_events(at);

CREATE TABLE stream_event_seqs (
    tenant_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
);
