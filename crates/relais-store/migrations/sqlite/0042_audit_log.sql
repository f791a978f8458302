-- The audit log (docs/audit.md): who (an API key, an agent, the CLI) did what (a stable
-- action code), when, from where, to which resource, with what outcome (the HTTP status).
-- Append-only: the triggers refuse every UPDATE and DELETE, so neither a bug nor a
-- compromised key with SQL access through Relais rewrites history.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    action TEXT NOT NULL,
    resource_kind TEXT,
    resource_id TEXT,
    status INTEGER NOT NULL,
    source_ip TEXT,
    forwarded_for TEXT,
    user_agent TEXT,
    method TEXT,
    path TEXT
);
CREATE INDEX audit_log_by_time ON audit_log (tenant_id, id);
CREATE INDEX audit_log_by_resource ON audit_log (tenant_id, resource_kind, resource_id, id);
CREATE INDEX audit_log_by_actor ON audit_log (tenant_id, actor_id, id);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
