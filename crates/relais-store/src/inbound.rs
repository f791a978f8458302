//! Inbound messages (P2A): what customers wrote to the tenant, on any channel, and what
//! NLU read in it (language, intent, sentiment, urgency) as a JSON annotation.
//!
//! Providers redeliver when they miss an acknowledgement (SMPP `deliver_sm` after a lost
//! `deliver_sm_resp`, webhooks after a timeout), so an insert is idempotent on the
//! provider's id: the second delivery gets the row the first one created.

use crate::{Page, PageRequest, StoreResult};
use async_trait::async_trait;
use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::media::MediaRef;
use serde::Serialize;

/// An inbound message to store, as the receive path built it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInboundMessage {
    pub id: String,
    pub tenant_id: String,
    pub channel: ChannelKind,
    /// The configured channel it arrived on, when there is one.
    pub channel_id: Option<String>,
    /// The sender, in the canonical form of its channel (E.164 for phones).
    pub from_address: String,
    pub to_address: String,
    /// The contact that owns the sender's identity, if any.
    pub contact_id: Option<String>,
    pub text: String,
    /// The payload of what the customer chose (a tapped button, or a numbered choice
    /// answered by its number), when they chose.
    pub payload: Option<String>,
    /// The media it carries (an image a web chat visitor uploaded), if any; the text may
    /// then be empty.
    pub media: Option<MediaRef>,
    /// The provider's id for the message; the key of deduplication.
    pub provider_id: Option<String>,
    pub received_at: Timestamp,
}

/// A stored inbound message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboundMessage {
    pub id: String,
    pub tenant_id: String,
    pub channel: ChannelKind,
    pub channel_id: Option<String>,
    pub from_address: String,
    pub to_address: String,
    pub contact_id: Option<String>,
    pub text: String,
    /// The payload of what the customer chose, when they chose (see [`NewInboundMessage`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The media it carries, if any (see [`NewInboundMessage`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaRef>,
    pub provider_id: Option<String>,
    pub received_at: Timestamp,
    /// What NLU read in the text; `None` until classified (or when classification failed).
    pub annotations: Option<serde_json::Value>,
    pub annotated_at: Option<Timestamp>,
    /// The conversation it belongs to, once the pipeline placed it.
    pub conversation_id: Option<String>,
    /// When the pipeline finished with it; `None` while (or if a crash stopped it) midway.
    pub processed_at: Option<Timestamp>,
}

/// The outcome of [`InboundStore::insert_inbound`].
#[derive(Debug, Clone, PartialEq)]
pub struct InboundInsert {
    /// The stored row: the new one, or the one an earlier delivery created.
    pub message: InboundMessage,
    /// `false` when the provider id was already known and nothing was written.
    pub created: bool,
}

/// What [`InboundStore::finish_inbound_many`] records of one message (see
/// [`InboundStore::finish_inbound`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InboundFinish<'a> {
    pub tenant_id: &'a str,
    pub id: &'a str,
    pub contact_id: Option<&'a str>,
    pub conversation_id: Option<&'a str>,
    pub annotations: Option<(&'a serde_json::Value, Timestamp)>,
    pub at: Timestamp,
}

/// When a contact last wrote on a channel kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastInbound {
    pub contact_id: String,
    pub channel: ChannelKind,
    pub at: Timestamp,
}

/// Which inbound messages [`InboundStore::list_inbound`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboundFilter {
    pub contact_id: Option<String>,
}

/// Storage for inbound messages; a supertrait of [`crate::Store`].
#[async_trait]
pub trait InboundStore: Send + Sync {
    /// Stores the message unless one with the same tenant, channel and provider id exists;
    /// either way returns the stored row.
    async fn insert_inbound(&self, message: &NewInboundMessage) -> StoreResult<InboundInsert>;
    /// [`InboundStore::insert_inbound`] for a group of messages, their outcomes in their
    /// order; a provider id listed twice is stored once (the first), the second gets the
    /// first's row with `created: false`. `Conflict` when a message's id is taken (a
    /// caller bug; nothing of its statement is stored).
    async fn insert_inbound_many(
        &self,
        messages: &[NewInboundMessage],
    ) -> StoreResult<Vec<InboundInsert>>;
    /// Replaces the message's annotations; `false` when the tenant has no such message.
    async fn set_inbound_annotations(
        &self,
        tenant: &str,
        id: &str,
        annotations: &serde_json::Value,
        at: Timestamp,
    ) -> StoreResult<bool>;
    async fn inbound_message(&self, tenant: &str, id: &str) -> StoreResult<Option<InboundMessage>>;
    /// The contact's latest `limit` inbound messages, newest first.
    async fn inbound_of_contact(
        &self,
        tenant: &str,
        contact_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<InboundMessage>>;
    /// The contact's latest `limit` inbound messages from `address` on the configured
    /// channel `channel_id`, newest first: what one web chat visitor wrote, however much
    /// the rest of the contact's history holds.
    async fn inbound_from_address(
        &self,
        tenant: &str,
        contact_id: &str,
        channel_id: &str,
        address: &str,
        limit: u32,
    ) -> StoreResult<Vec<InboundMessage>>;
    /// When each of the contacts last wrote on each channel kind (contacts and kinds
    /// without an inbound message are absent), in no order: what a customer-service
    /// window is measured from.
    async fn last_inbound_at(
        &self,
        tenant: &str,
        contact_ids: &[&str],
    ) -> StoreResult<Vec<LastInbound>>;
    /// Records that the pipeline finished with the message: its contact (created by the
    /// pipeline when the sender was unknown), its conversation, and its annotations with
    /// when they were made (kept as they are when `None`), in one write.
    async fn finish_inbound(
        &self,
        tenant: &str,
        id: &str,
        contact_id: Option<&str>,
        conversation_id: Option<&str>,
        annotations: Option<(&serde_json::Value, Timestamp)>,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// [`InboundStore::finish_inbound`] for a group of messages, as if finished one after
    /// the other.
    async fn finish_inbound_many(&self, finished: &[InboundFinish<'_>]) -> StoreResult<()>;
    /// Messages of every tenant that the pipeline has not finished, received before
    /// `before`, oldest first.
    async fn unfinished_inbound(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<InboundMessage>>;
    /// Oldest first (ids are UUIDv7, so id order is arrival order), by cursor.
    async fn list_inbound(
        &self,
        tenant: &str,
        filter: &InboundFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<InboundMessage>>;
}

macro_rules! impl_inbound_store {
    ($modname:ident, $store:ty, $db:ty) => {
        mod $modname {
            use super::*;
            use crate::{StoreError, from_micros, micros};
            use sqlx::Row;
            use std::collections::HashMap;

            type DbRow = <$db as sqlx::Database>::Row;

            const COLUMNS: &str = "id, tenant_id, channel, channel_id, from_address, to_address, contact_id, text, payload, media, provider_id, received_at, annotations, annotated_at, conversation_id, processed_at";

            fn inbound_from_row(row: &DbRow) -> StoreResult<InboundMessage> {
                let channel: String = row.try_get("channel")?;
                let annotations: Option<String> = row.try_get("annotations")?;
                let annotated_at: Option<i64> = row.try_get("annotated_at")?;
                let media: Option<String> = row.try_get("media")?;
                Ok(InboundMessage {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    channel: channel
                        .parse()
                        .map_err(|e: relais_core::channel::UnknownChannelKind| StoreError::Corrupt(e.to_string()))?,
                    channel_id: row.try_get("channel_id")?,
                    from_address: row.try_get("from_address")?,
                    to_address: row.try_get("to_address")?,
                    contact_id: row.try_get("contact_id")?,
                    text: row.try_get("text")?,
                    payload: row.try_get("payload")?,
                    media: media
                        .map(|s| serde_json::from_str(&s))
                        .transpose()
                        .map_err(|e| StoreError::Corrupt(format!("inbound media: {e}")))?,
                    provider_id: row.try_get("provider_id")?,
                    received_at: from_micros(row.try_get("received_at")?)?,
                    annotations: annotations
                        .map(|s| serde_json::from_str(&s))
                        .transpose()
                        .map_err(|e| StoreError::Corrupt(format!("inbound annotations: {e}")))?,
                    annotated_at: annotated_at.map(from_micros).transpose()?,
                    conversation_id: row.try_get("conversation_id")?,
                    processed_at: row.try_get::<Option<i64>, _>("processed_at")?.map(from_micros).transpose()?,
                })
            }

            #[async_trait]
            impl InboundStore for $store {
                async fn insert_inbound(&self, m: &NewInboundMessage) -> StoreResult<InboundInsert> {
                    self.insert_inbound_many(std::slice::from_ref(m))
                        .await?
                        .pop()
                        .ok_or_else(|| StoreError::Corrupt(format!("inbound message {} has no outcome", m.id)))
                }

                async fn insert_inbound_many(&self, messages: &[NewInboundMessage]) -> StoreResult<Vec<InboundInsert>> {
                    // The new rows come back with the insert: one statement for a group of
                    // new messages. The insert skips a provider id already stored, or listed
                    // earlier in the group; those rows are read afterwards, at once.
                    let mut created: HashMap<String, DbRow> = HashMap::with_capacity(messages.len());
                    // By provider id (a stable sort: a repeat stays after the first), so that
                    // two groups holding the same ids wait for each other in the same order
                    // on PostgreSQL instead of deadlocking.
                    let mut order: Vec<&NewInboundMessage> = messages.iter().collect();
                    order.sort_by(|a, b| {
                        (&a.tenant_id, a.channel.as_str(), &a.provider_id).cmp(&(&b.tenant_id, b.channel.as_str(), &b.provider_id))
                    });
                    for chunk in order.chunks(crate::ROWS_PER_STATEMENT) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "INSERT INTO inbound_messages (id, tenant_id, channel, channel_id, from_address, to_address, contact_id, text, payload, media, provider_id, received_at) ",
                        );
                        q.push_values(chunk, |mut row, m| {
                            row.push_bind(m.id.as_str())
                                .push_bind(m.tenant_id.as_str())
                                .push_bind(m.channel.as_str())
                                .push_bind(m.channel_id.as_deref())
                                .push_bind(m.from_address.as_str())
                                .push_bind(m.to_address.as_str())
                                .push_bind(m.contact_id.as_deref())
                                .push_bind(m.text.as_str())
                                .push_bind(m.payload.as_deref())
                                .push_bind(m.media.as_ref().map(|media| serde_json::json!(media).to_string()))
                                .push_bind(m.provider_id.as_deref())
                                .push_bind(micros(m.received_at));
                        });
                        q.push(format_args!(" ON CONFLICT (tenant_id, channel, provider_id) DO NOTHING RETURNING {COLUMNS}"));
                        let rows = q.build().fetch_all(self.writer()).await.map_err(|e| match &e {
                            // Only the id can conflict otherwise: a caller bug.
                            sqlx::Error::Database(db) if crate::noted(db.is_unique_violation()) => {
                                StoreError::Conflict(format!("an inbound message's id is taken: {}", db.message()))
                            }
                            _ => e.into(),
                        })?;
                        for row in rows {
                            created.insert(row.try_get("id")?, row);
                        }
                    }
                    // Each new row goes to the first message with its id; the others are
                    // known already.
                    let mut outcomes: Vec<Option<InboundInsert>> = Vec::with_capacity(messages.len());
                    let mut known: Vec<(&str, &str, &str)> = Vec::new();
                    for m in messages {
                        match created.remove(&m.id) {
                            Some(row) => outcomes.push(Some(InboundInsert { message: inbound_from_row(&row)?, created: true })),
                            None => {
                                // Without a provider id, only the id can conflict, which the
                                // insert refused above: a caller bug.
                                let provider_id = m.provider_id.as_deref().ok_or_else(|| {
                                    StoreError::Conflict(format!("inbound message {} already exists", m.id))
                                })?;
                                known.push((m.tenant_id.as_str(), m.channel.as_str(), provider_id));
                                outcomes.push(None);
                            }
                        }
                    }
                    let mut stored: HashMap<(String, String, String), InboundMessage> = HashMap::with_capacity(known.len());
                    for chunk in known.chunks(crate::ROWS_PER_STATEMENT) {
                        // `IN (SELECT … FROM (VALUES …))`, which SQLite looks up by the unique
                        // index, where `IN (VALUES …)` scans the table.
                        let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                            "SELECT {COLUMNS} FROM inbound_messages WHERE (tenant_id, channel, provider_id) IN \
                             (SELECT column1, column2, column3 FROM ("
                        ));
                        q.push_values(chunk, |mut row, (tenant, channel, provider_id)| {
                            row.push_bind(*tenant).push_bind(*channel).push_bind(*provider_id);
                        });
                        q.push(") AS v)");
                        for row in q.build().fetch_all(self.writer()).await? {
                            let message = inbound_from_row(&row)?;
                            let key = (
                                message.tenant_id.clone(),
                                message.channel.as_str().to_owned(),
                                message.provider_id.clone().unwrap_or_default(),
                            );
                            stored.insert(key, message);
                        }
                    }
                    messages
                        .iter()
                        .zip(outcomes)
                        .map(|(m, outcome)| match outcome {
                            Some(outcome) => Ok(outcome),
                            None => {
                                let key = (
                                    m.tenant_id.clone(),
                                    m.channel.as_str().to_owned(),
                                    m.provider_id.clone().unwrap_or_default(),
                                );
                                // Skipped by the insert, yet gone since (deleted meanwhile).
                                let message = stored.get(&key).cloned().ok_or_else(|| {
                                    StoreError::Conflict(format!("inbound message {} already exists", m.id))
                                })?;
                                Ok(InboundInsert { message, created: false })
                            }
                        })
                        .collect()
                }

                async fn set_inbound_annotations(
                    &self,
                    tenant: &str,
                    id: &str,
                    annotations: &serde_json::Value,
                    at: Timestamp,
                ) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "UPDATE inbound_messages SET annotations = $1, annotated_at = $2 WHERE tenant_id = $3 AND id = $4",
                    )
                    .bind(annotations.to_string())
                    .bind(micros(at))
                    .bind(tenant)
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn inbound_message(&self, tenant: &str, id: &str) -> StoreResult<Option<InboundMessage>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM inbound_messages WHERE tenant_id = $1 AND id = $2"
                    )))
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(inbound_from_row)
                    .transpose()
                }

                async fn inbound_of_contact(&self, tenant: &str, contact_id: &str, limit: u32) -> StoreResult<Vec<InboundMessage>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM inbound_messages WHERE tenant_id = $1 AND contact_id = $2 ORDER BY id DESC LIMIT $3"
                    )))
                    .bind(tenant)
                    .bind(contact_id)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(inbound_from_row)
                    .collect()
                }

                async fn inbound_from_address(
                    &self,
                    tenant: &str,
                    contact_id: &str,
                    channel_id: &str,
                    address: &str,
                    limit: u32,
                ) -> StoreResult<Vec<InboundMessage>> {
                    // The contact's index narrows it to their messages; a visitor's few
                    // are then picked among them.
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM inbound_messages WHERE tenant_id = $1 AND contact_id = $2 \
                         AND channel_id = $3 AND from_address = $4 ORDER BY id DESC LIMIT $5"
                    )))
                    .bind(tenant)
                    .bind(contact_id)
                    .bind(channel_id)
                    .bind(address)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(inbound_from_row)
                    .collect()
                }

                async fn last_inbound_at(&self, tenant: &str, contact_ids: &[&str]) -> StoreResult<Vec<LastInbound>> {
                    let mut found = Vec::new();
                    for chunk in contact_ids.chunks(crate::ROWS_PER_STATEMENT) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "SELECT contact_id, channel, MAX(received_at) AS at FROM inbound_messages WHERE tenant_id = ",
                        );
                        q.push_bind(tenant).push(" AND contact_id IN (");
                        let mut ids = q.separated(", ");
                        for id in chunk {
                            ids.push_bind(*id);
                        }
                        q.push(") GROUP BY contact_id, channel");
                        for row in q.build().fetch_all(self.reader()).await? {
                            let channel: String = row.try_get("channel")?;
                            found.push(LastInbound {
                                contact_id: row.try_get("contact_id")?,
                                channel: channel.parse().map_err(
                                    |e: relais_core::channel::UnknownChannelKind| StoreError::Corrupt(e.to_string()),
                                )?,
                                at: from_micros(row.try_get("at")?)?,
                            });
                        }
                    }
                    Ok(found)
                }

                async fn finish_inbound(
                    &self,
                    tenant: &str,
                    id: &str,
                    contact_id: Option<&str>,
                    conversation_id: Option<&str>,
                    annotations: Option<(&serde_json::Value, Timestamp)>,
                    at: Timestamp,
                ) -> StoreResult<()> {
                    self.finish_inbound_many(&[InboundFinish {
                        tenant_id: tenant,
                        id,
                        contact_id,
                        conversation_id,
                        annotations,
                        at,
                    }])
                    .await
                }

                async fn finish_inbound_many(&self, finished: &[InboundFinish<'_>]) -> StoreResult<()> {
                    // One row per message: one finished twice in the group gets what two
                    // finishes in a row leave (the later's values, the earlier's contact and
                    // annotations where the later has none).
                    let mut rows: Vec<InboundFinish<'_>> = Vec::with_capacity(finished.len());
                    let mut row_of: HashMap<(&str, &str), usize> = HashMap::with_capacity(finished.len());
                    for f in finished {
                        match row_of.get(&(f.tenant_id, f.id)) {
                            Some(&i) => {
                                let earlier = rows[i];
                                rows[i] = InboundFinish {
                                    contact_id: f.contact_id.or(earlier.contact_id),
                                    annotations: f.annotations.or(earlier.annotations),
                                    ..*f
                                };
                            }
                            None => {
                                row_of.insert((f.tenant_id, f.id), rows.len());
                                rows.push(*f);
                            }
                        }
                    }
                    // In one order, so that two groups lock their rows alike (PostgreSQL).
                    rows.sort_by_key(|f| (f.tenant_id, f.id));
                    for chunk in rows.chunks(crate::ROWS_PER_STATEMENT) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "WITH v (tenant_id, id, contact_id, conversation_id, processed_at, annotations, annotated_at) AS (",
                        );
                        q.push_values(chunk, |mut row, f| {
                            row.push_bind(f.tenant_id)
                                .push_bind(f.id)
                                .push_bind(f.contact_id)
                                .push_bind(f.conversation_id)
                                .push_bind(micros(f.at))
                                .push_bind(f.annotations.map(|(a, _)| a.to_string()))
                                .push_bind(f.annotations.map(|(_, at)| micros(at)));
                        });
                        q.push(
                            ") UPDATE inbound_messages SET contact_id = COALESCE(v.contact_id, inbound_messages.contact_id), \
                               conversation_id = v.conversation_id, processed_at = v.processed_at, \
                               annotations = COALESCE(v.annotations, inbound_messages.annotations), \
                               annotated_at = COALESCE(v.annotated_at, inbound_messages.annotated_at) \
                             FROM v WHERE inbound_messages.tenant_id = v.tenant_id AND inbound_messages.id = v.id",
                        );
                        q.build().execute(self.writer()).await?;
                    }
                    Ok(())
                }

                async fn unfinished_inbound(&self, before: Timestamp, limit: u32) -> StoreResult<Vec<InboundMessage>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM inbound_messages WHERE processed_at IS NULL AND received_at < $1 \
                         ORDER BY received_at, id LIMIT $2"
                    )))
                    .bind(micros(before))
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(inbound_from_row)
                    .collect()
                }

                async fn list_inbound(
                    &self,
                    tenant: &str,
                    filter: &InboundFilter,
                    page: &PageRequest,
                ) -> StoreResult<Page<InboundMessage>> {
                    let limit = i64::from(page.limit.clamp(1, 1000));
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM inbound_messages \
                         WHERE tenant_id = $1 AND id > $2 AND ($3 IS NULL OR contact_id = $3) \
                         ORDER BY id LIMIT $4"
                    )))
                    .bind(tenant)
                    .bind(page.after.as_deref().unwrap_or(""))
                    .bind(filter.contact_id.clone())
                    .bind(limit + 1)
                    .fetch_all(self.reader())
                    .await?;
                    let mut data = rows.iter().map(inbound_from_row).collect::<StoreResult<Vec<_>>>()?;
                    let more = data.len() as i64 > limit;
                    data.truncate(limit as usize);
                    let next_cursor = if more { data.last().map(|m| m.id.clone()) } else { None };
                    Ok(Page { data, next_cursor })
                }
            }
        }
    };
}

impl_inbound_store!(sqlite_inbound, crate::SqliteStore, sqlx::Sqlite);
impl_inbound_store!(postgres_inbound, crate::PostgresStore, sqlx::Postgres);
