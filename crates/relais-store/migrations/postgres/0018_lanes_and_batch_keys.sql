-- Each outbox row names the lane that takes it: the channel of a message to send (a
-- channel kind such as `sim`, or a configured channel's id), or `~watch` for a fallback
-- timer. A dispatcher claims per lane, so the backlog of a channel that cannot send now
-- (its SMSC is down) is never read by the claims of the others.
ALTER TABLE outbox ADD COLUMN lane TEXT NOT NULL DEFAULT '';
UPDATE outbox SET lane = CASE phase
    WHEN 'watch' THEN '~watch'
    ELSE COALESCE((SELECT channel FROM messages WHERE messages.id = outbox.message_id), '')
END;
CREATE INDEX outbox_lane_due ON outbox(lane, due_at, message_id);

-- The answer of each `POST /v1/messages/batch` made with an Idempotency-Key, written in the
-- transaction that stores the batch's messages: the same key and body get the same answer.
CREATE TABLE batch_requests (
    tenant_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, idempotency_key)
);
