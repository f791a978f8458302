//! Conversations: one thread per contact across every channel, with where the customer
//! last wrote (a reply goes there) and its state (`bot`, `pending`, `open`, `resolved`).

use crate::{Page, PageRequest, StoreResult};
use async_trait::async_trait;
use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::conversation::ConversationState;
use serde::Serialize;

/// A stored conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversation {
    pub id: String,
    pub tenant_id: String,
    pub contact_id: String,
    pub state: ConversationState,
    /// The channel the customer last wrote on.
    pub channel: ChannelKind,
    /// The configured channel it arrived on, when there is one.
    pub channel_id: Option<String>,
    /// The customer's address on that channel.
    pub address: String,
    /// The latest message, in or out: `{"direction", "text", "channel", "at"}`.
    pub last_message: serde_json::Value,
    pub last_message_at: Timestamp,
    pub last_inbound_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    /// The team it waits for, when a flow handed it off to one.
    pub team: Option<String>,
}

/// A customer's message placed in their conversation (see
/// [`ConversationStore::place_inbound`]).
#[derive(Debug, Clone, PartialEq)]
pub struct InboundPlacement<'a> {
    pub tenant_id: &'a str,
    pub contact_id: &'a str,
    /// The message placed: placing it again (a run after a crash) reopens nothing.
    pub message_id: &'a str,
    pub channel: ChannelKind,
    pub channel_id: Option<&'a str>,
    pub address: &'a str,
    pub last_message: &'a serde_json::Value,
    pub at: Timestamp,
    /// The state of a new conversation, and of a resolved one the message reopens.
    pub state: ConversationState,
    /// Whether the message reopens a resolved conversation (a keyword does not).
    pub reopens: bool,
}

/// Which conversations [`ConversationStore::list_conversations`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationFilter {
    pub state: Option<ConversationState>,
    pub contact_id: Option<String>,
}

/// Storage for conversations; a supertrait of [`crate::Store`].
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// The contact's conversation with the message placed in it: created when the contact
    /// has none, reopened when resolved and `reopens`; either way it now says where the
    /// customer last wrote.
    async fn place_inbound(&self, placement: &InboundPlacement<'_>) -> StoreResult<Conversation>;
    async fn conversation(&self, tenant: &str, id: &str) -> StoreResult<Option<Conversation>>;
    /// Most recent activity first, by cursor.
    async fn list_conversations(
        &self,
        tenant: &str,
        filter: &ConversationFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Conversation>>;
    /// Moves the conversation to `state` (resolving stamps `resolved_at`); `None` when the
    /// tenant has no such conversation.
    async fn set_conversation_state(
        &self,
        tenant: &str,
        id: &str,
        state: ConversationState,
        at: Timestamp,
    ) -> StoreResult<Option<Conversation>>;
    /// Records a reply sent in the conversation as its latest message.
    async fn note_conversation_reply(
        &self,
        tenant: &str,
        id: &str,
        last_message: &serde_json::Value,
        at: Timestamp,
    ) -> StoreResult<()>;
}

/// The cursor of a page of conversations: the last one's activity time and id.
fn cursor_of(c: &Conversation) -> String {
    format!("{}.{}", crate::micros(c.last_message_at), c.id)
}

fn parse_cursor(cursor: &str) -> StoreResult<(i64, String)> {
    cursor
        .split_once('.')
        .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())))
        .ok_or_else(|| {
            crate::StoreError::Invalid(format!("`{cursor}` is not a cursor of this list"))
        })
}

macro_rules! impl_conversation_store {
    ($modname:ident, $store:ty, $db:ty) => {
        mod $modname {
            use super::*;
            use crate::{StoreError, from_micros, micros, new_id};
            use sqlx::Row;

            type DbRow = <$db as sqlx::Database>::Row;

            const COLUMNS: &str = "id, tenant_id, contact_id, state, channel, channel_id, address, last_message, last_message_at, last_inbound_at, created_at, updated_at, resolved_at, team";

            fn conversation_from_row(row: &DbRow) -> StoreResult<Conversation> {
                let state: String = row.try_get("state")?;
                let channel: String = row.try_get("channel")?;
                let last: String = row.try_get("last_message")?;
                Ok(Conversation {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    contact_id: row.try_get("contact_id")?,
                    state: ConversationState::parse(&state).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    channel: channel
                        .parse()
                        .map_err(|e: relais_core::channel::UnknownChannelKind| StoreError::Corrupt(e.to_string()))?,
                    channel_id: row.try_get("channel_id")?,
                    address: row.try_get("address")?,
                    last_message: serde_json::from_str(&last)
                        .map_err(|e| StoreError::Corrupt(format!("conversation last message: {e}")))?,
                    last_message_at: from_micros(row.try_get("last_message_at")?)?,
                    last_inbound_at: from_micros(row.try_get("last_inbound_at")?)?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                    updated_at: from_micros(row.try_get("updated_at")?)?,
                    resolved_at: row.try_get::<Option<i64>, _>("resolved_at")?.map(from_micros).transpose()?,
                    team: row.try_get("team")?,
                })
            }

            #[async_trait]
            impl ConversationStore for $store {
                async fn place_inbound(&self, p: &InboundPlacement<'_>) -> StoreResult<Conversation> {
                    let at = micros(p.at);
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO conversations (id, tenant_id, contact_id, state, channel, channel_id, address, last_message, last_message_at, last_inbound_at, created_at, updated_at, resolved_at, last_inbound_id) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $9, $9, CASE WHEN $4 = 'resolved' THEN $9 END, $11) \
                         ON CONFLICT (tenant_id, contact_id) DO UPDATE SET \
                           channel = excluded.channel, channel_id = excluded.channel_id, address = excluded.address, \
                           last_message = excluded.last_message, last_message_at = excluded.last_message_at, \
                           last_inbound_at = excluded.last_inbound_at, updated_at = excluded.updated_at, \
                           last_inbound_id = excluded.last_inbound_id, \
                           state = CASE WHEN conversations.state = 'resolved' AND $10 AND COALESCE(conversations.last_inbound_id, '') <> excluded.last_inbound_id THEN excluded.state ELSE conversations.state END, \
                           resolved_at = CASE WHEN conversations.state = 'resolved' AND $10 AND COALESCE(conversations.last_inbound_id, '') <> excluded.last_inbound_id THEN NULL ELSE conversations.resolved_at END, \
                           team = CASE WHEN conversations.state = 'resolved' AND $10 AND COALESCE(conversations.last_inbound_id, '') <> excluded.last_inbound_id THEN NULL ELSE conversations.team END \
                         RETURNING {COLUMNS}"
                    )))
                    .bind(new_id())
                    .bind(p.tenant_id)
                    .bind(p.contact_id)
                    .bind(p.state.as_str())
                    .bind(p.channel.as_str())
                    .bind(p.channel_id)
                    .bind(p.address)
                    .bind(p.last_message.to_string())
                    .bind(at)
                    .bind(p.reopens)
                    .bind(p.message_id)
                    .fetch_one(self.writer())
                    .await?;
                    conversation_from_row(&row)
                }

                async fn conversation(&self, tenant: &str, id: &str) -> StoreResult<Option<Conversation>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM conversations WHERE tenant_id = $1 AND id = $2"
                    )))
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(conversation_from_row)
                    .transpose()
                }

                async fn list_conversations(
                    &self,
                    tenant: &str,
                    filter: &ConversationFilter,
                    page: &PageRequest,
                ) -> StoreResult<Page<Conversation>> {
                    let limit = i64::from(page.limit.clamp(1, 1000));
                    let (before_at, before_id) = match page.after.as_deref() {
                        Some(cursor) => parse_cursor(cursor)?,
                        None => (i64::MAX, String::new()),
                    };
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM conversations \
                         WHERE tenant_id = $1 AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR contact_id = $3) \
                           AND (last_message_at < $4 OR (last_message_at = $4 AND id < $5)) \
                         ORDER BY last_message_at DESC, id DESC LIMIT $6"
                    )))
                    .bind(tenant)
                    .bind(filter.state.map(|s| s.as_str()))
                    .bind(filter.contact_id.as_deref())
                    .bind(before_at)
                    .bind(if page.after.is_some() { before_id } else { "\u{10FFFF}".to_owned() })
                    .bind(limit + 1)
                    .fetch_all(self.reader())
                    .await?;
                    let mut data = rows.iter().map(conversation_from_row).collect::<StoreResult<Vec<_>>>()?;
                    let more = data.len() as i64 > limit;
                    data.truncate(limit as usize);
                    let next_cursor = if more { data.last().map(cursor_of) } else { None };
                    Ok(Page { data, next_cursor })
                }

                async fn set_conversation_state(
                    &self,
                    tenant: &str,
                    id: &str,
                    state: ConversationState,
                    at: Timestamp,
                ) -> StoreResult<Option<Conversation>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE conversations SET state = $1, updated_at = $2, \
                           resolved_at = CASE WHEN $1 = 'resolved' THEN $2 END \
                         WHERE tenant_id = $3 AND id = $4 RETURNING {COLUMNS}"
                    )))
                    .bind(state.as_str())
                    .bind(micros(at))
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(self.writer())
                    .await?
                    .as_ref()
                    .map(conversation_from_row)
                    .transpose()
                }

                async fn note_conversation_reply(
                    &self,
                    tenant: &str,
                    id: &str,
                    last_message: &serde_json::Value,
                    at: Timestamp,
                ) -> StoreResult<()> {
                    sqlx::query(
                        "UPDATE conversations SET last_message = $1, last_message_at = $2, updated_at = $2 \
                         WHERE tenant_id = $3 AND id = $4",
                    )
                    .bind(last_message.to_string())
                    .bind(micros(at))
                    .bind(tenant)
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                    Ok(())
                }
            }
        }
    };
}

impl_conversation_store!(sqlite_conversations, crate::SqliteStore, sqlx::Sqlite);
impl_conversation_store!(postgres_conversations, crate::PostgresStore, sqlx::Postgres);
