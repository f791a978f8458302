-- A human agent's reply (POST /v1/conversations/{id}/messages by an agent, on a channel
-- that gives agents a longer window, as Messenger's `HUMAN_AGENT` tag does): when the
-- customer last wrote, so that the channel can tell at send time whether the reply is
-- still inside the 24 h window or needs the tag. NULL for every other message.
ALTER TABLE messages ADD COLUMN human_agent_since BIGINT;
