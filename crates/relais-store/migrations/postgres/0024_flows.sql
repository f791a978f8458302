-- Bot flows: a tenant's flow documents (`PUT /v1/flows/{name}`), kept as uploaded after
-- they were checked; `revision` counts the uploads, so a conversation running an older
-- revision can tell.
CREATE TABLE flows (
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    revision BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- Where a conversation's bot stands: the node it waits at (a question), the attempts
-- used, the flow's variables, and the inbound message it last answered (a message taken
-- up again after a crash finds it answered and does not run the flow twice).
CREATE TABLE flow_sessions (
    conversation_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    flow TEXT NOT NULL,
    revision BIGINT NOT NULL,
    node TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    vars TEXT NOT NULL,
    last_message_id TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Answers a flow stored in a contact attribute: the contact's first-party data, with where
-- and when it was given. One per (message, attribute): a message processed twice records
-- its answer once.
CREATE TABLE flow_answers (
    message_id TEXT NOT NULL,
    attribute TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    value TEXT NOT NULL,
    flow TEXT NOT NULL,
    node TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    answered_at BIGINT NOT NULL,
    PRIMARY KEY (message_id, attribute)
);
CREATE INDEX flow_answers_by_contact ON flow_answers(tenant_id, contact_id, answered_at);

-- The team a conversation waits for (set by a flow's handoff).
ALTER TABLE conversations ADD COLUMN team TEXT;

-- The inbound message last placed in the conversation: the same message placed again (its
-- run taken up after a crash) does not reopen a conversation its first run resolved.
ALTER TABLE conversations ADD COLUMN last_inbound_id TEXT;
