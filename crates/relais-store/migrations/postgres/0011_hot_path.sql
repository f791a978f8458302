-- The send pipeline writes several events per message: keyed by (message, seq) they need
-- no random id and no second index.
ALTER TABLE message_events DROP COLUMN id;
DROP INDEX message_events_message;
ALTER TABLE message_events ADD PRIMARY KEY (message_id, seq);

-- Most messages carry no Idempotency-Key and have no provider id until they are sent:
-- their index entries cost every insert and are never looked up.
DROP INDEX messages_idempotency;
CREATE UNIQUE INDEX messages_idempotency ON messages(tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
DROP INDEX messages_provider;
CREATE INDEX messages_provider ON messages(provider_id) WHERE provider_id IS NOT NULL;

-- Claims take the earliest due rows in (due_at, message_id) order: the index gives that
-- order, so a claim reads its batch instead of sorting the whole backlog.
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox(due_at, message_id);
