-- Journeys: segment-entry triggers and the messages each step sent.

-- Journeys triggered by a segment entry: who was in the segment at the last look, so that
-- the next look enters only those who came in since (and forgets those who left, who
-- enter again when they come back).
CREATE TABLE journey_segment_members (
    tenant_id TEXT NOT NULL,
    journey TEXT NOT NULL,
    segment TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    entered_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, journey, segment, contact_id)
);

-- When each journey's segment was last looked at; none yet means the next look only
-- records who is there (contacts already in the segment when the journey starts watching
-- it are not entered).
CREATE TABLE journey_segment_scans (
    tenant_id TEXT NOT NULL,
    journey TEXT NOT NULL,
    segment TEXT NOT NULL,
    scanned_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, journey, segment)
);

-- The messages journeys sent, by step: what a journey's report counts per step.
CREATE TABLE journey_messages (
    tenant_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    journey TEXT NOT NULL,
    step TEXT NOT NULL,
    run_id TEXT NOT NULL,
    sent_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, message_id)
);
CREATE INDEX journey_messages_by_journey ON journey_messages (tenant_id, journey, step);
