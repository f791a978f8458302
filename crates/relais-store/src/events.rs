//! The live event log: what happened in a tenant (a message received, a conversation's
//! state changed…), read by `GET /v1/events/stream` clients in order and resumed after the
//! last one they saw.
//!
//! Invariant: a tenant's events are numbered 1, 2, 3… without gaps, and a reader that has
//! seen every event up to N never later finds a new one numbered N or less. The number
//! comes from the tenant's counter row, bumped in the transaction that inserts the event,
//! so that on PostgreSQL one tenant's appends commit in their order (a plain sequence
//! hands out numbers in one order and commits in another). A gap a reader meets is
//! therefore always events pruned by retention ([`EventStore::prune_events`]).

use crate::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub tenant_id: String,
    /// `message.received`, `conversation.state_changed`…
    pub kind: String,
    pub conversation_id: Option<String>,
    /// The team whose agents may see it, when it concerns one.
    pub team: Option<String>,
    pub data: serde_json::Value,
    /// Makes the append idempotent: a second event with the key of one already in the
    /// tenant's log is not appended (the first one is returned).
    pub key: Option<String>,
    pub at: Timestamp,
}

/// An event of the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamEvent {
    pub tenant_id: String,
    /// Its place in the tenant's log, from 1.
    pub seq: i64,
    /// Unique across tenants.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub conversation_id: Option<String>,
    pub team: Option<String>,
    pub data: serde_json::Value,
    pub at: Timestamp,
}

/// Storage for the event log; a supertrait of [`crate::Store`].
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends an event with the tenant's next number; with a key already used in the
    /// tenant's log, appends nothing and returns the event that holds it.
    async fn append_event(&self, event: &NewEvent) -> StoreResult<StreamEvent>;
    /// The tenant's events numbered above `after_seq`, in order, `limit` at most.
    async fn events_after(
        &self,
        tenant: &str,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<StreamEvent>>;
    /// The number of the tenant's latest event (0 before the first), pruned or not.
    async fn latest_event_seq(&self, tenant: &str) -> StoreResult<i64>;
    /// Deletes the events (of every tenant) that happened before `before`; how many.
    async fn prune_events(&self, before: Timestamp) -> StoreResult<u64>;
}

/// Events deleted per statement while pruning: one statement holds the SQLite writer for
/// a few milliseconds, not the seconds a week of a busy tenant's events would take.
const PRUNE_BATCH: i64 = 5_000;

macro_rules! impl_event_store {
    ($modname:ident, $store:ty, $db:ty) => {
        mod $modname {
            use super::*;
            use crate::{StoreError, from_micros, micros, new_id};
            use sqlx::Row;

            type DbRow = <$db as sqlx::Database>::Row;

            const COLUMNS: &str = "tenant_id, seq, id, type, conversation_id, team, data, at";

            fn event_from_row(row: &DbRow) -> StoreResult<StreamEvent> {
                let data: String = row.try_get("data")?;
                Ok(StreamEvent {
                    tenant_id: row.try_get("tenant_id")?,
                    seq: row.try_get("seq")?,
                    id: row.try_get("id")?,
                    kind: row.try_get("type")?,
                    conversation_id: row.try_get("conversation_id")?,
                    team: row.try_get("team")?,
                    data: serde_json::from_str(&data)
                        .map_err(|e| StoreError::Corrupt(format!("event data: {e}")))?,
                    at: from_micros(row.try_get("at")?)?,
                })
            }

            #[async_trait]
            impl EventStore for $store {
                async fn append_event(&self, event: &NewEvent) -> StoreResult<StreamEvent> {
                    let mut tx = self.begin_write().await?;
                    // The counter row is locked until the commit: the tenant's next append
                    // waits here, and so commits after this one.
                    let seq: i64 = sqlx::query_scalar(
                        "INSERT INTO stream_event_seqs (tenant_id, seq) VALUES ($1, 1) \
                         ON CONFLICT (tenant_id) DO UPDATE SET seq = stream_event_seqs.seq + 1 \
                         RETURNING seq",
                    )
                    .bind(event.tenant_id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                    let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO stream_events (tenant_id, seq, id, type, conversation_id, team, data, key, at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING \
                         RETURNING {COLUMNS}"
                    )))
                    .bind(event.tenant_id.as_str())
                    .bind(seq)
                    .bind(new_id())
                    .bind(event.kind.as_str())
                    .bind(event.conversation_id.as_deref())
                    .bind(event.team.as_deref())
                    .bind(event.data.to_string())
                    .bind(event.key.as_deref())
                    .bind(micros(event.at))
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(row) = inserted {
                        tx.commit().await?;
                        return event_from_row(&row);
                    }
                    // The key is taken (the counter lock above ordered us after its
                    // commit, so it is visible): undo the bump, keeping the log gap-free.
                    tx.rollback().await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM stream_events WHERE tenant_id = $1 AND key = $2"
                    )))
                    .bind(event.tenant_id.as_str())
                    .bind(event.key.as_deref())
                    .fetch_optional(self.writer())
                    .await?
                    .as_ref()
                    .map(event_from_row)
                    .transpose()?
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "event {seq} of tenant {} conflicts with no stored event",
                            event.tenant_id
                        ))
                    })
                }

                async fn events_after(
                    &self,
                    tenant: &str,
                    after_seq: i64,
                    limit: u32,
                ) -> StoreResult<Vec<StreamEvent>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM stream_events WHERE tenant_id = $1 AND seq > $2 \
                         ORDER BY seq LIMIT $3"
                    )))
                    .bind(tenant)
                    .bind(after_seq)
                    .bind(i64::from(limit.max(1)))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(event_from_row)
                    .collect()
                }

                async fn latest_event_seq(&self, tenant: &str) -> StoreResult<i64> {
                    let seq: Option<i64> =
                        sqlx::query_scalar("SELECT seq FROM stream_event_seqs WHERE tenant_id = $1")
                            .bind(tenant)
                            .fetch_optional(self.reader())
                            .await?;
                    Ok(seq.unwrap_or(0))
                }

                async fn prune_events(&self, before: Timestamp) -> StoreResult<u64> {
                    let mut pruned = 0;
                    loop {
                        let done = sqlx::query(
                            "DELETE FROM stream_events WHERE (tenant_id, seq) IN \
                             (SELECT tenant_id, seq FROM stream_events WHERE at < $1 LIMIT $2)",
                        )
                        .bind(micros(before))
                        .bind(PRUNE_BATCH)
                        .execute(self.writer())
                        .await?
                        .rows_affected();
                        pruned += done;
                        if done < PRUNE_BATCH as u64 {
                            return Ok(pruned);
                        }
                    }
                }
            }
        }
    };
}

impl_event_store!(sqlite_events, crate::SqliteStore, sqlx::Sqlite);
impl_event_store!(postgres_events, crate::PostgresStore, sqlx::Postgres);
