-- Receipts owed to ESMEs that submitted through Relais's SMPP server: kept in the store so
-- that a restart does not lose them. `receipt_id` is the id the ESME got in its
-- submit_sm_resp (each part of a concatenated submit has one); `message_id` the message.
CREATE TABLE smpp_receipt_watches (
    receipt_id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    system_id TEXT NOT NULL,
    source TEXT NOT NULL,
    destination TEXT NOT NULL,
    submitted TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    next_try_at BIGINT NOT NULL
);
CREATE INDEX smpp_receipt_watches_due ON smpp_receipt_watches(next_try_at);
