-- What a customer chose, beside what they wrote: the payload of a tapped button or quick
-- reply, or of the numbered choice their "2" answered on a channel without buttons.
ALTER TABLE inbound_messages ADD COLUMN payload TEXT;
