//! The journey worker: claims the runs that are due (with a lease, as the dispatcher claims
//! the outbox), takes each through its steps until it has to wait or ends, and writes its
//! new position. [`JourneyWorker::run_once`] is one round that tests call with a manual
//! clock; [`JourneyWorker::run_forever`] only decides when to call it again.

use super::engagement::engaged;
use super::{contact_zone, dates, lookup, send_request};
use crate::send::{AcceptError, Acceptor, Idempotency};
use crate::settings::frequency_cap_of;
use jiff::{SignedDuration, Timestamp};
use relais_core::clock::Clock;
use relais_core::consent::Purpose;
use relais_core::contact::Contact;
use relais_core::journey::when::next_time_of_day;
use relais_core::journey::{JourneyDefinition, MAX_STEPS_IN_A_ROW, Step, Wait};
use relais_store::{JourneyRun, RunPhase, RunProgress, RunState, SentStep, Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Runs one round claims at most: a round's steps are short (a send is one accept), and
/// the rest waits for the next round.
const RUNS_PER_ROUND: u32 = 200;
/// How long a claimed run is this worker's: far longer than a round, short enough that a
/// dead node's runs go on within minutes.
const LEASE: SignedDuration = SignedDuration::from_secs(120);
/// How often a `branch` looks again for engagement before its deadline: a read an hour
/// before the deadline is acted on within five minutes, not at the deadline.
pub const ENGAGEMENT_POLL: SignedDuration = SignedDuration::from_secs(300);
/// How long an idle worker sleeps between rounds: an event's first step (often a send
/// or a wait) starts within a second.
pub const IDLE_POLL: std::time::Duration = std::time::Duration::from_secs(1);
/// When a step could not be done because the store was unavailable, it is tried again
/// after this long.
const RETRY_AFTER: SignedDuration = SignedDuration::from_secs(60);

/// What a round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JourneyReport {
    pub claimed: usize,
    /// Messages accepted by `send` steps.
    pub sent: usize,
    /// Runs that ended (completed, exited, failed, canceled).
    pub ended: usize,
    /// Runs entered by date triggers.
    pub entered: usize,
}

pub struct JourneyWorker {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    acceptor: Acceptor,
    lease_owner: String,
    /// When date triggers were last looked for (in memory: a restart looks at once, and
    /// entry keys keep a date from firing twice).
    dates_scanned_at: Mutex<Option<Timestamp>>,
}

/// Where a run stands while the worker moves it.
struct Cursor {
    step: String,
    phase: RunPhase,
    steps_taken: i64,
    deadline: Option<Timestamp>,
    last_message_id: Option<String>,
    last_sent_at: Option<Timestamp>,
    /// The messages stored in this turn.
    sent: Vec<SentStep>,
}

/// How a run's turn ended.
enum Turn {
    Waits(Timestamp),
    Ends(RunState, String),
}

impl JourneyWorker {
    /// `acceptor` is the server's accept path: journeys' messages get the consent, quiet
    /// hours, routing and fallback checks of any API message.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        acceptor: Acceptor,
        lease_owner: impl Into<String>,
    ) -> Self {
        JourneyWorker {
            store,
            clock,
            acceptor,
            lease_owner: lease_owner.into(),
            dates_scanned_at: Mutex::new(None),
        }
    }

    /// One round: date and segment-entry triggers (at most every [`dates::SCAN_EVERY`]),
    /// then the due runs.
    pub async fn run_once(&self) -> Result<JourneyReport, StoreError> {
        let now = self.clock.now();
        let mut report = JourneyReport::default();
        let scan_due = {
            let last = self
                .dates_scanned_at
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            last.is_none_or(|at| now.duration_since(at) >= dates::SCAN_EVERY)
        };
        if scan_due {
            report.entered = dates::enter_due_dates(&*self.store, now).await?
                + dates::enter_segment_entries(&*self.store, now).await?;
            *self
                .dates_scanned_at
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(now);
        }
        let runs = self
            .store
            .claim_due_runs(now, RUNS_PER_ROUND, &self.lease_owner, LEASE)
            .await?;
        report.claimed = runs.len();
        let mut journeys: HashMap<(String, String), Option<JourneyDefinition>> = HashMap::new();
        for run in runs {
            let key = (run.tenant_id.clone(), run.journey.clone());
            if !journeys.contains_key(&key) {
                let definition = self
                    .store
                    .journey(&run.tenant_id, &run.journey)
                    .await?
                    .and_then(|r| JourneyDefinition::parse(&r.definition).ok());
                journeys.insert(key.clone(), definition);
            }
            let definition = journeys.get(&key).and_then(Option::as_ref);
            let (progress, sent) = self.turn(&run, definition, now).await;
            report.sent += sent;
            if progress.state != RunState::Active {
                report.ended += 1;
            }
            self.store
                .advance_run(&run.id, &self.lease_owner, &progress)
                .await?;
        }
        Ok(report)
    }

    /// Rounds until the task is dropped: at once after a round that had work, else after
    /// `idle` (runs come due by the clock; an event's new run waits at most that long).
    pub async fn run_forever(self, idle: std::time::Duration) {
        loop {
            let busy = match self.run_once().await {
                Ok(report) => report.claimed > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "journey round failed");
                    false
                }
            };
            if !busy {
                tokio::time::sleep(idle).await;
            }
        }
    }

    /// Takes `run` through its steps; its new position and the messages it sent.
    async fn turn(
        &self,
        run: &JourneyRun,
        definition: Option<&JourneyDefinition>,
        now: Timestamp,
    ) -> (RunProgress, usize) {
        let mut cursor = Cursor {
            step: run.step.clone(),
            phase: run.phase,
            steps_taken: run.steps_taken,
            deadline: run.deadline,
            last_message_id: run.last_message_id.clone(),
            last_sent_at: run.last_sent_at,
            sent: Vec::new(),
        };
        let mut contact: Option<Contact> = None;
        let turn = match definition {
            None => Turn::Ends(RunState::Canceled, "the journey was deleted or no longer parses".into()),
            Some(journey) => self
                .walk(run, journey, &mut cursor, &mut contact, now)
                .await
                .unwrap_or_else(|e| match e {
                    // The contact was deleted (or erased) while the run waited.
                    StoreError::NotFound(what) => {
                        Turn::Ends(RunState::Canceled, format!("{what} no longer exists"))
                    }
                    e => {
                        tracing::warn!(run = %run.id, error = %e, "journey step failed; tried again later");
                        Turn::Waits(now.checked_add(RETRY_AFTER).unwrap_or(now))
                    }
                }),
        };
        let (state, due_at, ended_reason) = match turn {
            Turn::Waits(at) => (RunState::Active, Some(at), None),
            Turn::Ends(state, why) => (state, None, Some(why)),
        };
        let progress = RunProgress {
            step: cursor.step,
            phase: cursor.phase,
            steps_taken: cursor.steps_taken,
            state,
            due_at,
            deadline: cursor.deadline,
            last_message_id: cursor.last_message_id,
            last_sent_at: cursor.last_sent_at,
            ended_reason,
            at: now,
            sent: cursor.sent,
        };
        let sent = progress.sent.len();
        (progress, sent)
    }

    async fn walk(
        &self,
        run: &JourneyRun,
        journey: &JourneyDefinition,
        c: &mut Cursor,
        contact: &mut Option<Contact>,
        now: Timestamp,
    ) -> Result<Turn, StoreError> {
        // A step counts its wait from when the run reached it, not from when a worker got
        // to it: a run that came due while the workers were down waits no longer for it.
        let mut reached_at = run.due_at.unwrap_or(now).min(now);
        for _ in 0..MAX_STEPS_IN_A_ROW {
            let Some(step) = journey.steps.get(&c.step) else {
                return Ok(Turn::Ends(
                    RunState::Failed,
                    format!("step `{}` is no longer in the journey", c.step),
                ));
            };
            let next: Option<&String> = match step {
                Step::Wait { wait, next } => {
                    if c.phase == RunPhase::Enter {
                        let until = match wait {
                            Wait::For(d) => reached_at.checked_add(*d).unwrap_or(now),
                            Wait::Until(at) => {
                                let person = self.contact(run, contact).await?;
                                next_time_of_day(now, *at, &contact_zone(person))
                            }
                        };
                        if until > now {
                            c.phase = RunPhase::Wait;
                            return Ok(Turn::Waits(until));
                        }
                    }
                    next.as_ref()
                }
                Step::Condition {
                    condition,
                    then,
                    otherwise,
                } => {
                    let person = self.contact(run, contact).await?;
                    if condition.holds(&lookup(person, &run.event_properties)) {
                        then.as_ref()
                    } else {
                        otherwise.as_ref()
                    }
                }
                Step::Send { message, next } => {
                    match self.send(run, message, c.steps_taken).await {
                        Ok(Some(id)) => {
                            c.sent.push(SentStep {
                                step: c.step.clone(),
                                message_id: id.clone(),
                            });
                            c.last_message_id = Some(id);
                            c.last_sent_at = Some(now);
                        }
                        // Held back by the frequency cap: a branch on engagement that
                        // follows has no message to look at and takes `no`.
                        Ok(None) => {
                            c.last_message_id = None;
                            c.last_sent_at = None;
                        }
                        Err(AcceptError::Store(e)) => return Err(e),
                        Err(refused) => {
                            return Ok(Turn::Ends(
                                RunState::Failed,
                                format!("step `{}`: the message was refused: {refused}", c.step),
                            ));
                        }
                    }
                    next.as_ref()
                }
                Step::Branch {
                    on,
                    within,
                    yes,
                    no,
                } => {
                    let took = match (c.last_message_id.clone(), c.last_sent_at) {
                        (Some(message_id), Some(sent_at)) => {
                            let deadline = sent_at.checked_add(*within).unwrap_or(sent_at);
                            // A worker running late still only counts engagement within
                            // the window.
                            let looked_until = now.min(deadline);
                            let store = &*self.store;
                            if engaged(
                                store,
                                &run.tenant_id,
                                &run.contact_id,
                                *on,
                                &message_id,
                                sent_at,
                                looked_until,
                            )
                            .await?
                            {
                                yes.as_ref()
                            } else if now >= deadline {
                                no.as_ref()
                            } else {
                                c.phase = RunPhase::Wait;
                                c.deadline = Some(deadline);
                                let again = now.checked_add(ENGAGEMENT_POLL).unwrap_or(deadline);
                                return Ok(Turn::Waits(again.min(deadline)));
                            }
                        }
                        // Nothing was sent yet on this path: nothing to engage with.
                        _ => no.as_ref(),
                    };
                    c.deadline = None;
                    took
                }
                Step::Exit => {
                    return Ok(Turn::Ends(
                        RunState::Exited,
                        format!("exit step `{}`", c.step),
                    ));
                }
            };
            let Some(next) = next else {
                return Ok(Turn::Ends(
                    RunState::Completed,
                    format!("step `{}` was the last", c.step),
                ));
            };
            c.step = next.clone();
            c.phase = RunPhase::Enter;
            c.steps_taken += 1;
            reached_at = now;
        }
        Ok(Turn::Ends(
            RunState::Failed,
            format!("{MAX_STEPS_IN_A_ROW} steps in a row without a wait: the journey loops"),
        ))
    }

    async fn contact<'a>(
        &self,
        run: &JourneyRun,
        cached: &'a mut Option<Contact>,
    ) -> Result<&'a Contact, StoreError> {
        if cached.is_none() {
            let found = self
                .store
                .contact(&run.tenant_id, &run.contact_id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("contact {}", run.contact_id)))?;
            *cached = Some(found);
        }
        cached
            .as_ref()
            .ok_or_else(|| StoreError::NotFound(format!("contact {}", run.contact_id)))
    }

    /// Accepts the step's message for the run's contact; its id, or `None` when the
    /// tenant's frequency cap holds it back (nothing is sent and the run goes on). The key
    /// is the run and its step count, so the same step retried (a crash between the accept
    /// and the run's write) finds its message instead of sending another.
    async fn send(
        &self,
        run: &JourneyRun,
        message: &serde_json::Map<String, serde_json::Value>,
        steps_taken: i64,
    ) -> Result<Option<String>, AcceptError> {
        let (request, body) = send_request(message, &run.contact_id, &run.event_properties)
            .map_err(|(pointer, detail)| AcceptError::Invalid { pointer, detail })?;
        let key = format!("journey:{}:{steps_taken}", run.id);
        if let Some(stored) = self
            .store
            .message_by_idempotency_key(&run.tenant_id, &key)
            .await?
        {
            return Ok(Some(stored.id));
        }
        let purpose = request.purpose.clone().unwrap_or(Purpose::Transactional);
        if let Some(cap) = frequency_cap_of(&*self.store, &run.tenant_id)
            .await?
            .filter(|cap| cap.covers(&purpose))
        {
            let now = self.clock.now();
            let since = now.checked_sub(cap.per().duration()).unwrap_or(now);
            let contact = [run.contact_id.clone()];
            let counts = self
                .store
                .purpose_counts(&run.tenant_id, &contact, cap.purpose(), since, None)
                .await?;
            if counts.get(&run.contact_id).copied().unwrap_or(0) >= i64::from(cap.max()) {
                tracing::info!(run = %run.id, journey = %run.journey, "frequency cap reached: the step's message is not sent");
                return Ok(None);
            }
        }
        let idempotency = Idempotency::new(&key, &body).map_err(|e| AcceptError::Invalid {
            pointer: String::new(),
            detail: e.to_string(),
        })?;
        Ok(Some(
            self.acceptor
                .accept(&run.tenant_id, request, Some(idempotency))
                .await?
                .id,
        ))
    }
}
