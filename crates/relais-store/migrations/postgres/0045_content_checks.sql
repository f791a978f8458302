-- Anti-phishing content checks (docs/trust.md): what the checks found in an outbound
-- message whose score was above 0, written before the message itself (like its tracked
-- links), read with it. `reasons` is a JSON list of {code, weight, detail}.
CREATE TABLE content_checks (
    message_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    score BIGINT NOT NULL,
    reasons TEXT NOT NULL,
    verdict TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX content_checks_tenant ON content_checks (tenant_id, created_at);
