-- The queue as agents read it: pending and open conversations, most urgent first, then
-- the customer who has waited longest (those who wait for nobody last). An index in that
-- order lets a page of the queue be read in order and stop after it, instead of sorting
-- every waiting conversation of the tenant for each read; team, assignee and state ride
-- along so that an agent's visibility is checked in the index, without reading rows of
-- conversations they may not see.
DROP INDEX conversations_queue;
CREATE INDEX conversations_queue_order
    ON conversations(tenant_id, priority DESC, COALESCE(waiting_since, 9223372036854775807), id, team, assignee_id, state)
    WHERE state IN ('pending', 'open');
-- The next conversation a team's rule hands out: in queue order within the team.
CREATE INDEX conversations_next_waiting
    ON conversations(tenant_id, team, priority DESC, COALESCE(waiting_since, 9223372036854775807), id)
    WHERE state = 'pending' AND assignee_id IS NULL;
