-- Tracked links: each URL of an outbound message replaced by a short link `/l/{code}`.
-- The code is the key: a click names nothing else, and only codes found here redirect.
CREATE TABLE tracked_links (
    code TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    url TEXT NOT NULL,
    -- Where the URL was in the content (`text`, `buttons[0].url`…).
    field TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX tracked_links_by_message ON tracked_links (tenant_id, message_id);

-- One row per click on a tracked link, with the channel the message went on.
CREATE TABLE link_clicks (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    user_agent TEXT,
    clicked_at BIGINT NOT NULL
);
CREATE INDEX link_clicks_by_message ON link_clicks (tenant_id, message_id, clicked_at);

-- Click-to-chat entry points: a link that opens a conversation carrying a referral code.
CREATE TABLE entry_points (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    channel TEXT NOT NULL,
    -- The E.164 number (whatsapp, sms) or the page holding the widget (webchat).
    destination TEXT NOT NULL,
    referral TEXT NOT NULL,
    text TEXT,
    flow TEXT,
    campaign TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, referral)
);

-- Conversations an entry point brought: one row per inbound message that carried its
-- referral (so a message processed again after a crash attributes once).
CREATE TABLE conversation_referrals (
    tenant_id TEXT NOT NULL,
    inbound_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    entry_point_id TEXT NOT NULL,
    campaign TEXT,
    contact_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, inbound_id)
);
CREATE INDEX conversation_referrals_by_entry_point ON conversation_referrals (tenant_id, entry_point_id, at);
CREATE INDEX conversation_referrals_by_conversation ON conversation_referrals (tenant_id, conversation_id, at);
