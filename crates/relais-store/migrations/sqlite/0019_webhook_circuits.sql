-- A circuit breaker per webhook (relais-core `circuit`): the attempts in a row that found
-- the endpoint down, the times in a row the circuit opened, since when it fails, and, while
-- the circuit is open, when the next probe may go (NULL: closed). A dead endpoint then
-- costs one probe per open period instead of one retry (two writes) per pending event.
ALTER TABLE webhooks ADD COLUMN failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN opens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN failing_since BIGINT;
ALTER TABLE webhooks ADD COLUMN retry_at BIGINT;

-- Claims read the pending deliveries webhook by webhook, so that the backlog of a webhook
-- whose circuit is open (hundreds of thousands of events after a day) is never read: with
-- (status, due_at) every claim walked past it, as its events are the oldest due.
DROP INDEX webhook_deliveries_due;
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries(webhook_id, due_at) WHERE status = 'pending';
-- The expiry sweep finds the pending deliveries past the retry window without reading the
-- delivery log, which keeps every delivered event.
CREATE INDEX webhook_deliveries_pending_age ON webhook_deliveries(created_at) WHERE status = 'pending';
