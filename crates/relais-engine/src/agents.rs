//! The help desk: agents and their sessions, and what happens to a conversation once a
//! human is involved. A waiting conversation joins a team (the one a flow named, or the
//! tenant's default), gets a priority from its customer's messages (urgency, a negative
//! sentiment, a VIP contact), starts its team's SLA clock and is assigned by the team's
//! rule to an available agent with room. Agents take over from the bot, give back, move
//! conversations between them, resolve; a team may ask the customer for a rating when a
//! conversation is resolved. Every step is published on the live event stream and sent to
//! the tenant's webhooks.

use crate::conversations::{Reply, ReplyError};
use crate::events::{EventKind, Events};
use crate::send::{Acceptor, Idempotency};
use crate::smpp_server::{Verdict, blocking, hash_password, verify_password};
use jiff::{SignedDuration, Timestamp};
use relais_core::agent::{Priority, Role, check_name, is_vip, normalize_email};
use relais_core::clock::Clock;
use relais_core::conversation::ConversationState;
use relais_core::tenant::hash_api_key;
use relais_store::{Agent, AgentChange, Conversation, NewAgent, Store, StoreError, Team};
use std::sync::Arc;

/// What session tokens start with, so that a glance tells them from API keys.
pub const SESSION_PREFIX: &str = "rls_sess_";

/// How long a login lasts.
pub const SESSION_LIFETIME: SignedDuration = SignedDuration::from_hours(12);

/// Open conversations an agent is assigned automatically at most, unless set.
pub const DEFAULT_CAPACITY: u32 = 5;

/// How often `relais serve` looks for conversations whose SLA came due.
pub const SLA_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// How long after the satisfaction question a lone digit from 1 to 5 is taken as the
/// customer's rating.
pub const CSAT_ANSWER_WITHIN: SignedDuration = SignedDuration::from_hours(24);

/// Why an agent operation was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error("{0} not found")]
    NotFound(String),
    /// A field of the request is wrong: its JSON pointer and why.
    #[error("{pointer}: {detail}")]
    Invalid { pointer: String, detail: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the e-mail or the password is wrong")]
    WrongCredentials,
    #[error(
        "agents of several tenants have this e-mail: name the tenant (`tenant`, its name or id)"
    )]
    WhichTenant,
    #[error("{0}")]
    Reply(#[from] ReplyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(pointer: &str, detail: impl Into<String>) -> DeskError {
    DeskError::Invalid {
        pointer: pointer.to_owned(),
        detail: detail.into(),
    }
}

/// Who did something, as events and webhooks tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Agent {
        id: String,
        role: Role,
        teams: Vec<String>,
    },
    /// An API key (an integration, a script).
    Key(String),
    /// Relais itself: an assignment rule, the SLA clock.
    Relais,
}

impl Actor {
    pub fn agent_id(&self) -> Option<&str> {
        match self {
            Actor::Agent { id, .. } => Some(id),
            _ => None,
        }
    }

    fn describe(&self) -> serde_json::Value {
        match self {
            Actor::Agent { id, .. } => serde_json::json!({ "agent": id }),
            Actor::Key(id) => serde_json::json!({ "api_key": id }),
            Actor::Relais => serde_json::json!({ "relais": true }),
        }
    }

    /// Whether this actor may see (and act on) the conversation: keys and admins see
    /// everything; an agent, the conversations of no team, of their teams, and their own.
    pub fn may_see(&self, conversation: &Conversation) -> bool {
        match self {
            Actor::Agent {
                id,
                role: Role::Agent,
                teams,
            } => {
                conversation.team.as_ref().is_none_or(|t| teams.contains(t))
                    || conversation.assignee_id.as_deref() == Some(id)
            }
            _ => true,
        }
    }

    /// An admin agent, or a key (whose scopes the API checks).
    pub fn is_admin(&self) -> bool {
        !matches!(
            self,
            Actor::Agent {
                role: Role::Agent,
                ..
            }
        )
    }
}

impl From<&Agent> for Actor {
    fn from(agent: &Agent) -> Self {
        Actor::Agent {
            id: agent.id.clone(),
            role: agent.role,
            teams: agent.teams.clone(),
        }
    }
}

/// A login: the token is shown once; only its digest is stored.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub agent: Agent,
    pub expires_at: Timestamp,
}

/// An agent to create, as `POST /v1/agents` takes it.
#[derive(Debug, Clone)]
pub struct AgentRequest {
    pub email: String,
    pub name: String,
    pub password: String,
    pub role: Role,
    pub teams: Vec<String>,
    pub capacity: Option<u32>,
}

/// The help desk of a server; cheap to clone.
#[derive(Clone)]
pub struct Desk {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    events: Option<Events>,
}

impl Desk {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, events: Option<Events>) -> Self {
        Desk {
            store,
            clock,
            events,
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    // Agents and sessions.

    pub async fn create_agent(&self, tenant: &str, req: AgentRequest) -> Result<Agent, DeskError> {
        let email = normalize_email(&req.email).map_err(|e| invalid("/email", e))?;
        let name = check_agent_name(&req.name)?;
        check_password(&req.password)?;
        let capacity = check_capacity(req.capacity.unwrap_or(DEFAULT_CAPACITY))?;
        self.check_teams(tenant, &req.teams).await?;
        let password_hash = hash_off_thread(req.password).await?;
        let agent = self
            .store
            .create_agent(&NewAgent {
                id: relais_core::ids::new_id(),
                tenant_id: tenant.to_owned(),
                email,
                name,
                role: req.role,
                password_hash,
                capacity,
                teams: req.teams.clone(),
                at: self.now(),
            })
            .await
            .map_err(|e| match e {
                StoreError::Conflict(why) => DeskError::Conflict(why),
                e => e.into(),
            })?;
        // A new agent may take what waits in their teams.
        for team in &agent.teams {
            self.assign_waiting_in(tenant, team).await?;
        }
        Ok(agent)
    }

    /// Changes an agent; `password` is hashed. An agent who becomes available, gains room
    /// or joins a team is given what waits there.
    pub async fn update_agent(
        &self,
        tenant: &str,
        id: &str,
        mut change: AgentChange,
        password: Option<String>,
    ) -> Result<Agent, DeskError> {
        if let Some(name) = &change.name {
            change.name = Some(check_agent_name(name)?);
        }
        if let Some(capacity) = change.capacity {
            check_capacity(capacity)?;
        }
        if let Some(teams) = &change.teams {
            self.check_teams(tenant, teams).await?;
        }
        if let Some(password) = password {
            check_password(&password)?;
            change.password_hash = Some(hash_off_thread(password).await?);
        }
        let agent = self
            .store
            .update_agent(tenant, id, &change, self.now())
            .await?
            .ok_or_else(|| DeskError::NotFound(format!("agent {id}")))?;
        if agent.available {
            for team in &agent.teams {
                self.assign_waiting_in(tenant, team).await?;
            }
        }
        Ok(agent)
    }

    async fn check_teams(&self, tenant: &str, teams: &[String]) -> Result<(), DeskError> {
        for (i, team) in teams.iter().enumerate() {
            if self.store.team(tenant, team).await?.is_none() {
                return Err(invalid(
                    &format!("/teams/{i}"),
                    format!("no team is named `{team}`; create it first (PUT /v1/teams/{team})"),
                ));
            }
        }
        Ok(())
    }

    /// Checks an e-mail and password; `tenant` (a tenant's id or name) is needed only when
    /// agents of several tenants share the e-mail.
    pub async fn login(
        &self,
        tenant: Option<&str>,
        email: &str,
        password: &str,
    ) -> Result<Session, DeskError> {
        let email = normalize_email(email).map_err(|_| DeskError::WrongCredentials)?;
        let mut candidates = self.store.agent_logins(&email).await?;
        if let Some(tenant) = tenant {
            let id = match self.store.tenant_by_name(tenant).await? {
                Some(t) => t.id,
                None => tenant.to_owned(),
            };
            candidates.retain(|(agent, _)| agent.tenant_id == id);
        }
        if candidates.len() > 1 {
            return Err(DeskError::WhichTenant);
        }
        let password = password.to_owned();
        let Some((agent, hash)) = candidates.pop() else {
            // The same work as a real check, so that timing does not tell which e-mails
            // exist.
            let _ = blocking(move || hash_password(&password)).await;
            return Err(DeskError::WrongCredentials);
        };
        let verdict = blocking(move || verify_password(&hash, &password)).await;
        if verdict != Some(Verdict::Matches) {
            return Err(DeskError::WrongCredentials);
        }
        let token = format!("{SESSION_PREFIX}{}", random_hex(32));
        let now = self.now();
        let expires_at = now.saturating_add(SESSION_LIFETIME).unwrap_or(now);
        self.store
            .create_session(&hash_api_key(&token), &agent, now, expires_at)
            .await?;
        Ok(Session {
            token,
            agent,
            expires_at,
        })
    }

    /// The agent a session token belongs to, while it lasts.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Agent>, StoreError> {
        if !token.starts_with(SESSION_PREFIX) {
            return Ok(None);
        }
        self.store
            .session_agent(&hash_api_key(token), self.now())
            .await
    }

    pub async fn logout(&self, token: &str) -> Result<bool, StoreError> {
        self.store.delete_session(&hash_api_key(token)).await
    }

    // Conversations.

    /// A conversation the actor may see.
    pub async fn conversation(
        &self,
        tenant: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<Conversation, DeskError> {
        let conversation = self
            .store
            .conversation(tenant, id)
            .await?
            .ok_or_else(|| DeskError::NotFound(format!("conversation {id}")))?;
        if !actor.may_see(&conversation) {
            return Err(DeskError::Forbidden(format!(
                "conversation {id} belongs to team `{}`, which you are not a member of",
                conversation.team.as_deref().unwrap_or_default()
            )));
        }
        Ok(conversation)
    }

    /// The pipeline placed a customer's message in a conversation that waits for or is with
    /// an agent: it joins the default team if it has none, its priority rises with the
    /// message (urgent, negative, from a VIP), its SLA clock starts unless it runs, and a
    /// conversation nobody has is assigned by its team's rule.
    pub async fn customer_wrote(
        &self,
        conversation: &Conversation,
        urgent: bool,
        negative: bool,
        received_at: Timestamp,
    ) -> Result<Conversation, StoreError> {
        let tenant = conversation.tenant_id.as_str();
        let mut conversation = conversation.clone();
        let team = match &conversation.team {
            Some(name) => self.store.team(tenant, name).await?,
            None => self.store.default_team(tenant).await?,
        };
        if let Some(team) = &team
            && conversation.team.is_none()
            && conversation.state == ConversationState::Pending
            && conversation.assignee_id.is_none()
            && let Some(moved) = self
                .store
                .assign_conversation(
                    tenant,
                    &conversation.id,
                    None,
                    Some(&team.name),
                    received_at,
                )
                .await?
        {
            conversation = moved;
        }
        let vip = match self.store.contact(tenant, &conversation.contact_id).await? {
            Some(contact) => is_vip(&contact.attributes),
            None => false,
        };
        let due = |minutes: Option<u32>| {
            minutes.and_then(|m| {
                received_at
                    .checked_add(SignedDuration::from_mins(i64::from(m)))
                    .ok()
            })
        };
        let first_due = team.as_ref().and_then(|t| due(t.first_response_minutes));
        let next_due = team.as_ref().and_then(|t| due(t.next_response_minutes));
        if let Some(waiting) = self
            .store
            .note_customer_waiting(
                tenant,
                &conversation.id,
                Priority::of(urgent, negative, vip).0,
                received_at,
                first_due,
                next_due,
            )
            .await?
        {
            conversation = waiting;
        }
        if conversation.state == ConversationState::Pending
            && conversation.assignee_id.is_none()
            && let Some(team) = &team
            && let Some(assigned) = self
                .assign_waiting(team)
                .await?
                .into_iter()
                .find(|c| c.id == conversation.id)
        {
            conversation = assigned;
        }
        Ok(conversation)
    }

    /// Hands the waiting conversations of `team` to its agents while any has room; the
    /// conversations assigned.
    pub async fn assign_waiting(&self, team: &Team) -> Result<Vec<Conversation>, StoreError> {
        let mut assigned = Vec::new();
        // Bounded: a team's queue drains over several calls rather than one long hold.
        for _ in 0..100 {
            let Some(conversation) = self
                .store
                .assign_next(&team.tenant_id, &team.name, team.assignment, self.now())
                .await?
            else {
                break;
            };
            self.announce_assigned(&conversation, None, &Actor::Relais)
                .await?;
            assigned.push(conversation);
        }
        Ok(assigned)
    }

    async fn assign_waiting_in(&self, tenant: &str, team: &str) -> Result<(), StoreError> {
        if let Some(team) = self.store.team(tenant, team).await? {
            self.assign_waiting(&team).await?;
        }
        Ok(())
    }

    /// Gives a conversation to an agent (taking it over from the bot or from another agent,
    /// or taking it from the queue), or back to the queue (`agent` `None`); `team` moves
    /// it. An agent may only take conversations for themselves; an admin or a key may
    /// assign anyone.
    pub async fn assign(
        &self,
        tenant: &str,
        id: &str,
        agent: Option<&str>,
        team: Option<&str>,
        actor: &Actor,
    ) -> Result<Conversation, DeskError> {
        let before = self.conversation(tenant, id, actor).await?;
        if before.state == ConversationState::Resolved {
            return Err(DeskError::Conflict(format!(
                "conversation {id} is resolved; reopen it first (PATCH state `open` or `pending`)"
            )));
        }
        if !actor.is_admin() && agent.is_some() && agent != actor.agent_id() {
            return Err(DeskError::Forbidden(
                "an agent may only assign conversations to themselves; ask an admin".into(),
            ));
        }
        let agent = match agent {
            Some(agent_id) => Some(
                self.store
                    .agent(tenant, agent_id)
                    .await?
                    .ok_or_else(|| invalid("/agent", format!("no agent has the id {agent_id}")))?,
            ),
            None => None,
        };
        if let Some(team) = team {
            check_name("team", team).map_err(|e| invalid("/team", e))?;
            if self.store.team(tenant, team).await?.is_none() {
                return Err(invalid("/team", format!("no team is named `{team}`")));
            }
        }
        let after = self
            .store
            .assign_conversation(
                tenant,
                id,
                agent.as_ref().map(|a| a.id.as_str()),
                team,
                self.now(),
            )
            .await?
            .ok_or_else(|| DeskError::NotFound(format!("conversation {id}")))?;
        if after.state != before.state {
            self.announce_state(&before, &after, actor).await?;
        }
        if after.assignee_id.is_some() {
            self.announce_assigned(&after, before.assignee_id.as_deref(), actor)
                .await?;
        } else if let Some(team) = &after.team {
            // Back in the queue: the team's rule may give it to someone with room.
            self.assign_waiting_in(tenant, team).await?;
        }
        if let Some(previous) = &before.team
            && before.assignee_id.is_some()
            && before.assignee_id != after.assignee_id
        {
            // The previous agent has room again.
            self.assign_waiting_in(tenant, previous).await?;
        }
        Ok(after)
    }

    /// Moves a conversation to `state`, as an agent or key asks: `resolved` (asking the
    /// customer's rating when the team wants it), `pending` (back to the queue), `open`,
    /// or `bot` (given back to the bot flows).
    pub async fn set_state(
        &self,
        acceptor: &Acceptor,
        tenant: &str,
        id: &str,
        state: ConversationState,
        actor: &Actor,
    ) -> Result<Conversation, DeskError> {
        let before = self.conversation(tenant, id, actor).await?;
        let after = crate::conversations::set_state(
            &*self.store,
            self.events.as_ref(),
            tenant,
            id,
            state,
            self.now(),
        )
        .await?
        .ok_or_else(|| DeskError::NotFound(format!("conversation {id}")))?;
        if before.state != after.state {
            self.crm_event(&after, "conversation.state_changed", actor, &before)
                .await?;
        }
        if state == ConversationState::Resolved && before.state != ConversationState::Resolved {
            self.crm_event(&after, "conversation.resolved", actor, &before)
                .await?;
            self.ask_csat(acceptor, &after).await?;
        }
        // An agent freed, or a conversation back in the queue.
        if let Some(team) = &after.team
            && (before.assignee_id.is_some() || state == ConversationState::Pending)
        {
            self.assign_waiting_in(tenant, team).await?;
        }
        Ok(after)
    }

    /// An agent (or key) answered in the conversation: the customer waits no more, and an
    /// agent answering an unassigned waiting conversation takes it.
    pub async fn answered(
        &self,
        conversation: &Conversation,
        actor: &Actor,
    ) -> Result<(), DeskError> {
        let tenant = conversation.tenant_id.as_str();
        self.store
            .note_agent_answer(tenant, &conversation.id, self.now())
            .await?;
        if let Some(agent) = actor.agent_id()
            && conversation.assignee_id.is_none()
            && matches!(
                conversation.state,
                ConversationState::Pending | ConversationState::Bot
            )
        {
            self.assign(tenant, &conversation.id, Some(agent), None, actor)
                .await?;
        }
        Ok(())
    }

    /// Sends the team's satisfaction question once per resolution, when the team asks
    /// for ratings and the channel's window is open.
    async fn ask_csat(
        &self,
        acceptor: &Acceptor,
        conversation: &Conversation,
    ) -> Result<(), DeskError> {
        let Some(team) = &conversation.team else {
            return Ok(());
        };
        let wants = self
            .store
            .team(&conversation.tenant_id, team)
            .await?
            .is_some_and(|t| t.csat);
        if !wants {
            return Ok(());
        }
        let resolved_at = conversation.resolved_at.unwrap_or_else(|| self.now());
        let key = format!("csat_{}_{}", conversation.id, resolved_at.as_microsecond());
        let text = csat_question(&conversation.last_message);
        let reply = Reply {
            content: serde_json::json!({
                "text": text,
                "quick_replies": ["1", "2", "3", "4", "5"],
            }),
            channel: None,
            // Sent by the server, not by a person: the standard window only.
            human_agent: false,
        };
        let idempotency = Idempotency::new(&key, &reply.content)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        match crate::conversations::reply(
            &*self.store,
            acceptor,
            self.events.as_ref(),
            &conversation.tenant_id,
            &conversation.id,
            reply,
            Some(idempotency),
            self.now(),
        )
        .await
        {
            Ok(_) => {
                self.store
                    .mark_csat_asked(&conversation.tenant_id, &conversation.id, self.now())
                    .await?;
            }
            Err(ReplyError::Store(e)) => return Err(e.into()),
            Err(refused) => {
                // Outside the window, or the channel refuses: no question, nothing else.
                tracing::info!(conversation = %conversation.id, reason = %refused, "no satisfaction question sent");
            }
        }
        Ok(())
    }

    /// The contact's conversation (a contact has one, across channels), if they ever wrote.
    pub async fn conversation_of_contact(
        &self,
        tenant: &str,
        contact_id: &str,
    ) -> Result<Option<Conversation>, StoreError> {
        let filter = relais_store::ConversationFilter {
            contact_id: Some(contact_id.to_owned()),
            ..Default::default()
        };
        let page = relais_store::PageRequest {
            after: None,
            limit: 1,
        };
        Ok(self
            .store
            .list_conversations(tenant, &filter, &page)
            .await?
            .data
            .into_iter()
            .next())
    }

    /// Takes a customer's message as the rating of their resolved conversation when it is
    /// a lone digit from 1 to 5 sent soon after the question; the conversation rated.
    pub async fn take_rating(
        &self,
        tenant: &str,
        contact_id: &str,
        text: &str,
        at: Timestamp,
    ) -> Result<Option<Conversation>, StoreError> {
        let Some(score) = rating_of(text) else {
            return Ok(None);
        };
        let Some(conversation) = self.conversation_of_contact(tenant, contact_id).await? else {
            return Ok(None);
        };
        if conversation.csat_at == Some(at) {
            // This very message was taken as the rating by a run a crash cut short.
            return Ok(Some(conversation));
        }
        let asked_recently = conversation
            .csat_asked_at
            .is_some_and(|asked| at.duration_since(asked) <= CSAT_ANSWER_WITHIN);
        if conversation.state != ConversationState::Resolved
            || !asked_recently
            || conversation.csat_score.is_some()
        {
            return Ok(None);
        }
        let rated = self
            .store
            .record_csat(tenant, &conversation.id, score, None, at)
            .await?;
        if let Some(rated) = &rated {
            self.crm_event(rated, "conversation.rated", &Actor::Relais, rated)
                .await?;
        }
        Ok(rated)
    }

    /// The text of a canned reply for this conversation: its template rendered with the
    /// contact (`contact.*`: attributes, `id`), the agent (`agent.name`, `agent.email`)
    /// and the request's variables, within one message's limits.
    pub async fn render_canned(
        &self,
        tenant: &str,
        name: &str,
        conversation: &Conversation,
        agent: Option<&Agent>,
        variables: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, DeskError> {
        let canned = self
            .store
            .canned_reply(tenant, name)
            .await?
            .ok_or_else(|| invalid("/canned", format!("no canned reply is named `{name}`")))?;
        let template = relais_core::template::Template::compile(&canned.text)
            .map_err(|e| invalid("/canned", e.to_string()))?;
        let mut contact = match self.store.contact(tenant, &conversation.contact_id).await? {
            Some(contact) => contact.attributes,
            None => serde_json::Map::new(),
        };
        contact.insert("id".into(), conversation.contact_id.clone().into());
        let mut context = variables.clone();
        context.insert("contact".into(), contact.into());
        if let Some(agent) = agent {
            context.insert(
                "agent".into(),
                serde_json::json!({ "name": agent.name, "email": agent.email }),
            );
        }
        template
            .render(&serde_json::Value::Object(context))
            .map_err(|e| invalid("/canned", e.to_string()))
    }

    /// Records a rating given through the API (a widget, a survey page).
    pub async fn rate(
        &self,
        tenant: &str,
        id: &str,
        score: u8,
        comment: Option<&str>,
    ) -> Result<Conversation, DeskError> {
        if !(1..=5).contains(&score) {
            return Err(invalid("/score", "a rating is from 1 to 5"));
        }
        let rated = self
            .store
            .record_csat(tenant, id, score, comment, self.now())
            .await?
            .ok_or_else(|| DeskError::NotFound(format!("conversation {id}")))?;
        self.crm_event(&rated, "conversation.rated", &Actor::Relais, &rated)
            .await?;
        Ok(rated)
    }

    /// Marks the conversations whose SLA came due unanswered and publishes
    /// `sla.breached` for each (once per due time); how many.
    pub async fn check_sla(&self) -> Result<usize, StoreError> {
        let now = self.now();
        let mut breached = 0;
        for due in self.store.due_breaches(now, 500).await? {
            let c = &due.conversation;
            let data = serde_json::json!({
                "conversation_id": c.id,
                "contact_id": c.contact_id,
                "team": c.team,
                "assignee_id": c.assignee_id,
                "target": c.sla_kind,
                "due_at": due.due_at,
                "waiting_since": c.waiting_since,
                "breached_at": now,
                "priority": c.priority,
            });
            let key = format!("sla_{}_{}", c.id, due.due_at.as_microsecond());
            // Told before it is marked, once per key: a stop in between tells it again
            // (nothing repeated), where marking first would lose it.
            self.webhook(
                &c.tenant_id,
                "conversation.sla_breached",
                data.clone(),
                &key,
            )
            .await?;
            self.publish(c, EventKind::SlaBreached, data, &key).await?;
            if self
                .store
                .mark_breached(&c.tenant_id, &c.id, due.due_at, now)
                .await?
            {
                breached += 1;
            }
        }
        Ok(breached)
    }

    /// Announces the assignments a stop left untold (committed, then the process died
    /// before `conversation.assigned` was published): those of the last hour, once each;
    /// how many.
    pub async fn announce_missed_assignments(&self) -> Result<usize, StoreError> {
        if self.events.is_none() {
            // Without a stream nothing is ever recorded as told: nothing to catch up.
            return Ok(0);
        }
        let since = self.now() - SignedDuration::from_hours(1);
        let missed = self.store.unannounced_assignments(since, 500).await?;
        for c in &missed {
            self.announce_assigned(c, None, &Actor::Relais).await?;
        }
        Ok(missed.len())
    }

    /// [`Desk::check_sla`] and [`Desk::announce_missed_assignments`] every `every`, for as
    /// long as the task runs.
    pub async fn watch_sla_forever(self, every: std::time::Duration) {
        loop {
            match self.check_sla().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(breaches = n, "conversations passed their SLA unanswered"),
                Err(e) => tracing::warn!(error = %e, "cannot check SLA due times"),
            }
            match self.announce_missed_assignments().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    assignments = n,
                    "assignments a stop had left untold were announced"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot look for untold assignments"),
            }
            tokio::time::sleep(every).await;
        }
    }

    /// `conversation.opened`: the pipeline created or reopened the conversation.
    pub async fn announce_opened(
        &self,
        conversation: &Conversation,
        message_id: &str,
    ) -> Result<(), StoreError> {
        let data = serde_json::json!({
            "conversation_id": conversation.id,
            "contact_id": conversation.contact_id,
            "state": conversation.state,
            "channel": conversation.channel,
            "opened_at": conversation.opened_at,
            "message_id": message_id,
        });
        self.webhook(
            &conversation.tenant_id,
            "conversation.opened",
            data,
            &format!("opened_{message_id}"),
        )
        .await
    }

    async fn announce_assigned(
        &self,
        c: &Conversation,
        previous: Option<&str>,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let data = serde_json::json!({
            "conversation_id": c.id,
            "contact_id": c.contact_id,
            "assignee_id": c.assignee_id,
            "previous_assignee_id": previous,
            "team": c.team,
            "state": c.state,
            "priority": c.priority,
            "priority_reasons": Priority(c.priority).reasons(),
            "assigned_at": c.assigned_at,
            "by": actor.describe(),
        });
        // One event per assignment: a conversation counts them.
        let key = format!(
            "assigned_{}_{}",
            c.id,
            c.assigned_at
                .map(|t| t.as_microsecond())
                .unwrap_or_default()
        );
        // The webhook first: the stream event is what marks the assignment as told
        // (`announce_missed_assignments` looks for it), and both are once per key.
        self.webhook(&c.tenant_id, "conversation.assigned", data.clone(), &key)
            .await?;
        self.publish(c, EventKind::ConversationAssigned, data, &key)
            .await
    }

    async fn announce_state(
        &self,
        before: &Conversation,
        after: &Conversation,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let Some(events) = &self.events else {
            return Ok(());
        };
        events
            .publish_about(
                &after.tenant_id,
                EventKind::ConversationStateChanged,
                Some(&after.id),
                after.team.as_deref(),
                serde_json::json!({
                    "id": after.id,
                    "state": after.state,
                    "previous_state": before.state,
                    "contact_id": after.contact_id,
                    "team": after.team,
                    "assignee_id": after.assignee_id,
                    "by": actor.describe(),
                }),
                None,
            )
            .await?;
        Ok(())
    }

    async fn crm_event(
        &self,
        c: &Conversation,
        kind: &str,
        actor: &Actor,
        before: &Conversation,
    ) -> Result<(), StoreError> {
        let data = serde_json::json!({
            "conversation_id": c.id,
            "contact_id": c.contact_id,
            "state": c.state,
            "previous_state": before.state,
            "team": c.team,
            "assignee_id": c.assignee_id,
            "resolved_at": c.resolved_at,
            "csat": c.csat_score.map(|score| serde_json::json!({"score": score, "comment": c.csat_comment})),
            "by": actor.describe(),
        });
        let key = format!(
            "{kind}_{}_{}",
            c.id,
            c.updated_at
                .as_microsecond()
                .max(c.csat_at.map(|t| t.as_microsecond()).unwrap_or_default())
        );
        self.webhook(&c.tenant_id, kind, data, &key).await
    }

    async fn publish(
        &self,
        c: &Conversation,
        kind: EventKind,
        data: serde_json::Value,
        key: &str,
    ) -> Result<(), StoreError> {
        if let Some(events) = &self.events {
            events
                .publish_about(
                    &c.tenant_id,
                    kind,
                    Some(&c.id),
                    c.team.as_deref(),
                    data,
                    Some(key),
                )
                .await?;
        }
        Ok(())
    }

    /// Queues a signed webhook event for the tenant's webhooks, once per key.
    async fn webhook(
        &self,
        tenant: &str,
        kind: &str,
        data: serde_json::Value,
        key: &str,
    ) -> Result<(), StoreError> {
        crate::webhooks::queue_event(&*self.store, tenant, kind, data, key, self.now()).await
    }
}

/// The argon2id hash of a password, computed on the blocking pool.
async fn hash_off_thread(password: String) -> Result<String, StoreError> {
    blocking(move || hash_password(&password))
        .await
        .and_then(Result::ok)
        .ok_or_else(|| StoreError::Unavailable("the password could not be hashed".into()))
}

fn check_agent_name(name: &str) -> Result<String, DeskError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(invalid("/name", "a name is 1 to 100 characters"));
    }
    Ok(name.to_owned())
}

fn check_password(password: &str) -> Result<(), DeskError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(invalid(
            "/password",
            format!("a password has at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.len() > 1024 {
        return Err(invalid("/password", "a password has at most 1,024 bytes"));
    }
    Ok(())
}

fn check_capacity(capacity: u32) -> Result<u32, DeskError> {
    if capacity > 1000 {
        return Err(invalid("/capacity", "a capacity is from 0 to 1000"));
    }
    Ok(capacity)
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The rating in a customer's answer to the satisfaction question: `4`, `4/5`, `5 !`.
pub fn rating_of(text: &str) -> Option<u8> {
    let text = text.trim().trim_end_matches(['!', '.', ' ']);
    let digits = text.strip_suffix("/5").unwrap_or(text).trim();
    match digits {
        "1" => Some(1),
        "2" => Some(2),
        "3" => Some(3),
        "4" => Some(4),
        "5" => Some(5),
        _ => None,
    }
}

/// Whether the conversation's latest message is in French: the satisfaction question
/// follows the customer's language, and the thanks follow the question.
fn in_french(last_message: &serde_json::Value) -> bool {
    let text = last_message
        .get("text")
        .and_then(|t| t.as_str())
        .unwrap_or_default();
    relais_nlu::language::detect_language(text) == relais_nlu::language::Language::Fr
}

fn csat_question(last_message: &serde_json::Value) -> &'static str {
    if in_french(last_message) {
        "Votre demande est résolue. Comment évaluez-vous notre aide, de 1 (mauvaise) à 5 (excellente) ?"
    } else {
        "Your request is resolved. How would you rate our help, from 1 (poor) to 5 (excellent)?"
    }
}

/// The thanks for a rating, in the language of the question (the conversation's latest
/// message until the thanks are recorded).
pub fn csat_thanks(rated: &Conversation) -> &'static str {
    if in_french(&rated.last_message) {
        "Merci pour votre note !"
    } else {
        "Thank you for your rating!"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relais_core::agent::AssignmentRule;
    use relais_core::channel::ChannelKind;
    use relais_core::clock::ManualClock;
    use relais_store::{InboundPlacement, SqliteStore, TeamSpec};

    #[tokio::test]
    async fn an_assignment_a_stop_left_untold_is_announced_once() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
        let clock = Arc::new(ManualClock::new("2026-12-03T10:00:00Z".parse().unwrap()));
        let now = clock.now();
        let events = Events::new(store.clone(), clock.clone());
        let desk = Desk::new(store.clone(), clock.clone(), Some(events.clone()));
        let tenant = store.create_tenant("acme", now).await.unwrap().id;
        let hook = store
            .create_webhook(&tenant, "https://crm.example/hooks", "whsec_test", now)
            .await
            .unwrap();
        let spec = TeamSpec {
            description: None,
            assignment: AssignmentRule::RoundRobin,
            first_response_minutes: None,
            next_response_minutes: None,
            is_default: true,
            csat: false,
        };
        store
            .put_team(&tenant, "support", &spec, now)
            .await
            .unwrap();
        let ana = store
            .create_agent(&NewAgent {
                id: relais_core::ids::new_id(),
                tenant_id: tenant.clone(),
                email: "ana@example.com".into(),
                name: "Ana".into(),
                role: Role::Agent,
                password_hash: "$argon2id$not-a-real-hash".into(),
                capacity: 3,
                teams: vec!["support".into()],
                at: now,
            })
            .await
            .unwrap();
        let contact = store
            .resolve_or_create_contacts(
                &tenant,
                &[relais_core::contact::Identity {
                    channel: ChannelKind::Sms,
                    address: "+33612345678".into(),
                }],
                now,
            )
            .await
            .unwrap()
            .remove(0)
            .0;
        let placed = store
            .place_inbound(&InboundPlacement {
                tenant_id: &tenant,
                contact_id: &contact.id,
                message_id: "in-1",
                channel: ChannelKind::Sms,
                channel_id: None,
                address: "+33612345678",
                last_message: &serde_json::json!({"direction": "in", "text": "help"}),
                at: now,
                state: ConversationState::Pending,
                reopens: true,
            })
            .await
            .unwrap();
        store
            .assign_conversation(&tenant, &placed.id, None, Some("support"), now)
            .await
            .unwrap();
        store
            .note_customer_waiting(&tenant, &placed.id, 0, now, None, None)
            .await
            .unwrap();
        // The assignment commits, then the process stops before announcing it.
        let assigned = store
            .assign_next(&tenant, "support", AssignmentRule::RoundRobin, now)
            .await
            .unwrap()
            .expect("ana has room");
        assert_eq!(assigned.assignee_id.as_deref(), Some(ana.id.as_str()));
        let mut reader = events.subscribe(&tenant, Some(0)).await.unwrap();

        clock.advance(SignedDuration::from_secs(15));
        assert_eq!(desk.announce_missed_assignments().await.unwrap(), 1);
        assert_eq!(
            desk.announce_missed_assignments().await.unwrap(),
            0,
            "told once"
        );
        match tokio::time::timeout(std::time::Duration::from_secs(10), reader.next())
            .await
            .unwrap()
            .unwrap()
        {
            crate::events::Delivery::Event(event) => {
                assert_eq!(event.kind, "conversation.assigned");
                assert_eq!(event.data["assignee_id"], ana.id.as_str());
                assert_eq!(event.data["by"], serde_json::json!({"relais": true}));
            }
            other => panic!("expected the assignment, got {other:?}"),
        }
        let deliveries = store.webhook_deliveries(&tenant, &hook.id).await.unwrap();
        let told: Vec<_> = deliveries
            .iter()
            .filter(|d| d.event_type == "conversation.assigned")
            .collect();
        assert_eq!(told.len(), 1, "{deliveries:?}");
    }

    #[test]
    fn ratings_are_read_as_customers_write_them() {
        assert_eq!(rating_of("5"), Some(5));
        assert_eq!(rating_of(" 4/5 "), Some(4));
        assert_eq!(rating_of("3 !"), Some(3));
        assert_eq!(rating_of("6"), None);
        assert_eq!(rating_of("0"), None);
        assert_eq!(rating_of("5 stars but slow"), None);
        assert_eq!(rating_of("45"), None);
    }
}
