-- The queue is read by priority, then by when the answer is due by the SLA (for a
-- conversation without one, since when its customer waits; those who wait for nobody
-- last): within a priority, a customer whose next-response answer is due in 2 minutes
-- comes before one whose first answer is due in 30, though they began waiting later.
-- The two indexes of migration 0027 are rebuilt on that key, with the same columns
-- otherwise: SQLite uses an index on an expression only for a query that writes the
-- expression exactly as the index does (`DUE_KEY` in conversations.rs), so the old
-- indexes would no longer serve the queue and each read would sort every waiting
-- conversation of the tenant again.
DROP INDEX conversations_queue_order;
CREATE INDEX conversations_queue_order
    ON conversations(tenant_id, priority DESC, COALESCE(sla_due_at, waiting_since, 9223372036854775807), id, team, assignee_id, state)
    WHERE state IN ('pending', 'open');
-- The next conversation a team's rule hands out: in queue order within the team.
DROP INDEX conversations_next_waiting;
CREATE INDEX conversations_next_waiting
    ON conversations(tenant_id, team, priority DESC, COALESCE(sla_due_at, waiting_since, 9223372036854775807), id)
    WHERE state = 'pending' AND assignee_id IS NULL;
