-- Messages an ESME submitted through Relais's SMPP server and wants a receipt for: kept
-- in the store so that a restart does not lose them.
CREATE TABLE smpp_receipt_watches (
    message_id TEXT PRIMARY KEY,
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
