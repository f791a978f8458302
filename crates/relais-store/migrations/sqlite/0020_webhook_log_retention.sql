-- The delivery log is pruned of finished deliveries (delivered or failed) older than the
-- configured retention; this index finds them oldest first without reading the pending
-- ones or the rest of the log.
CREATE INDEX webhook_deliveries_finished_age ON webhook_deliveries(created_at) WHERE status <> 'pending';
