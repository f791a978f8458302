-- A message's event log moves onto its row, as a JSON array in order. Every status change
-- already rewrites the row; a separate event row per change doubled the writes of the send
-- pipeline (one table row and its key per event, and a look-up of the last sequence
-- number) for a log that is only ever read whole, with its message.
ALTER TABLE messages ADD COLUMN events TEXT NOT NULL DEFAULT '[]';
UPDATE messages SET events = COALESCE((
    SELECT json_group_array(json(ev)) FROM (
        SELECT json_object('status', status, 'at', at, 'reason', reason, 'detail', detail,
                           'attempt', attempt, 'channel', channel) AS ev
        FROM message_events e WHERE e.message_id = messages.id ORDER BY seq
    )
), '[]');
DROP TABLE message_events;
