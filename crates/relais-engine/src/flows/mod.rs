//! Bot flows at work: the tenant's flows stored and checked, the flow an inbound message
//! starts (by its entry rules), the bot's turn for each message of a conversation in the
//! `bot` state, and simulations that run a flow against scripted inputs without sending.
//!
//! A turn is idempotent: its answers are keyed by the inbound message (and their rank),
//! answers stored on the contact once per (message, attribute), and the session and the
//! conversation's state written together at the end with the message's id; a message run
//! again after a crash finds its turn taken, or takes it again sending nothing twice.

mod io;
pub mod run;

pub use io::{HttpMock, MAX_HTTP_ANSWER_BYTES, TranscriptLine};
pub use run::{Ending, HandoffReason, Run, Waiting};

use crate::nlu::NluService;
use crate::send::AcceptContext;
use crate::webhooks::Destinations;
use io::{LiveIo, SimulatedIo};
use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::clock::Clock;
use relais_core::conversation::ConversationState;
use relais_core::flow::{AnswerContext, EntryMatch, Facts, FlowDefinition, FlowErrors};
use relais_store::{
    Conversation, FlowRecord, FlowSession, FlowStep, InboundMessage, Store, StoreError,
};
use run::{FlowIoError, RunStart};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
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

    /// The bot's turn for `message`, in `conversation` (which is in the `bot` state):
    /// the flow it runs goes on, or `chosen` starts. `None` when the message's turn was
    /// already taken (a run again after a crash).
    pub async fn take_turn(
        &self,
        accept: AcceptContext<'_>,
        message: &InboundMessage,
        conversation: &Conversation,
        facts: Facts,
        language: Option<String>,
        chosen: Option<Chosen>,
    ) -> Result<Option<Turn>, FlowsError> {
        let store = &*self.store;
        let tenant = message.tenant_id.as_str();
        let session = store.flow_session(tenant, &conversation.id).await?;
        if session
            .as_ref()
            .is_some_and(|s| s.last_message_id == message.id)
        {
            return Ok(None);
        }
        let now = self.clock.now();
        let (name, revision, definition, waiting, vars, started_at) = match session {
            Some(s) => match self.current(tenant, &s.flow).await? {
                Some((revision, definition)) => {
                    let waiting = Waiting {
                        node: s.node,
                        attempts: s.attempts,
                    };
                    (
                        s.flow,
                        revision,
                        definition,
                        Some(waiting),
                        s.vars,
                        s.started_at,
                    )
                }
                None => {
                    let reason = HandoffReason::Broken(format!("flow `{}` was deleted", s.flow));
                    return self
                        .hand_off_without_flow(
                            accept,
                            message,
                            conversation,
                            &s.flow,
                            reason,
                            language,
                        )
                        .await
                        .map(Some);
                }
            },
            None => match chosen {
                Some(c) => (c.name, c.revision, c.definition, None, Map::new(), now),
                None => {
                    // In the `bot` state with no flow to run: a human answers.
                    let reason = HandoffReason::Broken("no flow takes this message".into());
                    return self
                        .hand_off_without_flow(accept, message, conversation, "", reason, None)
                        .await
                        .map(Some);
                }
            },
        };
        let contact = match message.contact_id.as_deref() {
            Some(id) => store.contact(tenant, id).await?,
            None => None,
        };
        let today = today_for(now, contact.as_ref().and_then(|c| c.timezone.as_deref()));
        let language = language.or_else(|| {
            contact
                .as_ref()
                .and_then(|c| c.locale.as_deref())
                .map(|l| l.chars().take(2).collect())
        });
        let mut io = LiveIo {
            accept,
            store,
            nlu: &self.nlu,
            http: &self.http,
            message,
            conversation,
            flow: &name,
            now,
            said: 0,
            last_said: None,
        };
        let run = run::run(
            RunStart {
                flow: &definition,
                waiting,
                vars,
                attributes: contact.map(|c| c.attributes).unwrap_or_default(),
                facts,
                language: language.clone(),
                answers: AnswerContext {
                    today,
                    default_country: accept.rules.default_country,
                },
            },
            &mut io,
        )
        .await?;
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
        let last_said = io.last_said.take();
        let state = self
            .finish_turn(
                message,
                conversation,
                &name,
                revision,
                started_at,
                &run,
                last_said,
                now,
            )
            .await?;
        Ok(Some(Turn {
            flow: name,
            run,
            state,
        }))
    }

    /// Writes what a run leaves: the session (or its end) and the conversation's state,
    /// together.
    #[allow(clippy::too_many_arguments)]
    async fn finish_turn(
        &self,
        message: &InboundMessage,
        conversation: &Conversation,
        flow: &str,
        revision: i64,
        started_at: Timestamp,
        run: &Run,
        last_said: Option<relais_core::content::Content>,
        now: Timestamp,
    ) -> Result<ConversationState, FlowsError> {
        let tenant = message.tenant_id.as_str();
        let (session, state, team) = match &run.ending {
            Ending::Waiting(w) => (
                Some(FlowSession {
                    tenant_id: tenant.to_owned(),
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
            Ending::HandedOff { team, .. } => (None, ConversationState::Pending, team.as_deref()),
        };
        let last_message = last_said.map(|content| {
            serde_json::json!({
                "direction": "out",
                "text": content_text(&content),
                "channel": message.channel,
                "at": now,
                "message_id": Value::Null,
            })
        });
        self.store
            .save_flow_step(&FlowStep {
                tenant_id: tenant,
                conversation_id: &conversation.id,
                session: session.as_ref(),
                state: (state != conversation.state).then_some(state),
                team,
                last_message: last_message.as_ref(),
                at: now,
            })
            .await?;
        Ok(state)
    }

    async fn hand_off_without_flow(
        &self,
        accept: AcceptContext<'_>,
        message: &InboundMessage,
        conversation: &Conversation,
        flow: &str,
        reason: HandoffReason,
        language: Option<String>,
    ) -> Result<Turn, FlowsError> {
        tracing::warn!(conversation = %conversation.id, ?reason, "a conversation in the bot state has no flow to run; handed to a human");
        let run = Run {
            ending: Ending::HandedOff { team: None, reason },
            vars: Map::new(),
            attributes: Map::new(),
            visited: Vec::new(),
        };
        let key = format!("relais:flow:{}:handover", message.id);
        let text = handover_text(language.as_deref());
        if let Err(e) =
            crate::replies::reply_once(accept, message, serde_json::json!({"text": text}), &key)
                .await
        {
            match e {
                crate::send::AcceptError::Store(e) => return Err(e.into()),
                refused => tracing::warn!(error = %refused, "the hand-over notice was refused"),
            }
        }
        let now = self.clock.now();
        let state = self
            .finish_turn(message, conversation, flow, 0, now, &run, None, now)
            .await?;
        Ok(Turn {
            flow: flow.to_owned(),
            run,
            state,
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
