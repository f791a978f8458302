-- One conversation per contact, across every channel: the thread an agent or a bot answers.
-- A resolved conversation is reopened by the contact's next message, so a contact never
-- has two. `channel`, `channel_id` and `address` say where the customer last wrote: a reply
-- goes there unless the sender picks another channel.
CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    state TEXT NOT NULL,
    channel TEXT NOT NULL,
    channel_id TEXT,
    address TEXT NOT NULL,
    last_message TEXT NOT NULL,
    last_message_at BIGINT NOT NULL,
    last_inbound_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    resolved_at BIGINT,
    UNIQUE (tenant_id, contact_id)
);
CREATE INDEX conversations_recent ON conversations(tenant_id, last_message_at, id);

-- An inbound message goes through the pipeline (contact, keywords, conversation) after it
-- is stored; `processed_at` is set when it went all the way, so a message stored just
-- before a crash is taken up again (and one redelivered meanwhile finishes its first run).
ALTER TABLE inbound_messages ADD COLUMN conversation_id TEXT;
ALTER TABLE inbound_messages ADD COLUMN processed_at BIGINT;
-- What was stored before the pipeline existed is not answered now, months later.
UPDATE inbound_messages SET processed_at = received_at;
CREATE INDEX inbound_messages_unprocessed ON inbound_messages(received_at) WHERE processed_at IS NULL;
