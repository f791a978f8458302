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
    /// [`EventStore::append_event`] for several events (of one tenant or several),
    /// appended in their order in one transaction; the stored events in the same order. An
    /// event with a key already used, in the log or earlier in `events`, is not appended:
    /// its place holds the event that has the key.
    async fn append_events(&self, events: &[NewEvent]) -> StoreResult<Vec<StreamEvent>>;
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
            use std::collections::{BTreeMap, HashMap};

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

                async fn append_events(&self, events: &[NewEvent]) -> StoreResult<Vec<StreamEvent>> {
                    if events.is_empty() {
                        return Ok(Vec::new());
                    }
                    // The order matters, as in `append_event`:
                    // 1. Each tenant's counter is bumped by its number of events first. On
                    //    PostgreSQL this locks its row until the commit: the tenant's other
                    //    appends wait, so they commit after this one and with higher numbers,
                    //    and every append that took the lock before us has committed (tenants
                    //    are taken in one order, so two groups never wait for each other
                    //    crosswise). On SQLite `begin_write` holds the write lock anyway.
                    // 2. Only then are the keys read: under the lock, every event that holds
                    //    one of them is committed and visible (each statement of a PostgreSQL
                    //    transaction sees what committed before it began).
                    // 3. The events whose key is free are numbered from the counter's old
                    //    value on and inserted; if some were not (a key in use), the counters
                    //    are set back to the last number handed out, so the log has no gap.
                    let mut count: BTreeMap<&str, i64> = BTreeMap::new();
                    for event in events {
                        *count.entry(event.tenant_id.as_str()).or_default() += 1;
                    }
                    let count: Vec<(&str, i64)> = count.into_iter().collect();
                    let mut tx = self.begin_write().await?;
                    let mut next: HashMap<String, i64> = HashMap::with_capacity(count.len());
                    for chunk in count.chunks(crate::ROWS_PER_STATEMENT) {
                        let mut q = sqlx::QueryBuilder::<$db>::new("INSERT INTO stream_event_seqs (tenant_id, seq) ");
                        q.push_values(chunk, |mut row, (tenant, n)| {
                            row.push_bind(*tenant).push_bind(*n);
                        });
                        q.push(
                            " ON CONFLICT (tenant_id) DO UPDATE SET seq = stream_event_seqs.seq + excluded.seq \
                             RETURNING tenant_id, seq",
                        );
                        for row in q.build().fetch_all(&mut *tx).await? {
                            next.insert(row.try_get("tenant_id")?, row.try_get::<i64, _>("seq")?);
                        }
                    }
                    // From the new top of each counter to the first number of the group.
                    for (tenant, n) in &count {
                        let top = next.get_mut(*tenant).ok_or_else(|| {
                            StoreError::Corrupt(format!("the event counter of tenant {tenant} was not bumped"))
                        })?;
                        *top -= n - 1;
                    }

                    let mut keys: Vec<(&str, &str)> = events
                        .iter()
                        .filter_map(|e| Some((e.tenant_id.as_str(), e.key.as_deref()?)))
                        .collect();
                    keys.sort_unstable();
                    keys.dedup();
                    let mut taken: HashMap<(String, String), StreamEvent> = HashMap::new();
                    for chunk in keys.chunks(crate::ROWS_PER_STATEMENT) {
                        // `key IS NOT NULL` lets SQLite use the (partial) index of keys, and
                        // `IN (SELECT … FROM (VALUES …))` look it up; `IN (VALUES …)` scans.
                        let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                            "SELECT {COLUMNS}, key FROM stream_events WHERE key IS NOT NULL AND (tenant_id, key) IN \
                             (SELECT column1, column2 FROM ("
                        ));
                        q.push_values(chunk, |mut row, (tenant, key)| {
                            row.push_bind(*tenant).push_bind(*key);
                        });
                        q.push(") AS v)");
                        for row in q.build().fetch_all(&mut *tx).await? {
                            let event = event_from_row(&row)?;
                            taken.insert((event.tenant_id.clone(), row.try_get("key")?), event);
                        }
                    }

                    /// Where an event of the group stands.
                    enum Place {
                        /// The `n`th of those appended.
                        New(usize),
                        /// Its key is held by this event of the log.
                        Taken(StreamEvent),
                    }
                    let mut places = Vec::with_capacity(events.len());
                    let mut appended: Vec<(&NewEvent, i64, String)> = Vec::with_capacity(events.len());
                    let mut new_keys: HashMap<(&str, &str), usize> = HashMap::new();
                    for event in events {
                        let tenant = event.tenant_id.as_str();
                        if let Some(key) = event.key.as_deref() {
                            if let Some(holder) = taken.get(&(tenant.to_owned(), key.to_owned())) {
                                places.push(Place::Taken(holder.clone()));
                                continue;
                            }
                            if let Some(&n) = new_keys.get(&(tenant, key)) {
                                places.push(Place::New(n));
                                continue;
                            }
                            new_keys.insert((tenant, key), appended.len());
                        }
                        let seq = next.get_mut(tenant).ok_or_else(|| {
                            StoreError::Corrupt(format!("the event counter of tenant {tenant} was not bumped"))
                        })?;
                        places.push(Place::New(appended.len()));
                        appended.push((event, *seq, new_id()));
                        *seq += 1;
                    }
                    let mut new: Vec<StreamEvent> = Vec::with_capacity(appended.len());
                    if appended.is_empty() {
                        // Every key was in use: nothing to append, and the bump is undone.
                        tx.rollback().await?;
                    } else {
                        let mut stored: HashMap<String, StreamEvent> = HashMap::with_capacity(appended.len());
                        for chunk in appended.chunks(crate::ROWS_PER_STATEMENT) {
                            let mut q = sqlx::QueryBuilder::<$db>::new(
                                "INSERT INTO stream_events (tenant_id, seq, id, type, conversation_id, team, data, key, at) ",
                            );
                            q.push_values(chunk, |mut row, (event, seq, id)| {
                                row.push_bind(event.tenant_id.as_str())
                                    .push_bind(*seq)
                                    .push_bind(id.as_str())
                                    .push_bind(event.kind.as_str())
                                    .push_bind(event.conversation_id.as_deref())
                                    .push_bind(event.team.as_deref())
                                    .push_bind(event.data.to_string())
                                    .push_bind(event.key.as_deref())
                                    .push_bind(micros(event.at));
                            });
                            q.push(format_args!(" RETURNING {COLUMNS}"));
                            for row in q.build().fetch_all(&mut *tx).await? {
                                let event = event_from_row(&row)?;
                                stored.insert(event.id.clone(), event);
                            }
                        }
                        if appended.len() < events.len() {
                            // Keys in use: the counters go back to the last number handed out.
                            let last: Vec<(&str, i64)> = count
                                .iter()
                                .map(|(tenant, _)| (*tenant, next.get(*tenant).map_or(0, |next| next - 1)))
                                .collect();
                            for chunk in last.chunks(crate::ROWS_PER_STATEMENT) {
                                let mut q = sqlx::QueryBuilder::<$db>::new("INSERT INTO stream_event_seqs (tenant_id, seq) ");
                                q.push_values(chunk, |mut row, (tenant, seq)| {
                                    row.push_bind(*tenant).push_bind(*seq);
                                });
                                q.push(" ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq");
                                q.build().execute(&mut *tx).await?;
                            }
                        }
                        tx.commit().await?;
                        for (_, _, id) in &appended {
                            new.push(stored.remove(id).ok_or_else(|| {
                                StoreError::Corrupt(format!("appended event {id} did not come back"))
                            })?);
                        }
                    }
                    places
                        .into_iter()
                        .map(|place| match place {
                            Place::New(n) => new
                                .get(n)
                                .cloned()
                                .ok_or_else(|| StoreError::Corrupt("an event was numbered but not appended".into())),
                            Place::Taken(holder) => Ok(holder),
                        })
                        .collect()
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
