//! Teams, agents and their sessions, and what agents do to conversations: assignment, the
//! SLA clock, private notes, canned replies and the customer's rating.

use crate::{Conversation, StoreResult};
use async_trait::async_trait;
use jiff::Timestamp;
use relais_core::agent::{AssignmentRule, Role};
use serde::Serialize;

/// A team as configured (`PUT /v1/teams/{name}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamSpec {
    pub description: Option<String>,
    pub assignment: AssignmentRule,
    /// Minutes within which an agent must first answer a customer handed to the team.
    pub first_response_minutes: Option<u32>,
    /// Minutes within which an agent must answer each later message of the customer.
    pub next_response_minutes: Option<u32>,
    /// Conversations handed to no team in particular join this one (one per tenant).
    pub is_default: bool,
    /// A resolved conversation asks the customer for a rating from 1 to 5.
    pub csat: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Team {
    pub tenant_id: String,
    pub name: String,
    pub description: Option<String>,
    pub assignment: AssignmentRule,
    pub first_response_minutes: Option<u32>,
    pub next_response_minutes: Option<u32>,
    pub is_default: bool,
    pub csat: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An agent (the password hash is never part of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agent {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// Open conversations assigned automatically at most.
    pub capacity: u32,
    /// Whether automatic assignment may pick them.
    pub available: bool,
    pub teams: Vec<String>,
    pub last_assigned_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewAgent {
    pub id: String,
    pub tenant_id: String,
    /// Normalised ([`relais_core::agent::normalize_email`]).
    pub email: String,
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub capacity: u32,
    pub teams: Vec<String>,
    pub at: Timestamp,
}

/// What [`AgentStore::update_agent`] changes; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct AgentChange {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub password_hash: Option<String>,
    pub capacity: Option<u32>,
    pub available: Option<bool>,
    pub teams: Option<Vec<String>>,
}

/// A private note on a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub id: String,
    pub conversation_id: String,
    /// The agent who wrote it (`None`: an API key, or an agent deleted since).
    pub agent_id: Option<String>,
    pub text: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CannedReply {
    pub name: String,
    /// A template: `{{ contact.first_name }}`, `{{ agent.name }}` and the request's variables.
    pub text: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A conversation with an SLA due time that passed unanswered.
#[derive(Debug, Clone, PartialEq)]
pub struct DueBreach {
    pub conversation: Conversation,
    pub due_at: Timestamp,
}

/// Storage for agents and their work; a supertrait of [`crate::Store`].
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Creates or replaces a team; making it the default unmarks the previous default.
    async fn put_team(
        &self,
        tenant: &str,
        name: &str,
        spec: &TeamSpec,
        at: Timestamp,
    ) -> StoreResult<Team>;
    async fn teams(&self, tenant: &str) -> StoreResult<Vec<Team>>;
    async fn team(&self, tenant: &str, name: &str) -> StoreResult<Option<Team>>;
    /// The team conversations handed to no team join, if the tenant has one.
    async fn default_team(&self, tenant: &str) -> StoreResult<Option<Team>>;
    /// Deletes a team and its memberships; its conversations keep its name (an agent or
    /// an admin moves them). Whether it existed.
    async fn delete_team(&self, tenant: &str, name: &str) -> StoreResult<bool>;

    /// `Conflict` when the tenant has an agent with that e-mail.
    async fn create_agent(&self, agent: &NewAgent) -> StoreResult<Agent>;
    async fn agents(&self, tenant: &str) -> StoreResult<Vec<Agent>>;
    async fn agent(&self, tenant: &str, id: &str) -> StoreResult<Option<Agent>>;
    /// Every agent with this (normalised) e-mail, in any tenant, with their password hash.
    async fn agent_logins(&self, email: &str) -> StoreResult<Vec<(Agent, String)>>;
    async fn update_agent(
        &self,
        tenant: &str,
        id: &str,
        change: &AgentChange,
        at: Timestamp,
    ) -> StoreResult<Option<Agent>>;
    /// Deletes the agent with their sessions; their open conversations go back to the
    /// queue (`pending`, unassigned). Whether they existed.
    async fn delete_agent(&self, tenant: &str, id: &str, at: Timestamp) -> StoreResult<bool>;
    /// How many open conversations each of the tenant's agents has.
    async fn open_counts(&self, tenant: &str) -> StoreResult<Vec<(String, u32)>>;

    async fn create_session(
        &self,
        token_hash: &str,
        agent: &Agent,
        at: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<()>;
    /// The agent of a session that has not expired by `now`.
    async fn session_agent(&self, token_hash: &str, now: Timestamp) -> StoreResult<Option<Agent>>;
    /// Whether the session existed.
    async fn delete_session(&self, token_hash: &str) -> StoreResult<bool>;

    /// Assigns the team's most urgent unassigned waiting conversation to the agent its
    /// rule picks among those available and under their capacity, in one transaction;
    /// `None` when no conversation waits or no agent has room.
    async fn assign_next(
        &self,
        tenant: &str,
        team: &str,
        rule: AssignmentRule,
        at: Timestamp,
    ) -> StoreResult<Option<Conversation>>;
    /// Gives the conversation to `agent` (state `open`), or back to the queue (`None`:
    /// `pending`, unassigned); moves it to `team` when given. `None` when the tenant has
    /// no such conversation.
    async fn assign_conversation(
        &self,
        tenant: &str,
        id: &str,
        agent: Option<&str>,
        team: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<Option<Conversation>>;
    /// The customer wrote while the conversation waits for or is with an agent: raises its
    /// priority by `priority` bits and, unless the clock already runs, starts waiting and
    /// sets the SLA due time (`first_due` before any agent answered, `next_due` after).
    async fn note_customer_waiting(
        &self,
        tenant: &str,
        id: &str,
        priority: i64,
        at: Timestamp,
        first_due: Option<Timestamp>,
        next_due: Option<Timestamp>,
    ) -> StoreResult<Option<Conversation>>;
    /// An agent answered: the customer waits no more, the SLA clock stops, the
    /// urgency and sentiment bits drop (VIP stays).
    async fn note_agent_answer(&self, tenant: &str, id: &str, at: Timestamp) -> StoreResult<()>;
    /// Conversations, of any tenant, assigned since `since` and still open whose
    /// assignment has no `conversation.assigned` event in the stream (keyed
    /// `assigned_<id>_<assigned_at in µs>`): a stop between the assignment's commit and
    /// its announcement left them untold.
    async fn unannounced_assignments(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Conversation>>;
    /// Waiting conversations, of any tenant, whose SLA came due by `now` unanswered.
    async fn due_breaches(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<DueBreach>>;
    /// Marks the breach of the due time `due_at`; false when it was marked already or the
    /// conversation moved on (answered, resolved).
    async fn mark_breached(
        &self,
        tenant: &str,
        id: &str,
        due_at: Timestamp,
        at: Timestamp,
    ) -> StoreResult<bool>;

    async fn add_note(
        &self,
        tenant: &str,
        conversation_id: &str,
        agent_id: Option<&str>,
        text: &str,
        at: Timestamp,
    ) -> StoreResult<Note>;
    /// Oldest first.
    async fn notes(&self, tenant: &str, conversation_id: &str) -> StoreResult<Vec<Note>>;

    async fn put_canned_reply(
        &self,
        tenant: &str,
        name: &str,
        text: &str,
        at: Timestamp,
    ) -> StoreResult<CannedReply>;
    async fn canned_replies(&self, tenant: &str) -> StoreResult<Vec<CannedReply>>;
    async fn canned_reply(&self, tenant: &str, name: &str) -> StoreResult<Option<CannedReply>>;
    async fn delete_canned_reply(&self, tenant: &str, name: &str) -> StoreResult<bool>;

    /// Notes that the satisfaction question was sent; false when it had been for this
    /// resolution already (the conversation was not reopened since).
    async fn mark_csat_asked(&self, tenant: &str, id: &str, at: Timestamp) -> StoreResult<bool>;
    /// Stores the customer's rating (1 to 5) and comment.
    async fn record_csat(
        &self,
        tenant: &str,
        id: &str,
        score: u8,
        comment: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<Option<Conversation>>;
}

macro_rules! impl_agent_store {
    ($modname:ident, $store:ty, $db:ty, $conversations:ident) => {
        mod $modname {
            use super::*;
            use crate::{StoreError, from_micros, micros, new_id};
            use crate::conversations::$conversations::{COLUMNS, conversation_from_row};
            use crate::conversations::DUE_KEY;
            use sqlx::Row;

            type DbRow = <$db as sqlx::Database>::Row;

            const TEAM_COLUMNS: &str = "tenant_id, name, description, assignment, first_response_minutes, next_response_minutes, is_default, csat, created_at, updated_at";
            const AGENT_COLUMNS: &str = "id, tenant_id, email, name, role, capacity, available, last_assigned_at, created_at, updated_at";

            fn minutes(row: &DbRow, column: &str) -> StoreResult<Option<u32>> {
                Ok(row.try_get::<Option<i64>, _>(column)?.map(|m| m.clamp(0, i64::from(u32::MAX)) as u32))
            }

            fn team_from_row(row: &DbRow) -> StoreResult<Team> {
                let assignment: String = row.try_get("assignment")?;
                Ok(Team {
                    tenant_id: row.try_get("tenant_id")?,
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    assignment: AssignmentRule::parse(&assignment)
                        .ok_or_else(|| StoreError::Corrupt(format!("assignment rule `{assignment}`")))?,
                    first_response_minutes: minutes(row, "first_response_minutes")?,
                    next_response_minutes: minutes(row, "next_response_minutes")?,
                    is_default: row.try_get("is_default")?,
                    csat: row.try_get("csat")?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                    updated_at: from_micros(row.try_get("updated_at")?)?,
                })
            }

            fn agent_from_row(row: &DbRow, teams: Vec<String>) -> StoreResult<Agent> {
                let role: String = row.try_get("role")?;
                Ok(Agent {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    email: row.try_get("email")?,
                    name: row.try_get("name")?,
                    role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("agent role `{role}`")))?,
                    capacity: row.try_get::<i64, _>("capacity")?.clamp(0, i64::from(u32::MAX)) as u32,
                    available: row.try_get("available")?,
                    teams,
                    last_assigned_at: row.try_get::<Option<i64>, _>("last_assigned_at")?.map(from_micros).transpose()?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                    updated_at: from_micros(row.try_get("updated_at")?)?,
                })
            }

            impl $store {
                async fn teams_of(&self, agent_id: &str) -> StoreResult<Vec<String>> {
                    Ok(sqlx::query_scalar("SELECT team FROM agent_teams WHERE agent_id = $1 ORDER BY team")
                        .bind(agent_id)
                        .fetch_all(self.reader())
                        .await?)
                }

                async fn agent_with_teams(&self, row: &DbRow) -> StoreResult<Agent> {
                    let id: String = row.try_get("id")?;
                    let teams = self.teams_of(&id).await?;
                    agent_from_row(row, teams)
                }
            }

            #[async_trait]
            impl AgentStore for $store {
                async fn put_team(&self, tenant: &str, name: &str, spec: &TeamSpec, at: Timestamp) -> StoreResult<Team> {
                    let mut tx = self.begin_write().await?;
                    if spec.is_default {
                        sqlx::query("UPDATE teams SET is_default = FALSE WHERE tenant_id = $1 AND name <> $2 AND is_default")
                            .bind(tenant)
                            .bind(name)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO teams ({TEAM_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
                         ON CONFLICT (tenant_id, name) DO UPDATE SET description = excluded.description, \
                           assignment = excluded.assignment, first_response_minutes = excluded.first_response_minutes, \
                           next_response_minutes = excluded.next_response_minutes, is_default = excluded.is_default, \
                           csat = excluded.csat, updated_at = excluded.updated_at \
                         RETURNING {TEAM_COLUMNS}"
                    )))
                    .bind(tenant)
                    .bind(name)
                    .bind(spec.description.as_deref())
                    .bind(spec.assignment.as_str())
                    .bind(spec.first_response_minutes.map(i64::from))
                    .bind(spec.next_response_minutes.map(i64::from))
                    .bind(spec.is_default)
                    .bind(spec.csat)
                    .bind(micros(at))
                    .fetch_one(&mut *tx)
                    .await?;
                    let team = team_from_row(&row)?;
                    tx.commit().await?;
                    Ok(team)
                }

                async fn teams(&self, tenant: &str) -> StoreResult<Vec<Team>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {TEAM_COLUMNS} FROM teams WHERE tenant_id = $1 ORDER BY name"
                    )))
                    .bind(tenant)
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(team_from_row)
                    .collect()
                }

                async fn team(&self, tenant: &str, name: &str) -> StoreResult<Option<Team>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {TEAM_COLUMNS} FROM teams WHERE tenant_id = $1 AND name = $2"
                    )))
                    .bind(tenant)
                    .bind(name)
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(team_from_row)
                    .transpose()
                }

                async fn default_team(&self, tenant: &str) -> StoreResult<Option<Team>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {TEAM_COLUMNS} FROM teams WHERE tenant_id = $1 AND is_default ORDER BY name LIMIT 1"
                    )))
                    .bind(tenant)
                    .fetch_optional(self.reader())
                    .await?
                    .as_ref()
                    .map(team_from_row)
                    .transpose()
                }

                async fn delete_team(&self, tenant: &str, name: &str) -> StoreResult<bool> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query("DELETE FROM agent_teams WHERE tenant_id = $1 AND team = $2")
                        .bind(tenant)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                    let done = sqlx::query("DELETE FROM teams WHERE tenant_id = $1 AND name = $2")
                        .bind(tenant)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn create_agent(&self, a: &NewAgent) -> StoreResult<Agent> {
                    let mut tx = self.begin_write().await?;
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO agents (id, tenant_id, email, name, role, password_hash, capacity, available, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE, $8, $8) RETURNING {AGENT_COLUMNS}"
                    )))
                    .bind(&a.id)
                    .bind(&a.tenant_id)
                    .bind(&a.email)
                    .bind(&a.name)
                    .bind(a.role.as_str())
                    .bind(&a.password_hash)
                    .bind(i64::from(a.capacity))
                    .bind(micros(a.at))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| match e {
                        sqlx::Error::Database(db) if crate::noted(db.is_unique_violation()) => {
                            StoreError::Conflict(format!("an agent of this tenant already has the e-mail {}", a.email))
                        }
                        e => e.into(),
                    })?;
                    let mut teams = a.teams.clone();
                    teams.sort();
                    teams.dedup();
                    for team in &teams {
                        sqlx::query("INSERT INTO agent_teams (tenant_id, agent_id, team) VALUES ($1, $2, $3)")
                            .bind(&a.tenant_id)
                            .bind(&a.id)
                            .bind(team)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let agent = agent_from_row(&row, teams)?;
                    tx.commit().await?;
                    Ok(agent)
                }

                async fn agents(&self, tenant: &str) -> StoreResult<Vec<Agent>> {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {AGENT_COLUMNS} FROM agents WHERE tenant_id = $1 ORDER BY email"
                    )))
                    .bind(tenant)
                    .fetch_all(self.reader())
                    .await?;
                    let memberships: Vec<(String, String)> =
                        sqlx::query_as("SELECT agent_id, team FROM agent_teams WHERE tenant_id = $1 ORDER BY team")
                            .bind(tenant)
                            .fetch_all(self.reader())
                            .await?;
                    rows.iter()
                        .map(|row| {
                            let id: String = row.try_get("id")?;
                            let teams = memberships.iter().filter(|(a, _)| *a == id).map(|(_, t)| t.clone()).collect();
                            agent_from_row(row, teams)
                        })
                        .collect()
                }

                async fn agent(&self, tenant: &str, id: &str) -> StoreResult<Option<Agent>> {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {AGENT_COLUMNS} FROM agents WHERE tenant_id = $1 AND id = $2"
                    )))
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?;
                    match row {
                        Some(row) => Ok(Some(self.agent_with_teams(&row).await?)),
                        None => Ok(None),
                    }
                }

                async fn agent_logins(&self, email: &str) -> StoreResult<Vec<(Agent, String)>> {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {AGENT_COLUMNS}, password_hash FROM agents WHERE email = $1 ORDER BY tenant_id"
                    )))
                    .bind(email)
                    .fetch_all(self.reader())
                    .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for row in &rows {
                        out.push((self.agent_with_teams(row).await?, row.try_get("password_hash")?));
                    }
                    Ok(out)
                }

                async fn update_agent(&self, tenant: &str, id: &str, c: &AgentChange, at: Timestamp) -> StoreResult<Option<Agent>> {
                    let mut tx = self.begin_write().await?;
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE agents SET name = COALESCE($3, name), role = COALESCE($4, role), \
                           password_hash = COALESCE($5, password_hash), capacity = COALESCE($6, capacity), \
                           available = COALESCE($7, available), updated_at = $8 \
                         WHERE tenant_id = $1 AND id = $2 RETURNING {AGENT_COLUMNS}"
                    )))
                    .bind(tenant)
                    .bind(id)
                    .bind(c.name.as_deref())
                    .bind(c.role.map(|r| r.as_str()))
                    .bind(c.password_hash.as_deref())
                    .bind(c.capacity.map(i64::from))
                    .bind(c.available)
                    .bind(micros(at))
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    if let Some(teams) = &c.teams {
                        sqlx::query("DELETE FROM agent_teams WHERE agent_id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                        let mut teams = teams.clone();
                        teams.sort();
                        teams.dedup();
                        for team in &teams {
                            sqlx::query("INSERT INTO agent_teams (tenant_id, agent_id, team) VALUES ($1, $2, $3)")
                                .bind(tenant)
                                .bind(id)
                                .bind(team)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    if c.password_hash.is_some() {
                        // A new password ends every session but the one that set it is
                        // not known here: all of them end; the agent logs in again.
                        sqlx::query("DELETE FROM agent_sessions WHERE agent_id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let teams: Vec<String> = sqlx::query_scalar("SELECT team FROM agent_teams WHERE agent_id = $1 ORDER BY team")
                        .bind(id)
                        .fetch_all(&mut *tx)
                        .await?;
                    let agent = agent_from_row(&row, teams)?;
                    tx.commit().await?;
                    Ok(Some(agent))
                }

                async fn delete_agent(&self, tenant: &str, id: &str, at: Timestamp) -> StoreResult<bool> {
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query("DELETE FROM agents WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Ok(false);
                    }
                    sqlx::query("DELETE FROM agent_teams WHERE agent_id = $1").bind(id).execute(&mut *tx).await?;
                    sqlx::query("DELETE FROM agent_sessions WHERE agent_id = $1").bind(id).execute(&mut *tx).await?;
                    sqlx::query(
                        "UPDATE conversations SET assignee_id = NULL, assigned_at = NULL, state = 'pending', updated_at = $3 \
                         WHERE tenant_id = $1 AND assignee_id = $2 AND state = 'open'",
                    )
                    .bind(tenant)
                    .bind(id)
                    .bind(micros(at))
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn open_counts(&self, tenant: &str) -> StoreResult<Vec<(String, u32)>> {
                    let rows: Vec<(String, i64)> = sqlx::query_as(
                        "SELECT assignee_id, COUNT(*) FROM conversations \
                         WHERE tenant_id = $1 AND state = 'open' AND assignee_id IS NOT NULL GROUP BY assignee_id",
                    )
                    .bind(tenant)
                    .fetch_all(self.reader())
                    .await?;
                    Ok(rows.into_iter().map(|(a, n)| (a, n.clamp(0, i64::from(u32::MAX)) as u32)).collect())
                }

                async fn create_session(&self, token_hash: &str, agent: &Agent, at: Timestamp, expires_at: Timestamp) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO agent_sessions (token_hash, tenant_id, agent_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(token_hash)
                    .bind(&agent.tenant_id)
                    .bind(&agent.id)
                    .bind(micros(at))
                    .bind(micros(expires_at))
                    .execute(self.writer())
                    .await?;
                    Ok(())
                }

                async fn session_agent(&self, token_hash: &str, now: Timestamp) -> StoreResult<Option<Agent>> {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {} FROM agents a JOIN agent_sessions s ON s.agent_id = a.id \
                         WHERE s.token_hash = $1 AND s.expires_at > $2",
                        AGENT_COLUMNS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ")
                    )))
                    .bind(token_hash)
                    .bind(micros(now))
                    .fetch_optional(self.reader())
                    .await?;
                    match row {
                        Some(row) => Ok(Some(self.agent_with_teams(&row).await?)),
                        None => Ok(None),
                    }
                }

                async fn delete_session(&self, token_hash: &str) -> StoreResult<bool> {
                    let done = sqlx::query("DELETE FROM agent_sessions WHERE token_hash = $1")
                        .bind(token_hash)
                        .execute(self.writer())
                        .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn assign_next(&self, tenant: &str, team: &str, rule: AssignmentRule, at: Timestamp) -> StoreResult<Option<Conversation>> {
                    if rule == AssignmentRule::Manual {
                        return Ok(None);
                    }
                    let order = match rule {
                        AssignmentRule::LeastBusy => "open_count ASC, COALESCE(a.last_assigned_at, -1) ASC, a.id ASC",
                        _ => "COALESCE(a.last_assigned_at, -1) ASC, a.id ASC",
                    };
                    let agent_with_room = format!(
                        "SELECT id FROM ( \
                           SELECT a.id, a.capacity, a.last_assigned_at, \
                             (SELECT COUNT(*) FROM conversations c WHERE c.assignee_id = a.id AND c.state = 'open') AS open_count \
                           FROM agents a JOIN agent_teams t ON t.agent_id = a.id \
                           WHERE a.tenant_id = $1 AND t.team = $2 AND a.available \
                         ) a WHERE open_count < a.capacity ORDER BY {order} LIMIT 1"
                    );
                    // Most calls find every agent busy (a customer writes while the queue
                    // waits): a read says so without taking the one writer.
                    let anyone: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(agent_with_room.clone()))
                        .bind(tenant)
                        .bind(team)
                        .fetch_optional(self.reader())
                        .await?;
                    if anyone.is_none() {
                        return Ok(None);
                    }
                    let mut tx = self.begin_write().await?;
                    // Asked again in the transaction: the answer above may be stale.
                    let agent: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(agent_with_room))
                        .bind(tenant)
                        .bind(team)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(agent) = agent else {
                        return Ok(None);
                    };
                    // In queue order, served by conversations_next_waiting (migration 0034).
                    let waiting: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT id FROM conversations \
                         WHERE tenant_id = $1 AND team = $2 AND state = 'pending' AND assignee_id IS NULL \
                         ORDER BY priority DESC, {DUE_KEY} ASC, id ASC LIMIT 1"
                    )))
                    .bind(tenant)
                    .bind(team)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(conversation) = waiting else {
                        return Ok(None);
                    };
                    sqlx::query("UPDATE agents SET last_assigned_at = $2 WHERE id = $1")
                        .bind(&agent)
                        .bind(micros(at))
                        .execute(&mut *tx)
                        .await?;
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE conversations SET assignee_id = $3, assigned_at = $4, state = 'open', \
                           assignments = assignments + 1, updated_at = $4 \
                         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
                    )))
                    .bind(tenant)
                    .bind(&conversation)
                    .bind(&agent)
                    .bind(micros(at))
                    .fetch_one(&mut *tx)
                    .await?;
                    let assigned = conversation_from_row(&row)?;
                    tx.commit().await?;
                    Ok(Some(assigned))
                }

                async fn assign_conversation(
                    &self,
                    tenant: &str,
                    id: &str,
                    agent: Option<&str>,
                    team: Option<&str>,
                    at: Timestamp,
                ) -> StoreResult<Option<Conversation>> {
                    let mut tx = self.begin_write().await?;
                    if let Some(agent) = agent {
                        sqlx::query("UPDATE agents SET last_assigned_at = $2 WHERE id = $1")
                            .bind(agent)
                            .bind(micros(at))
                            .execute(&mut *tx)
                            .await?;
                    }
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE conversations SET assignee_id = $3, team = COALESCE($4, team), \
                           state = CASE WHEN $3 IS NULL THEN 'pending' ELSE 'open' END, \
                           assigned_at = CASE WHEN $3 IS NULL THEN NULL ELSE $5 END, \
                           assignments = assignments + CASE WHEN $3 IS NULL THEN 0 ELSE 1 END, \
                           resolved_at = NULL, updated_at = $5 \
                         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
                    )))
                    .bind(tenant)
                    .bind(id)
                    .bind(agent)
                    .bind(team)
                    .bind(micros(at))
                    .fetch_optional(&mut *tx)
                    .await?;
                    let assigned = row.as_ref().map(conversation_from_row).transpose()?;
                    tx.commit().await?;
                    Ok(assigned)
                }

                async fn note_customer_waiting(
                    &self,
                    tenant: &str,
                    id: &str,
                    priority: i64,
                    at: Timestamp,
                    first_due: Option<Timestamp>,
                    next_due: Option<Timestamp>,
                ) -> StoreResult<Option<Conversation>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE conversations SET priority = priority | $3, \
                           waiting_since = COALESCE(waiting_since, $4), \
                           sla_kind = CASE WHEN sla_due_at IS NOT NULL THEN sla_kind \
                             WHEN first_response_at IS NULL THEN CASE WHEN $5 IS NULL THEN NULL ELSE 'first_response' END \
                             ELSE CASE WHEN $6 IS NULL THEN NULL ELSE 'next_response' END END, \
                           sla_due_at = COALESCE(sla_due_at, CASE WHEN first_response_at IS NULL THEN $5 ELSE $6 END) \
                         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
                    )))
                    .bind(tenant)
                    .bind(id)
                    .bind(priority)
                    .bind(micros(at))
                    .bind(first_due.map(micros))
                    .bind(next_due.map(micros))
                    .fetch_optional(self.writer())
                    .await?
                    .as_ref()
                    .map(conversation_from_row)
                    .transpose()
                }

                async fn note_agent_answer(&self, tenant: &str, id: &str, at: Timestamp) -> StoreResult<()> {
                    sqlx::query(
                        "UPDATE conversations SET first_response_at = COALESCE(first_response_at, $3), \
                           waiting_since = NULL, sla_due_at = NULL, sla_kind = NULL, sla_breached_at = NULL, \
                           priority = priority & 1 \
                         WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant)
                    .bind(id)
                    .bind(micros(at))
                    .execute(self.writer())
                    .await?;
                    Ok(())
                }

                async fn unannounced_assignments(&self, since: Timestamp, limit: u32) -> StoreResult<Vec<Conversation>> {
                    // Assigned conversations are the few agents hold: `assignee_id > ''` (every
                    // id is non-empty) is a range of conversations_by_assignee, where SQLite
                    // scanned the whole table for `IS NOT NULL`.
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM conversations c \
                         WHERE c.assignee_id > '' AND c.state = 'open' AND c.assigned_at >= $1 \
                           AND NOT EXISTS (SELECT 1 FROM stream_events e \
                             WHERE e.tenant_id = c.tenant_id AND e.key = 'assigned_' || c.id || '_' || c.assigned_at) \
                         ORDER BY c.assigned_at LIMIT $2"
                    )))
                    .bind(micros(since))
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(conversation_from_row)
                    .collect()
                }

                async fn due_breaches(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<DueBreach>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM conversations \
                         WHERE sla_due_at IS NOT NULL AND sla_breached_at IS NULL AND sla_due_at <= $1 \
                           AND state IN ('pending', 'open') \
                         ORDER BY sla_due_at LIMIT $2"
                    )))
                    .bind(micros(now))
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(|row| {
                        let conversation = conversation_from_row(row)?;
                        let due_at = conversation
                            .sla_due_at
                            .ok_or_else(|| StoreError::Corrupt("a due breach without a due time".into()))?;
                        Ok(DueBreach { conversation, due_at })
                    })
                    .collect()
                }

                async fn mark_breached(&self, tenant: &str, id: &str, due_at: Timestamp, at: Timestamp) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "UPDATE conversations SET sla_breached_at = $4 \
                         WHERE tenant_id = $1 AND id = $2 AND sla_due_at = $3 AND sla_breached_at IS NULL \
                           AND state IN ('pending', 'open')",
                    )
                    .bind(tenant)
                    .bind(id)
                    .bind(micros(due_at))
                    .bind(micros(at))
                    .execute(self.writer())
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn add_note(&self, tenant: &str, conversation_id: &str, agent_id: Option<&str>, text: &str, at: Timestamp) -> StoreResult<Note> {
                    let id = new_id();
                    sqlx::query(
                        "INSERT INTO conversation_notes (id, tenant_id, conversation_id, agent_id, text, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&id)
                    .bind(tenant)
                    .bind(conversation_id)
                    .bind(agent_id)
                    .bind(text)
                    .bind(micros(at))
                    .execute(self.writer())
                    .await?;
                    Ok(Note {
                        id,
                        conversation_id: conversation_id.to_owned(),
                        agent_id: agent_id.map(str::to_owned),
                        text: text.to_owned(),
                        created_at: from_micros(micros(at))?,
                    })
                }

                async fn notes(&self, tenant: &str, conversation_id: &str) -> StoreResult<Vec<Note>> {
                    let rows: Vec<(String, String, Option<String>, String, i64)> = sqlx::query_as(
                        "SELECT id, conversation_id, agent_id, text, created_at FROM conversation_notes \
                         WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY created_at, id",
                    )
                    .bind(tenant)
                    .bind(conversation_id)
                    .fetch_all(self.reader())
                    .await?;
                    rows.into_iter()
                        .map(|(id, conversation_id, agent_id, text, at)| {
                            Ok(Note { id, conversation_id, agent_id, text, created_at: from_micros(at)? })
                        })
                        .collect()
                }

                async fn put_canned_reply(&self, tenant: &str, name: &str, text: &str, at: Timestamp) -> StoreResult<CannedReply> {
                    let (name, text, created, updated): (String, String, i64, i64) = sqlx::query_as(
                        "INSERT INTO canned_replies (tenant_id, name, text, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
                         ON CONFLICT (tenant_id, name) DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at \
                         RETURNING name, text, created_at, updated_at",
                    )
                    .bind(tenant)
                    .bind(name)
                    .bind(text)
                    .bind(micros(at))
                    .fetch_one(self.writer())
                    .await?;
                    Ok(CannedReply { name, text, created_at: from_micros(created)?, updated_at: from_micros(updated)? })
                }

                async fn canned_replies(&self, tenant: &str) -> StoreResult<Vec<CannedReply>> {
                    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
                        "SELECT name, text, created_at, updated_at FROM canned_replies WHERE tenant_id = $1 ORDER BY name",
                    )
                    .bind(tenant)
                    .fetch_all(self.reader())
                    .await?;
                    rows.into_iter()
                        .map(|(name, text, c, u)| Ok(CannedReply { name, text, created_at: from_micros(c)?, updated_at: from_micros(u)? }))
                        .collect()
                }

                async fn canned_reply(&self, tenant: &str, name: &str) -> StoreResult<Option<CannedReply>> {
                    let row: Option<(String, String, i64, i64)> = sqlx::query_as(
                        "SELECT name, text, created_at, updated_at FROM canned_replies WHERE tenant_id = $1 AND name = $2",
                    )
                    .bind(tenant)
                    .bind(name)
                    .fetch_optional(self.reader())
                    .await?;
                    row.map(|(name, text, c, u)| Ok(CannedReply { name, text, created_at: from_micros(c)?, updated_at: from_micros(u)? }))
                        .transpose()
                }

                async fn delete_canned_reply(&self, tenant: &str, name: &str) -> StoreResult<bool> {
                    let done = sqlx::query("DELETE FROM canned_replies WHERE tenant_id = $1 AND name = $2")
                        .bind(tenant)
                        .bind(name)
                        .execute(self.writer())
                        .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn mark_csat_asked(&self, tenant: &str, id: &str, at: Timestamp) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "UPDATE conversations SET csat_asked_at = $3, csat_score = NULL, csat_comment = NULL, csat_at = NULL \
                         WHERE tenant_id = $1 AND id = $2 AND state = 'resolved' \
                           AND (csat_asked_at IS NULL OR csat_asked_at < resolved_at)",
                    )
                    .bind(tenant)
                    .bind(id)
                    .bind(micros(at))
                    .execute(self.writer())
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn record_csat(&self, tenant: &str, id: &str, score: u8, comment: Option<&str>, at: Timestamp) -> StoreResult<Option<Conversation>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE conversations SET csat_score = $3, csat_comment = $4, csat_at = $5 \
                         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
                    )))
                    .bind(tenant)
                    .bind(id)
                    .bind(i64::from(score))
                    .bind(comment)
                    .bind(micros(at))
                    .fetch_optional(self.writer())
                    .await?
                    .as_ref()
                    .map(conversation_from_row)
                    .transpose()
                }
            }
        }
    };
}

impl_agent_store!(
    sqlite_agents,
    crate::SqliteStore,
    sqlx::Sqlite,
    sqlite_conversations
);
impl_agent_store!(
    postgres_agents,
    crate::PostgresStore,
    sqlx::Postgres,
    postgres_conversations
);
