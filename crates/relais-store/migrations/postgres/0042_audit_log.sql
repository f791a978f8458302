-- The audit log (docs/audit.md): who (an API key, an agent, the CLI) did what (a stable
-- action code), when, from where, to which resource, with what outcome (the HTTP status).
-- Append-only: the trigger refuses every UPDATE, DELETE and TRUNCATE, so neither a bug nor
-- a compromised key with SQL access through Relais rewrites history.
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

CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
