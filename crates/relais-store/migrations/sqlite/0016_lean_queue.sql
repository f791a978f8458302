-- The outbox is a queue: every message is inserted, leased and deleted once. Keyed by
-- message id without a rowid, each of those touches two b-trees (the rows and `outbox_due`)
-- instead of three (the rows, their id index and `outbox_due`).
CREATE TABLE outbox_keyed (
    message_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    phase TEXT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    attempts BIGINT NOT NULL
) WITHOUT ROWID;
INSERT INTO outbox_keyed (message_id, tenant_id, due_at, phase, lease_owner, lease_until, attempts)
    SELECT message_id, tenant_id, due_at, phase, lease_owner, lease_until, attempts FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_keyed RENAME TO outbox;
CREATE INDEX outbox_due ON outbox(due_at, message_id);

