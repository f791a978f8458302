-- The campaign label a send request gave (`black-friday-2026`), for
-- `GET /v1/messages?campaign=…`. NULL for messages sent without one, which most are:
-- the index is partial so that they cost it nothing on the hot insert path.
ALTER TABLE messages ADD COLUMN campaign TEXT;
CREATE INDEX messages_campaign ON messages(tenant_id, campaign, created_at)
    WHERE campaign IS NOT NULL;
