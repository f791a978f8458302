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
    /// When the current episode began: created, or reopened by the customer's message.
    pub opened_at: Timestamp,
    /// The team it belongs to, once handed off (by a flow, an agent or the default team).
    pub team: Option<String>,
    /// The agent who has it (state `open`).
    pub assignee_id: Option<String>,
    pub assigned_at: Option<Timestamp>,
    /// How urgent it is (see [`relais_core::agent::Priority`]).
    pub priority: i64,
    /// Since when the customer waits for an agent's answer.
    pub waiting_since: Option<Timestamp>,
    /// When that answer is due by the team's SLA, and which target it is
    /// (`first_response`, `next_response`).
    pub sla_due_at: Option<Timestamp>,
    pub sla_kind: Option<String>,
    /// When the due time passed without an answer.
    pub sla_breached_at: Option<Timestamp>,
    /// An agent's first answer.
    pub first_response_at: Option<Timestamp>,
    /// The satisfaction question sent when it was resolved, and the customer's rating (1–5).
    pub csat_asked_at: Option<Timestamp>,
    pub csat_score: Option<i64>,
    pub csat_comment: Option<String>,
    pub csat_at: Option<Timestamp>,
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
    /// One state, or (empty) any.
    pub states: Vec<ConversationState>,
    pub contact_id: Option<String>,
    pub team: Option<String>,
    pub assignee: Option<Assignee>,
    /// Only what this agent may see: conversations of no team, of their teams, and their
    /// own.
    pub visible_to: Option<String>,
    pub order: ConversationOrder,
}

/// Whose conversations a list holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignee {
    Agent(String),
    Nobody,
}

/// How a list of conversations is sorted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConversationOrder {
    /// Most recent activity first.
    #[default]
    Recent,
    /// The queue: most urgent first, then the answer due soonest by its SLA, or, without
    /// an SLA, the customer who began waiting earliest; those who wait for nobody last.
    Priority,
}

/// Storage for conversations; a supertrait of [`crate::Store`].
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// The contact's conversation with the message placed in it: created when the contact
    /// has none, reopened when resolved and `reopens`; either way it now says where the
    /// customer last wrote.
    async fn place_inbound(&self, placement: &InboundPlacement<'_>) -> StoreResult<Conversation>;
    /// [`ConversationStore::place_inbound`] for a group of messages of distinct contacts,
    /// the conversations in their order. Each (tenant, contact) at most once per call:
    /// `Invalid` otherwise, with nothing written.
    async fn place_inbound_many(
        &self,
        placements: &[InboundPlacement<'_>],
    ) -> StoreResult<Vec<Conversation>>;
    async fn conversation(&self, tenant: &str, id: &str) -> StoreResult<Option<Conversation>>;
    /// Most recent activity first, by cursor.
    async fn list_conversations(
        &self,
        tenant: &str,
        filter: &ConversationFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Conversation>>;
    /// Moves the conversation to `state` (resolving stamps `resolved_at`; `pending` and
    /// `bot` take it from its agent; `resolved` and `bot` stop its SLA clock); `None` when
    /// the tenant has no such conversation.
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

/// The cursor of a page of conversations: the last one's sort key and id, `<micros>.<id>`
/// by recent activity, `<priority>.<due key>.<id>` in queue order.
fn cursor_of(c: &Conversation, order: ConversationOrder) -> String {
    match order {
        ConversationOrder::Recent => format!("{}.{}", crate::micros(c.last_message_at), c.id),
        ConversationOrder::Priority => format!("{}.{}.{}", c.priority, due_key(c), c.id),
    }
}

/// Where a conversation sorts among those of its priority, in SQL: when its answer is due
/// by the SLA, or without an SLA since when its customer waits, those who wait for nobody
/// last. Written exactly as the queue's indexes write it (migration 0034): SQLite uses an
/// index on an expression only for a query that spells the expression the same way.
pub(crate) const DUE_KEY: &str = "COALESCE(sla_due_at, waiting_since, 9223372036854775807)";

/// [`DUE_KEY`] of a conversation read back, for its cursor.
fn due_key(c: &Conversation) -> i64 {
    c.sla_due_at
        .or(c.waiting_since)
        .map(crate::micros)
        .unwrap_or(i64::MAX)
}

/// A cursor's parts: the sort keys and the id.
fn parse_cursor(cursor: &str, order: ConversationOrder) -> StoreResult<(i64, i64, String)> {
    let bad = || crate::StoreError::Invalid(format!("`{cursor}` is not a cursor of this list"));
    let mut parts = cursor.splitn(3, '.');
    let first = parts
        .next()
        .and_then(|p| p.parse::<i64>().ok())
        .ok_or_else(bad)?;
    match order {
        ConversationOrder::Recent => {
            let id = parts.next().ok_or_else(bad)?;
            if parts.next().is_some() {
                return Err(bad());
            }
            Ok((first, 0, id.to_owned()))
        }
        ConversationOrder::Priority => {
            let second = parts
                .next()
                .and_then(|p| p.parse::<i64>().ok())
                .ok_or_else(bad)?;
            let id = parts.next().ok_or_else(bad)?;
            Ok((first, second, id.to_owned()))
        }
    }
}

macro_rules! impl_conversation_store {
    ($modname:ident, $store:ty, $db:ty) => {
        pub(crate) mod $modname {
            use super::*;
            use crate::{StoreError, from_micros, micros, new_id};
            use sqlx::Row;
            use std::collections::{HashMap, HashSet};

            type DbRow = <$db as sqlx::Database>::Row;

            pub(crate) const COLUMNS: &str = "id, tenant_id, contact_id, state, channel, channel_id, address, last_message, last_message_at, last_inbound_at, created_at, updated_at, resolved_at, team, \
                opened_at, assignee_id, assigned_at, priority, waiting_since, sla_due_at, sla_kind, sla_breached_at, first_response_at, csat_asked_at, csat_score, csat_comment, csat_at";

            fn at(row: &DbRow, column: &str) -> StoreResult<Option<Timestamp>> {
                row.try_get::<Option<i64>, _>(column)?.map(from_micros).transpose()
            }

            /// Parameters per placement in [`placement_upsert`].
            const PLACEMENT_PARAMS: usize = 10;

            /// The upsert placing `rows` customer messages in their contacts' conversations,
            /// each bound as (new id, tenant, contact, state, channel, channel id, address,
            /// last message, at, message id); `reopens` says whether these messages reopen a
            /// resolved conversation (a keyword does not).
            fn placement_upsert(rows: usize, reopens: bool) -> String {
                // The message reopens the resolved conversation: a new episode, with no
                // team, agent or SLA yet. Placing it again (a run after a crash) does not.
                let reopens = if reopens { "TRUE" } else { "FALSE" };
                let reopens = format!(
                    "conversations.state = 'resolved' AND {reopens} AND COALESCE(conversations.last_inbound_id, '') <> excluded.last_inbound_id"
                );
                let values: Vec<String> = (0..rows)
                    .map(|row| {
                        let n = |i: usize| format!("${}", row * PLACEMENT_PARAMS + i);
                        let (id, tenant, contact, state, channel, channel_id, address, last, at, message) =
                            (n(1), n(2), n(3), n(4), n(5), n(6), n(7), n(8), n(9), n(10));
                        format!(
                            "({id}, {tenant}, {contact}, {state}, {channel}, {channel_id}, {address}, {last}, {at}, {at}, {at}, {at}, \
                             CASE WHEN {state} = 'resolved' THEN {at} END, {message}, {at})"
                        )
                    })
                    .collect();
                let values = values.join(", ");
                format!(
                    "INSERT INTO conversations (id, tenant_id, contact_id, state, channel, channel_id, address, last_message, last_message_at, last_inbound_at, created_at, updated_at, resolved_at, last_inbound_id, opened_at) \
                     VALUES {values} \
                     ON CONFLICT (tenant_id, contact_id) DO UPDATE SET \
                       channel = excluded.channel, channel_id = excluded.channel_id, address = excluded.address, \
                       last_message = excluded.last_message, last_message_at = excluded.last_message_at, \
                       last_inbound_at = excluded.last_inbound_at, updated_at = excluded.updated_at, \
                       last_inbound_id = excluded.last_inbound_id, \
                       state = CASE WHEN {reopens} THEN excluded.state ELSE conversations.state END, \
                       resolved_at = CASE WHEN {reopens} THEN NULL ELSE conversations.resolved_at END, \
                       opened_at = CASE WHEN {reopens} THEN excluded.opened_at ELSE conversations.opened_at END, \
                       team = CASE WHEN {reopens} THEN NULL ELSE conversations.team END, \
                       assignee_id = CASE WHEN {reopens} THEN NULL ELSE conversations.assignee_id END, \
                       assigned_at = CASE WHEN {reopens} THEN NULL ELSE conversations.assigned_at END, \
                       priority = CASE WHEN {reopens} THEN 0 ELSE conversations.priority END, \
                       waiting_since = CASE WHEN {reopens} THEN NULL ELSE conversations.waiting_since END, \
                       sla_due_at = CASE WHEN {reopens} THEN NULL ELSE conversations.sla_due_at END, \
                       sla_kind = CASE WHEN {reopens} THEN NULL ELSE conversations.sla_kind END, \
                       sla_breached_at = CASE WHEN {reopens} THEN NULL ELSE conversations.sla_breached_at END, \
                       first_response_at = CASE WHEN {reopens} THEN NULL ELSE conversations.first_response_at END \
                     RETURNING {COLUMNS}"
                )
            }

            pub(crate) fn conversation_from_row(row: &DbRow) -> StoreResult<Conversation> {
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
                    opened_at: from_micros(row.try_get("opened_at")?)?,
                    assignee_id: row.try_get("assignee_id")?,
                    assigned_at: at(row, "assigned_at")?,
                    priority: row.try_get("priority")?,
                    waiting_since: at(row, "waiting_since")?,
                    sla_due_at: at(row, "sla_due_at")?,
                    sla_kind: row.try_get("sla_kind")?,
                    sla_breached_at: at(row, "sla_breached_at")?,
                    first_response_at: at(row, "first_response_at")?,
                    csat_asked_at: at(row, "csat_asked_at")?,
                    csat_score: row.try_get("csat_score")?,
                    csat_comment: row.try_get("csat_comment")?,
                    csat_at: at(row, "csat_at")?,
                })
            }

            #[async_trait]
            impl ConversationStore for $store {
                async fn place_inbound(&self, p: &InboundPlacement<'_>) -> StoreResult<Conversation> {
                    self.place_inbound_many(std::slice::from_ref(p))
                        .await?
                        .pop()
                        .ok_or_else(|| StoreError::Corrupt(format!("contact {} was placed in no conversation", p.contact_id)))
                }

                async fn place_inbound_many(&self, placements: &[InboundPlacement<'_>]) -> StoreResult<Vec<Conversation>> {
                    // PostgreSQL refuses an upsert that meets one row twice; SQLite would
                    // apply both. Neither is what the caller meant.
                    let mut contacts = HashSet::with_capacity(placements.len());
                    if let Some(p) = placements.iter().find(|p| !contacts.insert((p.tenant_id, p.contact_id))) {
                        return Err(StoreError::Invalid(format!(
                            "contact {} is placed twice in one group of inbound messages",
                            p.contact_id
                        )));
                    }
                    // One statement for the messages that reopen a resolved conversation,
                    // one for those that do not (keywords): `excluded` holds columns only, so
                    // the flag is written in the statement. In the order of the contacts, so
                    // that two groups lock their rows in the same order.
                    let mut order: Vec<&InboundPlacement<'_>> = placements.iter().collect();
                    order.sort_by_key(|p| (p.tenant_id, p.contact_id));
                    let mut placed: HashMap<(String, String), Conversation> = HashMap::with_capacity(placements.len());
                    for reopens in [true, false] {
                        let group: Vec<&InboundPlacement<'_>> = order.iter().copied().filter(|p| p.reopens == reopens).collect();
                        for chunk in group.chunks(crate::ROWS_PER_STATEMENT) {
                            let mut q = sqlx::query(sqlx::AssertSqlSafe(placement_upsert(chunk.len(), reopens)));
                            for p in chunk {
                                q = q
                                    .bind(new_id())
                                    .bind(p.tenant_id)
                                    .bind(p.contact_id)
                                    .bind(p.state.as_str())
                                    .bind(p.channel.as_str())
                                    .bind(p.channel_id)
                                    .bind(p.address)
                                    .bind(p.last_message.to_string())
                                    .bind(micros(p.at))
                                    .bind(p.message_id);
                            }
                            for row in q.fetch_all(self.writer()).await? {
                                let c = conversation_from_row(&row)?;
                                placed.insert((c.tenant_id.clone(), c.contact_id.clone()), c);
                            }
                        }
                    }
                    placements
                        .iter()
                        .map(|p| {
                            placed.remove(&(p.tenant_id.to_owned(), p.contact_id.to_owned())).ok_or_else(|| {
                                StoreError::Corrupt(format!("contact {} was placed in no conversation", p.contact_id))
                            })
                        })
                        .collect()
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
                    let (first, second, after_id) = match page.after.as_deref() {
                        Some(cursor) => parse_cursor(cursor, filter.order)?,
                        None => (i64::MAX, i64::MIN, String::new()),
                    };
                    let mut conditions = String::new();
                    if !filter.states.is_empty() {
                        let states: Vec<String> =
                            filter.states.iter().map(|s| format!("'{}'", s.as_str())).collect();
                        conditions.push_str(&format!(" AND state IN ({})", states.join(", ")));
                    }
                    // A filter left out is `$n IS NULL`, a given one a plain equality, so
                    // that the plan (prepared once, whatever the values) can use an index on
                    // it; `($n IS NULL OR column = $n)` would scan the tenant's rows.
                    let given = |column: &str, n: u8, value: bool| {
                        if value { format!(" AND {column} = ${n}") } else { format!(" AND ${n} IS NULL") }
                    };
                    let assignee = match &filter.assignee {
                        Some(Assignee::Agent(id)) => Some(id.as_str()),
                        _ => None,
                    };
                    conditions.push_str(&given("contact_id", 2, filter.contact_id.is_some()));
                    conditions.push_str(&given("team", 3, filter.team.is_some()));
                    conditions.push_str(&given("assignee_id", 4, assignee.is_some()));
                    let queue_states = [ConversationState::Pending, ConversationState::Open];
                    // One agent's conversations are a few, found by their own index.
                    if filter.order == ConversationOrder::Priority
                        && assignee.is_none()
                        && !filter.states.is_empty()
                        && filter.states.iter().all(|s| queue_states.contains(s))
                    {
                        // The condition of the index in queue order (migration 0034),
                        // written as the index writes it, so that SQLite uses it too.
                        conditions.push_str(" AND state IN ('pending', 'open')");
                    }
                    if filter.assignee == Some(Assignee::Nobody) {
                        conditions.push_str(" AND assignee_id IS NULL");
                    }
                    let (keyset, order) = match filter.order {
                        ConversationOrder::Recent => (
                            "(last_message_at < $6 OR (last_message_at = $6 AND id < $7))".to_owned(),
                            "last_message_at DESC, id DESC".to_owned(),
                        ),
                        ConversationOrder::Priority => (
                            format!("(priority < $6 OR (priority = $6 AND ({DUE_KEY} > $9 OR ({DUE_KEY} = $9 AND id > $7))))"),
                            format!("priority DESC, {DUE_KEY} ASC, id ASC"),
                        ),
                    };
                    let after_id = match (page.after.is_some(), filter.order) {
                        (true, _) => after_id,
                        (false, ConversationOrder::Recent) => "\u{10FFFF}".to_owned(),
                        (false, ConversationOrder::Priority) => String::new(),
                    };
                    let query = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM conversations \
                         WHERE tenant_id = $1 \
                           AND ($5 IS NULL OR team IS NULL OR assignee_id = $5 OR team IN (SELECT team FROM agent_teams WHERE agent_id = $5)) \
                           {conditions} AND {keyset} \
                         ORDER BY {order} LIMIT $8"
                    )))
                    .bind(tenant)
                    .bind(filter.contact_id.as_deref())
                    .bind(filter.team.as_deref())
                    .bind(assignee)
                    .bind(filter.visible_to.as_deref())
                    .bind(first)
                    .bind(after_id)
                    .bind(limit + 1);
                    let query = match filter.order {
                        ConversationOrder::Priority => query.bind(second),
                        ConversationOrder::Recent => query,
                    };
                    let rows = query.fetch_all(self.reader()).await?;
                    let mut data = rows.iter().map(conversation_from_row).collect::<StoreResult<Vec<_>>>()?;
                    let more = data.len() as i64 > limit;
                    data.truncate(limit as usize);
                    let next_cursor = if more { data.last().map(|c| cursor_of(c, filter.order)) } else { None };
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
                           resolved_at = CASE WHEN $1 = 'resolved' THEN $2 END, \
                           assignee_id = CASE WHEN $1 IN ('pending', 'bot') THEN NULL ELSE assignee_id END, \
                           waiting_since = CASE WHEN $1 IN ('resolved', 'bot') THEN NULL ELSE waiting_since END, \
                           sla_due_at = CASE WHEN $1 IN ('resolved', 'bot') THEN NULL ELSE sla_due_at END, \
                           sla_kind = CASE WHEN $1 IN ('resolved', 'bot') THEN NULL ELSE sla_kind END, \
                           sla_breached_at = CASE WHEN $1 IN ('resolved', 'bot') THEN NULL ELSE sla_breached_at END \
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
