-- A tenant's senders and their verification (docs/trust.md): a phone number by a code sent
-- to it (kept as a SHA-256 digest, with its expiry and the wrong tries), an email domain by
-- a DNS TXT record `relais-verification=<token>`, an alphanumeric ID or a WhatsApp display
-- name by an admin's approval. `state` is `pending` or `verified`.
CREATE TABLE senders (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    state TEXT NOT NULL,
    dkim_selector TEXT,
    token TEXT,
    code_digest TEXT,
    code_expires_at BIGINT,
    code_attempts BIGINT NOT NULL DEFAULT 0,
    verified_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX senders_value ON senders (tenant_id, kind, value);
