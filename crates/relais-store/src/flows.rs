//! Bot flows: the tenant's flow documents, where each conversation's bot stands, and the
//! answers flows stored in contact attributes (with where and when they were given).

use crate::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::conversation::ConversationState;
use serde::Serialize;
use serde_json::{Map, Value};

/// A stored flow document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowRecord {
    pub name: String,
    pub definition: Value,
    /// 1 for the first upload, one more for each later one.
    pub revision: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Where a conversation's bot stands between two customer messages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowSession {
    pub tenant_id: String,
    pub conversation_id: String,
    pub flow: String,
    pub revision: i64,
    /// The node waiting for an answer.
    pub node: String,
    /// Answers already refused at that node.
    pub attempts: u32,
    /// The flow's variables (answers kept with `var`, `http` results, `set`).
    pub vars: Map<String, Value>,
    /// The inbound message the bot last answered.
    pub last_message_id: String,
    pub started_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a run of a flow for one inbound message leaves behind, written at once.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowStep<'a> {
    pub tenant_id: &'a str,
    pub conversation_id: &'a str,
    /// The session to keep (the bot waits for an answer), or `None` when the flow ended.
    pub session: Option<&'a FlowSession>,
    /// The conversation's new state, if it changes (`resolved` at an end, `pending` at a
    /// handoff).
    pub state: Option<ConversationState>,
    /// The team the conversation now waits for (a handoff).
    pub team: Option<&'a str>,
    /// The bot's latest answer, shown as the conversation's latest message.
    pub last_message: Option<&'a Value>,
    pub at: Timestamp,
}

/// An answer a flow stored in a contact attribute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowAnswer {
    pub tenant_id: String,
    pub contact_id: String,
    pub attribute: String,
    pub value: Value,
    pub flow: String,
    pub node: String,
    pub conversation_id: String,
    /// The inbound message that carried it.
    pub message_id: String,
    pub channel: ChannelKind,
    pub answered_at: Timestamp,
}

/// Storage for bot flows; a supertrait of [`crate::Store`].
#[async_trait]
pub trait FlowStore: Send + Sync {
    /// Creates or replaces the tenant's flow `name`; the record has its new revision.
    async fn put_flow(
        &self,
        tenant: &str,
        name: &str,
        definition: &Value,
        at: Timestamp,
    ) -> StoreResult<FlowRecord>;
    async fn flow(&self, tenant: &str, name: &str) -> StoreResult<Option<FlowRecord>>;
    /// By name.
    async fn list_flows(&self, tenant: &str) -> StoreResult<Vec<FlowRecord>>;
    /// The name and revision of each of the tenant's flows, by name: what the inbound
    /// path reads for every message, without the documents it has parsed already.
    async fn flow_revisions(&self, tenant: &str) -> StoreResult<Vec<(String, i64)>>;
    /// `false` when there was no such flow. Conversations running it are handed to a
    /// human at their next message.
    async fn delete_flow(&self, tenant: &str, name: &str) -> StoreResult<bool>;
    async fn flow_session(
        &self,
        tenant: &str,
        conversation_id: &str,
    ) -> StoreResult<Option<FlowSession>>;
    /// The sessions of those of the tenant's conversations that have one, in no order.
    async fn flow_sessions_of(
        &self,
        tenant: &str,
        conversation_ids: &[&str],
    ) -> StoreResult<Vec<FlowSession>>;
    /// Keeps or ends the session and moves the conversation, in one transaction.
    async fn save_flow_step(&self, step: &FlowStep<'_>) -> StoreResult<()>;
    /// [`FlowStore::save_flow_step`] for steps of distinct conversations (`Invalid`
    /// otherwise, with nothing written), all in one transaction.
    async fn save_flow_steps(&self, steps: &[FlowStep<'_>]) -> StoreResult<()>;
    /// Records an answer once per (message, attribute); a second record is ignored.
    async fn record_flow_answer(&self, answer: &FlowAnswer) -> StoreResult<()>;
    /// The contact's answers, oldest first.
    async fn flow_answers(&self, tenant: &str, contact_id: &str) -> StoreResult<Vec<FlowAnswer>>;
}

macro_rules! impl_flow_store {
    ($modname:ident, $store:ty, $db:ty) => {
        mod $modname {
            use super::*;
            use crate::{StoreError, from_micros, micros};
            use sqlx::Row;
            use std::collections::HashSet;

            type DbRow = <$db as sqlx::Database>::Row;

            const SESSION_COLUMNS: &str = "tenant_id, conversation_id, flow, revision, node, attempts, vars, last_message_id, started_at, updated_at";

            fn json_of(text: &str, what: &str) -> StoreResult<Value> {
                serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
            }

            fn flow_from_row(row: &DbRow) -> StoreResult<FlowRecord> {
                Ok(FlowRecord {
                    name: row.try_get("name")?,
                    definition: json_of(&row.try_get::<String, _>("definition")?, "flow definition")?,
                    revision: row.try_get("revision")?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                    updated_at: from_micros(row.try_get("updated_at")?)?,
                })
            }

            fn session_from_row(row: &DbRow) -> StoreResult<FlowSession> {
                let vars = match json_of(&row.try_get::<String, _>("vars")?, "flow variables")? {
                    Value::Object(map) => map,
                    other => {
                        return Err(StoreError::Corrupt(format!(
                            "flow variables are not an object: {other}"
                        )));
                    }
                };
                let attempts: i64 = row.try_get("attempts")?;
                Ok(FlowSession {
                    tenant_id: row.try_get("tenant_id")?,
                    conversation_id: row.try_get("conversation_id")?,
                    flow: row.try_get("flow")?,
                    revision: row.try_get("revision")?,
                    node: row.try_get("node")?,
                    attempts: u32::try_from(attempts)
                        .map_err(|_| StoreError::Corrupt(format!("flow attempts {attempts}")))?,
                    vars,
                    last_message_id: row.try_get("last_message_id")?,
                    started_at: from_micros(row.try_get("started_at")?)?,
                    updated_at: from_micros(row.try_get("updated_at")?)?,
                })
            }

            fn answer_from_row(row: &DbRow) -> StoreResult<FlowAnswer> {
                let channel: String = row.try_get("channel")?;
                Ok(FlowAnswer {
                    tenant_id: row.try_get("tenant_id")?,
                    contact_id: row.try_get("contact_id")?,
                    attribute: row.try_get("attribute")?,
                    value: json_of(&row.try_get::<String, _>("value")?, "flow answer")?,
                    flow: row.try_get("flow")?,
                    node: row.try_get("node")?,
                    conversation_id: row.try_get("conversation_id")?,
                    message_id: row.try_get("message_id")?,
                    channel: channel.parse().map_err(
                        |e: relais_core::channel::UnknownChannelKind| StoreError::Corrupt(e.to_string()),
                    )?,
                    answered_at: from_micros(row.try_get("answered_at")?)?,
                })
            }

            #[async_trait]
            impl FlowStore for $store {
                async fn put_flow(
                    &self,
                    tenant: &str,
                    name: &str,
                    definition: &Value,
                    at: Timestamp,
                ) -> StoreResult<FlowRecord> {
                    let row = sqlx::query(
                        "INSERT INTO flows (tenant_id, name, definition, revision, created_at, updated_at) \
                         VALUES ($1, $2, $3, 1, $4, $4) \
                         ON CONFLICT (tenant_id, name) DO UPDATE SET definition = excluded.definition, \
                           revision = flows.revision + 1, updated_at = excluded.updated_at \
                         RETURNING name, definition, revision, created_at, updated_at",
                    )
                    .bind(tenant)
                    .bind(name)
                    .bind(definition.to_string())
                    .bind(micros(at))
                    .fetch_one(self.writer())
                    .await?;
                    self.config().flow_revisions.forget(tenant, "");
                    flow_from_row(&row)
                }

                async fn flow(&self, tenant: &str, name: &str) -> StoreResult<Option<FlowRecord>> {
                    sqlx::query(
                        "SELECT name, definition, revision, created_at, updated_at FROM flows \
                         WHERE tenant_id = $1 AND name = $2",
                    )
                    .bind(tenant)
                    .bind(name)
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(flow_from_row)
                    .transpose()
                }

                async fn list_flows(&self, tenant: &str) -> StoreResult<Vec<FlowRecord>> {
                    sqlx::query(
                        "SELECT name, definition, revision, created_at, updated_at FROM flows \
                         WHERE tenant_id = $1 ORDER BY name",
                    )
                    .bind(tenant)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(flow_from_row)
                    .collect()
                }

                async fn flow_revisions(&self, tenant: &str) -> StoreResult<Vec<(String, i64)>> {
                    if let Some(revisions) = self.config().flow_revisions.fresh(tenant, "") {
                        return Ok(revisions);
                    }
                    let read_at = std::time::Instant::now();
                    let rows = sqlx::query("SELECT name, revision FROM flows WHERE tenant_id = $1 ORDER BY name")
                        .bind(tenant)
                        .fetch_all(self.reader())
                        .await?;
                    let revisions = rows
                        .iter()
                        .map(|row| Ok((row.try_get("name")?, row.try_get("revision")?)))
                        .collect::<StoreResult<Vec<(String, i64)>>>()?;
                    self.config().flow_revisions.keep(tenant, "", read_at, revisions.clone());
                    Ok(revisions)
                }

                async fn delete_flow(&self, tenant: &str, name: &str) -> StoreResult<bool> {
                    let done = sqlx::query("DELETE FROM flows WHERE tenant_id = $1 AND name = $2")
                        .bind(tenant)
                        .bind(name)
                        .execute(self.writer())
                        .await?;
                    self.config().flow_revisions.forget(tenant, "");
                    Ok(done.rows_affected() > 0)
                }

                async fn flow_session(
                    &self,
                    tenant: &str,
                    conversation_id: &str,
                ) -> StoreResult<Option<FlowSession>> {
                    // The writer: a session is read just before the step that replaces it.
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {SESSION_COLUMNS} FROM flow_sessions WHERE tenant_id = $1 AND conversation_id = $2"
                    )))
                    .bind(tenant)
                    .bind(conversation_id)
                    .fetch_optional(self.writer())
                    .await?
                    .as_ref()
                    .map(session_from_row)
                    .transpose()
                }

                async fn flow_sessions_of(
                    &self,
                    tenant: &str,
                    conversation_ids: &[&str],
                ) -> StoreResult<Vec<FlowSession>> {
                    let mut sessions = Vec::new();
                    for chunk in conversation_ids.chunks(crate::ROWS_PER_STATEMENT) {
                        // The writer, as for `flow_session`.
                        let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                            "SELECT {SESSION_COLUMNS} FROM flow_sessions WHERE tenant_id = "
                        ));
                        q.push_bind(tenant).push(" AND conversation_id IN (");
                        let mut ids = q.separated(", ");
                        for id in chunk {
                            ids.push_bind(*id);
                        }
                        q.push(")");
                        for row in q.build().fetch_all(self.writer()).await? {
                            sessions.push(session_from_row(&row)?);
                        }
                    }
                    Ok(sessions)
                }

                async fn save_flow_step(&self, step: &FlowStep<'_>) -> StoreResult<()> {
                    self.save_flow_steps(std::slice::from_ref(step)).await
                }

                async fn save_flow_steps(&self, steps: &[FlowStep<'_>]) -> StoreResult<()> {
                    let mut conversations = HashSet::with_capacity(steps.len());
                    if let Some(step) = steps.iter().find(|s| !conversations.insert((s.tenant_id, s.conversation_id))) {
                        return Err(StoreError::Invalid(format!(
                            "conversation {} has two flow steps in one group",
                            step.conversation_id
                        )));
                    }
                    if steps.is_empty() {
                        return Ok(());
                    }
                    // Each in one order, so that two groups lock their rows alike (PostgreSQL).
                    let mut kept: Vec<&FlowSession> = steps.iter().filter_map(|s| s.session).collect();
                    kept.sort_by(|a, b| a.conversation_id.cmp(&b.conversation_id));
                    let mut ended: Vec<&FlowStep<'_>> = steps.iter().filter(|s| s.session.is_none()).collect();
                    ended.sort_by_key(|s| s.conversation_id);
                    let mut moved: Vec<&FlowStep<'_>> =
                        steps.iter().filter(|s| s.state.is_some() || s.last_message.is_some()).collect();
                    moved.sort_by_key(|s| (s.tenant_id, s.conversation_id));
                    // At most three statements per 500 steps, whatever their mix: the
                    // sessions kept, the sessions ended, the conversations moved.
                    let mut tx = self.begin_write().await?;
                    for chunk in kept.chunks(crate::ROWS_PER_STATEMENT) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "INSERT INTO flow_sessions (conversation_id, tenant_id, flow, revision, node, attempts, vars, last_message_id, started_at, updated_at) ",
                        );
                        q.push_values(chunk, |mut row, s| {
                            row.push_bind(s.conversation_id.as_str())
                                .push_bind(s.tenant_id.as_str())
                                .push_bind(s.flow.as_str())
                                .push_bind(s.revision)
                                .push_bind(s.node.as_str())
                                .push_bind(i64::from(s.attempts))
                                .push_bind(Value::Object(s.vars.clone()).to_string())
                                .push_bind(s.last_message_id.as_str())
                                .push_bind(micros(s.started_at))
                                .push_bind(micros(s.updated_at));
                        });
                        q.push(
                            " ON CONFLICT (conversation_id) DO UPDATE SET flow = excluded.flow, revision = excluded.revision, \
                               node = excluded.node, attempts = excluded.attempts, vars = excluded.vars, \
                               last_message_id = excluded.last_message_id, started_at = excluded.started_at, \
                               updated_at = excluded.updated_at",
                        );
                        q.build().execute(&mut *tx).await?;
                    }
                    for chunk in ended.chunks(crate::ROWS_PER_STATEMENT) {
                        // `IN (SELECT … FROM (VALUES …))`, which SQLite looks up by the primary
                        // key, where `IN (VALUES …)` scans the table.
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "DELETE FROM flow_sessions WHERE (conversation_id, tenant_id) IN (SELECT column1, column2 FROM (",
                        );
                        q.push_values(chunk, |mut row, s| {
                            row.push_bind(s.conversation_id).push_bind(s.tenant_id);
                        });
                        q.push(") AS v)");
                        q.build().execute(&mut *tx).await?;
                    }
                    for chunk in moved.chunks(crate::ROWS_PER_STATEMENT) {
                        // A step's new state (with its team) and its latest message, each
                        // kept as it is when the step has none.
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "WITH v (tenant_id, id, state, team, last_message, at) AS (",
                        );
                        q.push_values(chunk, |mut row, s| {
                            row.push_bind(s.tenant_id)
                                .push_bind(s.conversation_id)
                                .push_bind(s.state.map(|state| state.as_str()))
                                .push_bind(s.team)
                                .push_bind(s.last_message.map(|last| last.to_string()))
                                .push_bind(micros(s.at));
                        });
                        q.push(
                            ") UPDATE conversations SET state = COALESCE(v.state, conversations.state), \
                               resolved_at = CASE WHEN v.state IS NULL THEN conversations.resolved_at WHEN v.state = 'resolved' THEN v.at END, \
                               team = CASE WHEN v.state IS NULL THEN conversations.team ELSE COALESCE(v.team, conversations.team) END, \
                               last_message = COALESCE(v.last_message, conversations.last_message), \
                               last_message_at = CASE WHEN v.last_message IS NULL THEN conversations.last_message_at ELSE v.at END, \
                               updated_at = v.at \
                             FROM v WHERE conversations.tenant_id = v.tenant_id AND conversations.id = v.id",
                        );
                        q.build().execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn record_flow_answer(&self, a: &FlowAnswer) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO flow_answers (message_id, attribute, tenant_id, contact_id, value, flow, node, conversation_id, channel, answered_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (message_id, attribute) DO NOTHING",
                    )
                    .bind(&a.message_id)
                    .bind(&a.attribute)
                    .bind(&a.tenant_id)
                    .bind(&a.contact_id)
                    .bind(a.value.to_string())
                    .bind(&a.flow)
                    .bind(&a.node)
                    .bind(&a.conversation_id)
                    .bind(a.channel.as_str())
                    .bind(micros(a.answered_at))
                    .execute(self.writer())
                    .await?;
                    Ok(())
                }

                async fn flow_answers(&self, tenant: &str, contact_id: &str) -> StoreResult<Vec<FlowAnswer>> {
                    sqlx::query(
                        "SELECT message_id, attribute, tenant_id, contact_id, value, flow, node, conversation_id, channel, answered_at \
                         FROM flow_answers WHERE tenant_id = $1 AND contact_id = $2 ORDER BY answered_at, attribute",
                    )
                    .bind(tenant)
                    .bind(contact_id)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(answer_from_row)
                    .collect()
                }
            }
        }
    };
}

impl_flow_store!(sqlite_flows, crate::SqliteStore, sqlx::Sqlite);
impl_flow_store!(postgres_flows, crate::PostgresStore, sqlx::Postgres);
