//! Bot flows at work: the tenant's flows stored and checked, the flow an inbound message
//! starts (by its entry rules), the bot's turn for each message of a conversation in the
//! `bot` state, and simulations that run a flow against scripted inputs without sending.
//!
//! A turn is idempotent: its answers are keyed by the inbound message (and their rank),
//! answers stored on the contact once per (message, attribute), and the session and the
//! conversation's state written together at the end with the message's id; a message run
//! again after a crash finds its turn taken, or takes it again sending nothing twice.
//!
//! An `email` or `phone` answer kept in an attribute also links that address to the
//! contact ([`crate::link`]). When that merges the contact into a known customer, the rest
//! of the turn writes on the customer and in their conversation ([`Turn::moved`]).

mod io;
pub mod run;

pub use io::{HttpMock, MAX_HTTP_ANSWER_BYTES, TranscriptLine};
pub use run::{Ending, HandoffReason, Run, Waiting};

use crate::link::Linked;
use crate::nlu::NluService;
use crate::replies::{Reply, reply_many};
use crate::send::AcceptContext;
use crate::send::AcceptError;
use crate::webhooks::Destinations;
use io::{LiveIo, SimulatedIo};
use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::clock::Clock;
use relais_core::contact::{Contact, Identity};
use relais_core::conversation::ConversationState;
use relais_core::flow::{AnswerContext, EntryMatch, Facts, FlowDefinition, FlowErrors, Node};
use relais_store::{
    Conversation, FlowRecord, FlowSession, FlowStep, InboundMessage, Store, StoreError,
};
use run::{FlowIoError, RunStart};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// Most scripted inputs one simulation takes.
pub const MAX_SIMULATED_INPUTS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum FlowsError {
    #[error("the flow is not valid: {0}")]
    Invalid(FlowErrors),
    #[error("{0}")]
    BadName(String),
    #[error("flow `{0}` not found")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] FlowIoError),
}

/// A flow picked to start, with the rule that picked it.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub name: String,
    pub revision: i64,
    pub definition: Arc<FlowDefinition>,
    pub by: EntryMatch,
}

/// What the bot did with one inbound message.
#[derive(Debug, Clone, Serialize)]
pub struct Turn {
    pub flow: String,
    pub run: Run,
    /// The conversation's state after the turn.
    pub state: ConversationState,
    /// The addresses the customer gave as their own, and what each did to contacts.
    pub links: Vec<Link>,
    /// Where the thread is when one of them merged the contact into a known customer.
    #[serde(skip)]
    pub moved: Option<Moved>,
}

/// An address the customer gave as their own (the answer of `node`), and what it did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    pub node: String,
    pub identity: Identity,
    #[serde(flatten)]
    pub linked: Linked,
}

/// The contact a message's thread moved to with a merge, and its conversation as it was
/// before the turn's step was written (the visitor's, or the customer's own when they had
/// one).
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    pub contact_id: String,
    pub conversation: Conversation,
}

/// One message's turn, for [`Flows::take_turns`].
pub struct TurnRequest<'a> {
    pub message: &'a InboundMessage,
    /// The message's conversation, in the `bot` state.
    pub conversation: &'a Conversation,
    pub facts: Facts,
    pub language: Option<String>,
    /// The flow the message starts when its conversation runs none.
    pub chosen: Option<Chosen>,
}

/// Where a run starts: a session's waiting node, or a flow's start.
struct Start {
    flow: String,
    revision: i64,
    definition: Arc<FlowDefinition>,
    waiting: Option<Waiting>,
    vars: Map<String, Value>,
    started_at: Timestamp,
}

/// A run done, its answers not accepted yet and its step not written.
struct Ran<'a> {
    request: TurnRequest<'a>,
    start: Start,
    run: Run,
    unsent: Vec<(String, Value)>,
    last_said: Option<relais_core::content::Content>,
    links: Vec<Link>,
    moved: Option<Moved>,
}

impl Ran<'_> {
    /// The conversation the step is written in: the message's, or the one a merge moved
    /// the thread to.
    fn conversation(&self) -> &Conversation {
        self.moved
            .as_ref()
            .map_or(self.request.conversation, |m| &m.conversation)
    }

    /// What the run leaves for its conversation.
    fn step_parts(&self, now: Timestamp) -> StepParts {
        let conversation = self.conversation();
        let mut parts = step_parts(
            self.request.message,
            conversation,
            &self.start.flow,
            self.start.revision,
            self.start.started_at,
            &self.run,
            self.last_said.as_ref(),
            now,
        );
        if self.moved.is_some()
            && matches!(
                conversation.state,
                ConversationState::Pending | ConversationState::Open
            )
        {
            // Merged into a customer who waits for or talks with a person: the bot stops
            // there, and leaves the conversation as it was.
            parts.session = None;
            parts.state = conversation.state;
            parts.team = None;
        }
        parts
    }
}

/// What a turn leaves, to write: the session (or its end), the conversation's state and
/// team, and the bot's latest answer for the conversation's list.
struct StepParts {
    session: Option<FlowSession>,
    state: ConversationState,
    team: Option<String>,
    last_message: Option<Value>,
}

impl StepParts {
    fn step<'a>(
        &'a self,
        message: &'a InboundMessage,
        conversation: &'a Conversation,
        now: Timestamp,
    ) -> FlowStep<'a> {
        FlowStep {
            tenant_id: &message.tenant_id,
            conversation_id: &conversation.id,
            session: self.session.as_ref(),
            state: (self.state != conversation.state).then_some(self.state),
            team: self.team.as_deref(),
            last_message: self.last_message.as_ref(),
            at: now,
        }
    }
}

/// What the run of `flow` leaves for `message`'s conversation.
#[allow(clippy::too_many_arguments)]
fn step_parts(
    message: &InboundMessage,
    conversation: &Conversation,
    flow: &str,
    revision: i64,
    started_at: Timestamp,
    run: &Run,
    last_said: Option<&relais_core::content::Content>,
    now: Timestamp,
) -> StepParts {
    let (session, state, team) = match &run.ending {
        Ending::Waiting(w) => (
            Some(FlowSession {
                tenant_id: message.tenant_id.clone(),
                conversation_id: conversation.id.clone(),
                flow: flow.to_owned(),
                revision,
                node: w.node.clone(),
                attempts: w.attempts,
                vars: run.vars.clone(),
                last_message_id: message.id.clone(),
                started_at,
                updated_at: now,
            }),
            ConversationState::Bot,
            None,
        ),
        Ending::Ended { resolve: true } => (None, ConversationState::Resolved, None),
        Ending::Ended { resolve: false } => (None, ConversationState::Pending, None),
        Ending::HandedOff { team, .. } => (None, ConversationState::Pending, team.clone()),
    };
    let last_message = last_said.map(|content| {
        serde_json::json!({
            "direction": "out",
            "text": content_text(content),
            "channel": message.channel,
            "at": now,
            "message_id": Value::Null,
        })
    });
    StepParts {
        session,
        state,
        team,
        last_message,
    }
}

/// Parsed flows by (tenant, name), with the revision each was parsed from.
type ParsedFlows = HashMap<(String, String), (i64, Arc<FlowDefinition>)>;

/// The flows of a server; cheap to share.
pub struct Flows {
    store: Arc<dyn Store>,
    nlu: Arc<NluService>,
    clock: Arc<dyn Clock>,
    http: io::FlowHttp,
    /// Parsed flows by (tenant, name), with the revision they were parsed from.
    parsed: Mutex<ParsedFlows>,
}

impl Flows {
    pub fn new(
        store: Arc<dyn Store>,
        nlu: Arc<NluService>,
        clock: Arc<dyn Clock>,
        destinations: Destinations,
    ) -> Self {
        let builder = reqwest::Client::builder().user_agent("Relais-Flows/1");
        let http = crate::webhooks::guarded_client(destinations, builder).unwrap_or_else(|e| {
            // Building a client fails only when TLS cannot start; calls then fail and
            // take their `on_fail` branch.
            tracing::error!(error = %e, "the flows' HTTP client could not be built");
            reqwest::Client::new()
        });
        Flows {
            store,
            nlu,
            clock,
            http: io::FlowHttp {
                client: http,
                destinations,
            },
            parsed: Mutex::default(),
        }
    }

    /// Checks and stores the tenant's flow `name`.
    pub async fn put(
        &self,
        tenant: &str,
        name: &str,
        document: &Value,
    ) -> Result<FlowRecord, FlowsError> {
        relais_core::flow::check_name(name).map_err(FlowsError::BadName)?;
        let flow = FlowDefinition::parse(document).map_err(FlowsError::Invalid)?;
        let canonical = serde_json::to_value(&flow)
            .map_err(|e| FlowsError::Store(StoreError::Corrupt(e.to_string())))?;
        Ok(self
            .store
            .put_flow(tenant, name, &canonical, self.clock.now())
            .await?)
    }

    /// The tenant's flow `name` at `revision`, parsed once; read from the store only when
    /// this revision was not parsed yet (`record`, when the caller has it already).
    async fn definition(
        &self,
        tenant: &str,
        name: &str,
        revision: i64,
        record: Option<&FlowRecord>,
    ) -> Result<Option<Arc<FlowDefinition>>, FlowsError> {
        let key = (tenant.to_owned(), name.to_owned());
        if let Some((parsed, flow)) = self.lock().get(&key)
            && *parsed == revision
        {
            return Ok(Some(flow.clone()));
        }
        let fetched;
        let record = match record {
            Some(record) => record,
            None => match self.store.flow(tenant, name).await? {
                Some(r) => {
                    fetched = r;
                    &fetched
                }
                // Deleted meanwhile.
                None => return Ok(None),
            },
        };
        let flow = Arc::new(FlowDefinition::parse(&record.definition).map_err(|e| {
            FlowsError::Store(StoreError::Corrupt(format!(
                "stored flow `{}` is not valid: {e}",
                record.name
            )))
        })?);
        self.lock().insert(key, (record.revision, flow.clone()));
        Ok(Some(flow))
    }

    /// The current revision of the tenant's flow `name`, parsed; `None` once deleted.
    async fn current(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<(i64, Arc<FlowDefinition>)>, FlowsError> {
        let revisions = self.store.flow_revisions(tenant).await?;
        let Some((_, revision)) = revisions.into_iter().find(|(n, _)| n == name) else {
            return Ok(None);
        };
        Ok(self
            .definition(tenant, name, revision, None)
            .await?
            .map(|definition| (revision, definition)))
    }

    /// Whether one of the tenant's flows may wait on something outside Relais (an `http`
    /// node's endpoint, an `answer` node's language model) for up to seconds.
    pub async fn call_out(&self, tenant: &str) -> Result<bool, FlowsError> {
        for (name, revision) in self.store.flow_revisions(tenant).await? {
            if let Some(definition) = self.definition(tenant, &name, revision, None).await?
                && definition
                    .nodes
                    .values()
                    .any(|node| matches!(node, Node::Http(_) | Node::Answer(_)))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ParsedFlows> {
        self.parsed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The flow a message starts, if any: a keyword entry first, then an intent, then a
    /// new conversation (`opening`); between flows of the same rank, the first by name.
    pub async fn choose(
        &self,
        tenant: &str,
        channel: ChannelKind,
        opening: bool,
        facts: &Facts,
    ) -> Result<Option<Chosen>, FlowsError> {
        let mut best: Option<Chosen> = None;
        for (name, revision) in self.store.flow_revisions(tenant).await? {
            let definition = match self.definition(tenant, &name, revision, None).await {
                Ok(Some(d)) => d,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(tenant, flow = %name, error = %e, "a stored flow cannot be read; skipped");
                    continue;
                }
            };
            if let Some(by) = definition.entry.matches(channel, opening, facts)
                && best.as_ref().is_none_or(|b| by > b.by)
            {
                best = Some(Chosen {
                    name,
                    revision,
                    definition,
                    by,
                });
            }
        }
        Ok(best)
    }

    /// The tenant's flow `name` picked to start whatever its entry rules (an entry point's
    /// referral names it); `None` when the tenant has no such flow (deleted since).
    pub async fn chosen_by_name(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<Chosen>, FlowsError> {
        Ok(self
            .current(tenant, name)
            .await?
            .map(|(revision, definition)| Chosen {
                name: name.to_owned(),
                revision,
                definition,
                by: EntryMatch::Keyword,
            }))
    }

    /// The bot's turn for each message, in its conversation (which is in the `bot`
    /// state): the flow it runs goes on, or the chosen one starts. `None` for a message
    /// whose turn was already taken (a run again after a crash). The conversations are
    /// distinct; their sessions and contacts are read together, the runs go side by side
    /// (an `http` node waiting for its endpoint holds up no other run), and their answers
    /// and steps are written together. A failed turn writes nothing and is taken again.
    pub async fn take_turns(
        &self,
        accept: AcceptContext<'_>,
        requests: Vec<TurnRequest<'_>>,
    ) -> Vec<Result<Option<Turn>, FlowsError>> {
        let mut results: Vec<Option<Result<Option<Turn>, FlowsError>>> =
            requests.iter().map(|_| None).collect();
        let now = self.clock.now();
        let (mut sessions, contacts) = self.sessions_and_contacts(&requests, &mut results).await;
        let mut planned = Vec::new();
        for (index, request) in requests.into_iter().enumerate() {
            if results[index].is_some() {
                continue;
            }
            let session = sessions.remove(&request.conversation.id);
            if session
                .as_ref()
                .is_some_and(|s| s.last_message_id == request.message.id)
            {
                results[index] = Some(Ok(None));
                continue;
            }
            let tenant = request.message.tenant_id.as_str();
            let start = match session {
                Some(s) => match self.current(tenant, &s.flow).await {
                    Ok(Some((revision, definition))) => Start {
                        flow: s.flow,
                        revision,
                        definition,
                        waiting: Some(Waiting {
                            node: s.node,
                            attempts: s.attempts,
                        }),
                        vars: s.vars,
                        started_at: s.started_at,
                    },
                    Ok(None) => {
                        let reason =
                            HandoffReason::Broken(format!("flow `{}` was deleted", s.flow));
                        let turn = self
                            .hand_off_without_flow(accept, &request, &s.flow, reason)
                            .await;
                        results[index] = Some(turn.map(Some));
                        continue;
                    }
                    Err(e) => {
                        results[index] = Some(Err(e));
                        continue;
                    }
                },
                None => match request.chosen.clone() {
                    Some(c) => Start {
                        flow: c.name,
                        revision: c.revision,
                        definition: c.definition,
                        waiting: None,
                        vars: Map::new(),
                        started_at: now,
                    },
                    None => {
                        // In the `bot` state with no flow to run: a human answers.
                        let reason = HandoffReason::Broken("no flow takes this message".into());
                        let request = TurnRequest {
                            language: None,
                            ..request
                        };
                        let turn = self
                            .hand_off_without_flow(accept, &request, "", reason)
                            .await;
                        results[index] = Some(turn.map(Some));
                        continue;
                    }
                },
            };
            let contact = request
                .message
                .contact_id
                .as_deref()
                .and_then(|id| contacts.get(id))
                .cloned();
            planned.push((index, request, start, contact));
        }
        let runs = planned
            .into_iter()
            .map(|(index, request, start, contact)| async move {
                (
                    index,
                    self.run_turn(accept, request, start, contact, now).await,
                )
            });
        let mut ran: Vec<(usize, Ran<'_>)> = Vec::new();
        for (index, outcome) in futures::future::join_all(runs).await {
            match outcome {
                Ok(r) => ran.push((index, r)),
                Err(e) => results[index] = Some(Err(e)),
            }
        }
        // The answers of every run, accepted together.
        let mut replies = Vec::new();
        let mut owners = Vec::new();
        for (k, (_, r)) in ran.iter_mut().enumerate() {
            for (key, content) in std::mem::take(&mut r.unsent) {
                replies.push(Reply {
                    message: r.request.message,
                    content,
                    key,
                });
                owners.push(k);
            }
        }
        let mut failed: Vec<Option<FlowsError>> = ran.iter().map(|_| None).collect();
        for (k, outcome) in owners.into_iter().zip(reply_many(accept, replies).await) {
            match outcome {
                Ok(()) => {}
                Err(AcceptError::Store(e)) => {
                    failed[k].get_or_insert(FlowsError::Store(e));
                }
                Err(refused) => {
                    let (_, r) = &ran[k];
                    tracing::warn!(flow = r.start.flow, message = %r.request.message.id, error = %refused, "a flow's answer was refused");
                }
            }
        }
        // Then the steps of those whose answers are accepted, in one transaction.
        let mut written = Vec::new();
        for ((index, r), failure) in ran.into_iter().zip(failed) {
            match failure {
                Some(e) => results[index] = Some(Err(e)),
                None => written.push((index, r)),
            }
        }
        let parts: Vec<StepParts> = written.iter().map(|(_, r)| r.step_parts(now)).collect();
        let steps: Vec<FlowStep<'_>> = written
            .iter()
            .zip(&parts)
            .map(|((_, r), p)| p.step(r.request.message, r.conversation(), now))
            .collect();
        let saved = self.store.save_flow_steps(&steps).await;
        for ((index, r), p) in written.into_iter().zip(parts) {
            results[index] = Some(match &saved {
                Ok(()) => Ok(Some(Turn {
                    flow: r.start.flow,
                    run: r.run,
                    state: p.state,
                    links: r.links,
                    moved: r.moved,
                })),
                Err(e) => Err(FlowsError::Store(e.share())),
            });
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(FlowsError::BadRequest("a turn got no outcome".into())))
            })
            .collect()
    }

    /// The flow sessions (by conversation) and contacts (by id) of the requests, one read
    /// of each per tenant; the requests of a tenant whose read failed get its error.
    async fn sessions_and_contacts(
        &self,
        requests: &[TurnRequest<'_>],
        results: &mut [Option<Result<Option<Turn>, FlowsError>>],
    ) -> (HashMap<String, FlowSession>, HashMap<String, Contact>) {
        let mut sessions = HashMap::new();
        let mut contacts = HashMap::new();
        let tenants: BTreeSet<&str> = requests
            .iter()
            .map(|r| r.message.tenant_id.as_str())
            .collect();
        for tenant in tenants {
            let of_tenant = || {
                requests
                    .iter()
                    .enumerate()
                    .filter(move |(_, r)| r.message.tenant_id == tenant)
            };
            let conversation_ids: Vec<&str> = of_tenant()
                .map(|(_, r)| r.conversation.id.as_str())
                .collect();
            let contact_ids: Vec<&str> = of_tenant()
                .filter_map(|(_, r)| r.message.contact_id.as_deref())
                .collect();
            let read = async {
                let s = self
                    .store
                    .flow_sessions_of(tenant, &conversation_ids)
                    .await?;
                let c = self.store.contacts_by_ids(tenant, &contact_ids).await?;
                Ok::<_, StoreError>((s, c))
            };
            match read.await {
                Ok((s, c)) => {
                    sessions.extend(s.into_iter().map(|s| (s.conversation_id.clone(), s)));
                    contacts.extend(c.into_iter().map(|c| (c.id.clone(), c)));
                }
                Err(e) => {
                    for (index, _) in of_tenant() {
                        results[index] = Some(Err(FlowsError::Store(e.share())));
                    }
                }
            }
        }
        (sessions, contacts)
    }

    /// One message's run, its answers said but not accepted yet.
    async fn run_turn<'r>(
        &self,
        accept: AcceptContext<'_>,
        request: TurnRequest<'r>,
        start: Start,
        contact: Option<Contact>,
        now: Timestamp,
    ) -> Result<Ran<'r>, FlowsError> {
        let today = today_for(now, contact.as_ref().and_then(|c| c.timezone.as_deref()));
        let language = request.language.clone().or_else(|| {
            contact
                .as_ref()
                .and_then(|c| c.locale.as_deref())
                .map(|l| l.chars().take(2).collect())
        });
        let mut io = LiveIo {
            accept,
            store: &*self.store,
            nlu: &self.nlu,
            http: &self.http,
            message: request.message,
            contact_id: request.message.contact_id.clone(),
            conversation: request.conversation.clone(),
            moved: false,
            links: Vec::new(),
            flow: &start.flow,
            now,
            said: 0,
            unsent: Vec::new(),
            last_said: None,
            broken: None,
        };
        let run = run::run(
            RunStart {
                flow: &start.definition,
                waiting: start.waiting.clone(),
                vars: start.vars.clone(),
                attributes: contact.map(|c| c.attributes).unwrap_or_default(),
                facts: request.facts.clone(),
                language: language.clone(),
                answers: AnswerContext {
                    today,
                    default_country: accept.rules.default_country,
                },
            },
            &mut io,
        )
        .await?;
        if let Some(broken) = io.broken.take() {
            return Err(broken.into());
        }
        if let Ending::HandedOff { reason, .. } = &run.ending
            && *reason != HandoffReason::Asked
        {
            // The customer hears that a person takes over, whatever stopped the bot.
            let text = handover_text(language.as_deref());
            run::FlowIo::say(
                &mut io,
                "handover",
                relais_core::content::Content::text(text),
            )
            .await?;
        }
        let (unsent, last_said) = (std::mem::take(&mut io.unsent), io.last_said.take());
        let links = std::mem::take(&mut io.links);
        let moved = match (io.moved, io.contact_id.take()) {
            (true, Some(contact_id)) => Some(Moved {
                contact_id,
                conversation: io.conversation.clone(),
            }),
            _ => None,
        };
        Ok(Ran {
            request,
            start,
            run,
            unsent,
            last_said,
            links,
            moved,
        })
    }

    async fn hand_off_without_flow(
        &self,
        accept: AcceptContext<'_>,
        request: &TurnRequest<'_>,
        flow: &str,
        reason: HandoffReason,
    ) -> Result<Turn, FlowsError> {
        let (message, conversation) = (request.message, request.conversation);
        tracing::warn!(conversation = %conversation.id, ?reason, "a conversation in the bot state has no flow to run; handed to a human");
        let run = Run {
            ending: Ending::HandedOff { team: None, reason },
            vars: Map::new(),
            attributes: Map::new(),
            visited: Vec::new(),
        };
        let key = format!("relais:flow:{}:handover", message.id);
        let text = handover_text(request.language.as_deref());
        if let Err(e) =
            crate::replies::reply_once(accept, message, serde_json::json!({"text": text}), &key)
                .await
        {
            match e {
                AcceptError::Store(e) => return Err(e.into()),
                refused => tracing::warn!(error = %refused, "the hand-over notice was refused"),
            }
        }
        let now = self.clock.now();
        let parts = step_parts(message, conversation, flow, 0, now, &run, None, now);
        self.store
            .save_flow_step(&parts.step(message, conversation, now))
            .await?;
        Ok(Turn {
            flow: flow.to_owned(),
            run,
            state: parts.state,
            links: Vec::new(),
            moved: None,
        })
    }

    /// Runs the tenant's flow `name` against scripted customer messages, from its start,
    /// without sending or storing anything; `http` nodes with a mock answer it, the
    /// others are called.
    pub async fn simulate(
        &self,
        tenant: &str,
        name: &str,
        simulation: Simulation,
    ) -> Result<Transcript, FlowsError> {
        if simulation.inputs.len() > MAX_SIMULATED_INPUTS {
            return Err(FlowsError::BadRequest(format!(
                "a simulation takes at most {MAX_SIMULATED_INPUTS} inputs"
            )));
        }
        let record = self
            .store
            .flow(tenant, name)
            .await?
            .ok_or_else(|| FlowsError::NotFound(name.to_owned()))?;
        let definition = self
            .definition(tenant, name, record.revision, Some(&record))
            .await?
            .ok_or_else(|| FlowsError::NotFound(name.to_owned()))?;
        let now = self.clock.now();
        let mut attributes = simulation.attributes;
        let mut vars = Map::new();
        let mut waiting = None;
        let mut lines = Vec::new();
        let mut ending = None;
        let mut visited = Vec::new();
        for input in simulation.inputs {
            let facts = self.classified(tenant, &input).await;
            lines.push(TranscriptLine::Customer {
                text: input.clone(),
            });
            let mut io = SimulatedIo {
                tenant,
                nlu: &self.nlu,
                http: &self.http,
                mocks: &simulation.mocks,
                transcript: Vec::new(),
            };
            let run = run::run(
                RunStart {
                    flow: &definition,
                    waiting: waiting.take(),
                    vars: std::mem::take(&mut vars),
                    attributes: attributes.clone(),
                    language: facts.1.clone(),
                    facts: facts.0,
                    answers: AnswerContext {
                        today: today_for(now, simulation.timezone.as_deref()),
                        default_country: simulation.default_country,
                    },
                },
                &mut io,
            )
            .await?;
            lines.append(&mut io.transcript);
            visited.extend(run.visited.iter().cloned());
            attributes = run.attributes;
            vars = run.vars;
            match run.ending {
                Ending::Waiting(w) => {
                    waiting = Some(w.clone());
                    ending = Some(Ending::Waiting(w));
                }
                other => {
                    ending = Some(other);
                    break;
                }
            }
        }
        Ok(Transcript {
            flow: name.to_owned(),
            revision: record.revision,
            transcript: lines,
            ending,
            attributes,
            vars,
            visited,
        })
    }

    /// What a flow sees of a scripted message, classified as the pipeline classifies a
    /// real one.
    async fn classified(&self, tenant: &str, text: &str) -> (Facts, Option<String>) {
        let annotations = match self.nlu.classify(tenant, text, 1).await {
            Ok(c) => serde_json::to_value(&c).ok(),
            Err(e) => {
                tracing::warn!(tenant, error = %e, "classification failed; the flow sees the text only");
                None
            }
        };
        facts_of(text, annotations.as_ref())
    }
}

/// What a flow sees of a message, from its annotations (the NLU's classification as the
/// inbound pipeline stores it), and the message's language.
pub fn facts_of(text: &str, annotations: Option<&serde_json::Value>) -> (Facts, Option<String>) {
    let get = |path: &[&str]| {
        path.iter()
            .try_fold(annotations?, |v, key| v.get(key))
            .cloned()
    };
    let text_at = |path: &[&str]| get(path).and_then(|v| v.as_str().map(str::to_owned));
    (
        Facts {
            text: text.to_owned(),
            intent: text_at(&["intent", "name"]),
            sentiment: text_at(&["sentiment", "label"]),
            urgent: get(&["urgency", "urgent"]).and_then(|v| v.as_bool()),
            answer: None,
            payload: None,
        },
        text_at(&["language"]),
    )
}

/// A simulation's script (`POST /v1/flows/{name}/simulate`).
#[derive(Debug, Clone, Default)]
pub struct Simulation {
    /// The customer's messages, in order; the first one starts the flow.
    pub inputs: Vec<String>,
    /// The contact's attributes at the start.
    pub attributes: Map<String, Value>,
    /// Answers for `http` nodes, by node name.
    pub mocks: BTreeMap<String, HttpMock>,
    /// The contact's time zone (for dates such as `demain`); UTC by default.
    pub timezone: Option<String>,
    /// The country national phone numbers in answers are read with.
    pub default_country: Option<phonenumber::country::Id>,
}

/// What a simulation answers.
#[derive(Debug, Clone, Serialize)]
pub struct Transcript {
    pub flow: String,
    pub revision: i64,
    pub transcript: Vec<TranscriptLine>,
    /// Where the flow stands after the last input (`waiting` at a question, `ended`,
    /// `handed_off`).
    pub ending: Option<Ending>,
    /// The contact's attributes as the flow would leave them.
    pub attributes: Map<String, Value>,
    pub vars: Map<String, Value>,
    pub visited: Vec<String>,
}

/// Today in `timezone` (an IANA name), or in UTC.
fn today_for(now: Timestamp, timezone: Option<&str>) -> jiff::civil::Date {
    let zone = timezone
        .and_then(|tz| jiff::tz::TimeZone::get(tz).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    now.to_zoned(zone).date()
}

fn handover_text(language: Option<&str>) -> &'static str {
    match language {
        Some("fr") => relais_nlu::assist::HANDOVER_TEXT_FR,
        _ => relais_nlu::assist::HANDOVER_TEXT_EN,
    }
}

/// The text of a content, for a conversation's list.
fn content_text(content: &relais_core::content::Content) -> Value {
    match &content.body {
        relais_core::content::Body::Text(t) => Value::String(t.clone()),
        _ => Value::Null,
    }
}
