-- Teams of agents: how their conversations are assigned, their service-level targets and
-- whether a resolved conversation asks the customer for a rating. At most one team per
-- tenant is the default: a conversation handed to no team in particular joins it.
CREATE TABLE teams (
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    assignment TEXT NOT NULL,
    first_response_minutes BIGINT,
    next_response_minutes BIGINT,
    is_default BOOLEAN NOT NULL,
    csat BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- People who answer customers. `email` is stored lowercased and unique per tenant;
-- `password_hash` is an argon2id PHC string. `last_assigned_at` orders round-robin.
CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    capacity BIGINT NOT NULL,
    available BOOLEAN NOT NULL,
    last_assigned_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, email)
);
CREATE INDEX agents_by_email ON agents(email);

CREATE TABLE agent_teams (
    tenant_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    team TEXT NOT NULL,
    PRIMARY KEY (agent_id, team)
);
CREATE INDEX agent_teams_by_team ON agent_teams(tenant_id, team);

-- Login sessions: only the SHA-256 of the token is kept.
CREATE TABLE agent_sessions (
    token_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX agent_sessions_by_agent ON agent_sessions(agent_id);

-- What an agent sees of a conversation: who has it, how urgent it is (bits: 4 urgent,
-- 2 negative sentiment, 1 VIP), since when the customer waits for an answer and when that
-- answer is due (`sla_kind`: first_response or next_response), whether it was breached,
-- and the customer's rating.
-- `opened_at`: when the current episode began (created, or reopened by the customer).
ALTER TABLE conversations ADD COLUMN opened_at BIGINT;
UPDATE conversations SET opened_at = created_at;
ALTER TABLE conversations ADD COLUMN assignee_id TEXT;
ALTER TABLE conversations ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN waiting_since BIGINT;
ALTER TABLE conversations ADD COLUMN sla_due_at BIGINT;
ALTER TABLE conversations ADD COLUMN sla_kind TEXT;
ALTER TABLE conversations ADD COLUMN sla_breached_at BIGINT;
ALTER TABLE conversations ADD COLUMN first_response_at BIGINT;
ALTER TABLE conversations ADD COLUMN assigned_at BIGINT;
ALTER TABLE conversations ADD COLUMN assignments BIGINT NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN csat_asked_at BIGINT;
ALTER TABLE conversations ADD COLUMN csat_score BIGINT;
ALTER TABLE conversations ADD COLUMN csat_comment TEXT;
ALTER TABLE conversations ADD COLUMN csat_at BIGINT;
-- The queue: waiting conversations, most urgent first, then longest waiting.
CREATE INDEX conversations_queue ON conversations(tenant_id, state, priority, waiting_since);
CREATE INDEX conversations_by_assignee ON conversations(assignee_id, state);
CREATE INDEX conversations_sla_due ON conversations(sla_due_at) WHERE sla_due_at IS NOT NULL AND sla_breached_at IS NULL;

-- Private notes agents leave on a conversation; the customer never sees them.
CREATE TABLE conversation_notes (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    agent_id TEXT,
    text TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX conversation_notes_by_conversation ON conversation_notes(tenant_id, conversation_id, created_at);

-- Canned replies: a named template (`Bonjour {{ contact.first_name }}…`) agents insert.
CREATE TABLE canned_replies (
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
