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

            type DbRow = <$db as sqlx::Database>::Row;

            const COLUMNS: &str = "id, tenant_id, channel, channel_id, from_address, to_address, contact_id, text, provider_id, received_at, annotations, annotated_at, conversation_id, processed_at";

            fn inbound_from_row(row: &DbRow) -> StoreResult<InboundMessage> {
                let channel: String = row.try_get("channel")?;
                let annotations: Option<String> = row.try_get("annotations")?;
                let annotated_at: Option<i64> = row.try_get("annotated_at")?;
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
                    // The new row comes back with the insert: one round trip for a new message.
                    let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO inbound_messages (id, tenant_id, channel, channel_id, from_address, to_address, contact_id, text, provider_id, received_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                         ON CONFLICT (tenant_id, channel, provider_id) DO NOTHING RETURNING {COLUMNS}"
                    )))
                    .bind(m.id.as_str())
                    .bind(m.tenant_id.as_str())
                    .bind(m.channel.as_str())
                    .bind(m.channel_id.clone())
                    .bind(m.from_address.as_str())
                    .bind(m.to_address.as_str())
                    .bind(m.contact_id.clone())
                    .bind(m.text.as_str())
                    .bind(m.provider_id.clone())
                    .bind(micros(m.received_at))
                    .fetch_optional(self.writer())
                    .await?;
                    let created = inserted.is_some();
                    let row = match inserted {
                        Some(row) => Some(row),
                        None => sqlx::query(sqlx::AssertSqlSafe(format!(
                            "SELECT {COLUMNS} FROM inbound_messages WHERE tenant_id = $1 AND channel = $2 AND provider_id = $3"
                        )))
                        .bind(m.tenant_id.as_str())
                        .bind(m.channel.as_str())
                        .bind(m.provider_id.clone())
                        .fetch_optional(self.writer())
                        .await?,
                    };
                    // Only the id can conflict when there is no provider id: a caller bug.
                    let row = row.ok_or_else(|| {
                        StoreError::Conflict(format!("inbound message {} already exists", m.id))
                    })?;
                    Ok(InboundInsert {
                        message: inbound_from_row(&row)?,
                        created,
                    })
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

                async fn finish_inbound(
                    &self,
                    tenant: &str,
                    id: &str,
                    contact_id: Option<&str>,
                    conversation_id: Option<&str>,
                    annotations: Option<(&serde_json::Value, Timestamp)>,
                    at: Timestamp,
                ) -> StoreResult<()> {
                    sqlx::query(
                        "UPDATE inbound_messages SET contact_id = COALESCE($1, contact_id), conversation_id = $2, processed_at = $3, \
                           annotations = COALESCE($6, annotations), annotated_at = COALESCE($7, annotated_at) \
                         WHERE tenant_id = $4 AND id = $5",
                    )
                    .bind(contact_id)
                    .bind(conversation_id)
                    .bind(micros(at))
                    .bind(tenant)
                    .bind(id)
                    .bind(annotations.map(|(a, _)| a.to_string()))
                    .bind(annotations.map(|(_, at)| micros(at)))
                    .execute(self.writer())
                    .await?;
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
