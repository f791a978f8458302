//! The audit log: append-only records of who did what, when, from where, to which
//! resource. The store can only append and read: there is no method to change or remove
//! an entry, and the table's triggers refuse it on both backends. An entry names the
//! resource by its id and the route by its template (`/v1/contacts/{id}`), never by the
//! path as sent, so that no personal data (a phone number in a path) lands in a log that
//! erasure cannot touch.

use crate::{Page, PageRequest, StoreResult};
use async_trait::async_trait;
use jiff::Timestamp;
use relais_core::audit::{ActorKind, AuditAction};
use serde::Serialize;

/// One audited act.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// A UUIDv7: entries sort by it in the order they were written.
    pub id: String,
    pub tenant_id: String,
    pub at: Timestamp,
    pub actor_kind: ActorKind,
    /// The API key's id, the agent's id, or the OS user of a CLI command.
    pub actor_id: String,
    pub action: AuditAction,
    /// What was acted on (`contact`, `agent`, `api_key`…), when one thing was.
    pub resource_kind: Option<String>,
    pub resource_id: Option<String>,
    /// The outcome: the HTTP status answered (a CLI command that succeeded records 200).
    pub status: u16,
    /// The peer's address.
    pub source_ip: Option<String>,
    /// The `X-Forwarded-For` header as sent (a proxy's claim, recorded, not trusted).
    pub forwarded_for: Option<String>,
    pub user_agent: Option<String>,
    pub method: Option<String>,
    /// The route's template, e.g. `/v1/contacts/{id}`.
    pub path: Option<String>,
}

/// Which entries to read; every field narrows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    pub actor_id: Option<String>,
    pub action: Option<AuditAction>,
    pub resource_kind: Option<String>,
    pub resource_id: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

/// Storage for the audit log; a supertrait of [`crate::Store`].
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// The tenant's entries matching `query`, oldest first, a page at a time (the cursor
    /// is the last entry's id).
    async fn audit_entries(
        &self,
        tenant: &str,
        query: &AuditQuery,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEntry>>;
}

macro_rules! impl_audit_store {
    ($modname:ident, $store:ty, $db:ty) => {
        mod $modname {
            use super::*;
            use crate::{StoreError, from_micros, micros};
            use sqlx::Row;

            type DbRow = <$db as sqlx::Database>::Row;

            const COLUMNS: &str = "id, tenant_id, at, actor_kind, actor_id, action, resource_kind, \
                 resource_id, status, source_ip, forwarded_for, user_agent, method, path";

            fn entry_from_row(row: &DbRow) -> StoreResult<AuditEntry> {
                let kind: String = row.try_get("actor_kind")?;
                let action: String = row.try_get("action")?;
                let status: i32 = row.try_get("status")?;
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    at: from_micros(row.try_get("at")?)?,
                    actor_kind: ActorKind::parse(&kind).ok_or_else(|| {
                        StoreError::Corrupt(format!("audit entry with actor kind `{kind}`"))
                    })?,
                    actor_id: row.try_get("actor_id")?,
                    action: AuditAction::parse(&action).ok_or_else(|| {
                        StoreError::Corrupt(format!("audit entry with action `{action}`"))
                    })?,
                    resource_kind: row.try_get("resource_kind")?,
                    resource_id: row.try_get("resource_id")?,
                    status: u16::try_from(status).map_err(|_| {
                        StoreError::Corrupt(format!("audit entry with status {status}"))
                    })?,
                    source_ip: row.try_get("source_ip")?,
                    forwarded_for: row.try_get("forwarded_for")?,
                    user_agent: row.try_get("user_agent")?,
                    method: row.try_get("method")?,
                    path: row.try_get("path")?,
                })
            }

            #[async_trait]
            impl AuditStore for $store {
                async fn append_audit(&self, e: &AuditEntry) -> StoreResult<()> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO audit_log ({COLUMNS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
                    )))
                    .bind(e.id.as_str())
                    .bind(e.tenant_id.as_str())
                    .bind(micros(e.at))
                    .bind(e.actor_kind.as_str())
                    .bind(e.actor_id.as_str())
                    .bind(e.action.as_str())
                    .bind(e.resource_kind.as_deref())
                    .bind(e.resource_id.as_deref())
                    .bind(i32::from(e.status))
                    .bind(e.source_ip.as_deref())
                    .bind(e.forwarded_for.as_deref())
                    .bind(e.user_agent.as_deref())
                    .bind(e.method.as_deref())
                    .bind(e.path.as_deref())
                    .execute(self.writer())
                    .await?;
                    Ok(())
                }

                async fn audit_entries(
                    &self,
                    tenant: &str,
                    query: &AuditQuery,
                    page: &PageRequest,
                ) -> StoreResult<Page<AuditEntry>> {
                    let limit = page.limit.max(1);
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM audit_log WHERE tenant_id = $1 \
                         AND ($2 IS NULL OR id > $2) \
                         AND ($3 IS NULL OR actor_id = $3) \
                         AND ($4 IS NULL OR action = $4) \
                         AND ($5 IS NULL OR resource_kind = $5) \
                         AND ($6 IS NULL OR resource_id = $6) \
                         AND ($7 IS NULL OR at >= $7) \
                         AND ($8 IS NULL OR at < $8) \
                         ORDER BY id LIMIT $9"
                    )))
                    .bind(tenant)
                    .bind(page.after.as_deref())
                    .bind(query.actor_id.as_deref())
                    .bind(query.action.map(AuditAction::as_str))
                    .bind(query.resource_kind.as_deref())
                    .bind(query.resource_id.as_deref())
                    .bind(query.since.map(micros))
                    .bind(query.until.map(micros))
                    .bind(i64::from(limit) + 1)
                    .fetch_all(self.reader())
                    .await?;
                    let mut data = rows.iter().map(entry_from_row).collect::<StoreResult<Vec<_>>>()?;
                    let next_cursor = if data.len() > limit as usize {
                        data.truncate(limit as usize);
                        data.last().map(|e| e.id.clone())
                    } else {
                        None
                    };
                    Ok(Page { data, next_cursor })
                }
            }
        }
    };
}

impl_audit_store!(sqlite_audit, crate::SqliteStore, sqlx::Sqlite);
impl_audit_store!(postgres_audit, crate::PostgresStore, sqlx::Postgres);
