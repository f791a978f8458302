//! Group commit of the accept path. Every request goes through one queue; a task takes
//! what is queued (up to [`MAX_GROUP_MESSAGES`] messages) and accepts it as one group:
//! one look-up per kind of store read and one transaction for all their messages, while the
//! next group queues. One client sending one message per request then costs the store
//! what a batch costs, instead of a write transaction (and its wake-ups) per message.

use super::{
    AcceptContext, AcceptError, Accepted, Answer, BatchAnswer, Idempotency, Job, SendRequest, Work,
    accept_jobs,
};
use crate::handoff::Handoff;
use relais_core::channel::ChannelKind;
use relais_core::clock::Clock;
use relais_core::contact::AddressRules;
use relais_store::{Store, StoreError};
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// A group stops taking requests once it holds this many messages: a batch of 10,000
/// makes a group of its own.
const MAX_GROUP_MESSAGES: usize = 1000;

/// Groups being accepted at once: one is prepared (store reads, rendering) while the
/// other is written.
const GROUPS_IN_FLIGHT: usize = 2;

/// Requests waiting for a group at most; past it callers wait (back-pressure).
const QUEUE: usize = 4096;

/// The accept path of a server: cheap to clone (the clones share the queue).
#[derive(Clone)]
pub struct Acceptor {
    tx: mpsc::Sender<Queued>,
}

struct Queued {
    job: Job,
    reply: oneshot::Sender<Result<Answer, AcceptError>>,
}

impl Queued {
    fn messages(&self) -> usize {
        match &self.job.work {
            Work::One { .. } => 1,
            Work::Batch { requests, .. } => requests.len(),
        }
    }
}

/// What every group is accepted with.
struct Settings {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rules: AddressRules,
    /// The kinds the dispatcher sends on without a configured channel (the sandbox): where
    /// requests that name no channel go, and the only kinds accepted with no channel of
    /// their kind configured.
    configured: Vec<ChannelKind>,
    handoff: Option<Handoff>,
    links: Option<crate::tracked_links::LinkTracking>,
}

impl Acceptor {
    /// Starts the group task; it ends when the last clone is dropped.
    pub fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        rules: AddressRules,
        configured: Vec<ChannelKind>,
        handoff: Option<Handoff>,
    ) -> Acceptor {
        Self::start_with_links(store, clock, rules, configured, handoff, None)
    }

    /// [`Acceptor::start`] rewriting the links of messages to tracked short links
    /// (`links`: the server's public base), unless a request says `track_links: false`.
    pub fn start_with_links(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        rules: AddressRules,
        configured: Vec<ChannelKind>,
        handoff: Option<Handoff>,
        links: Option<crate::tracked_links::LinkTracking>,
    ) -> Acceptor {
        let (tx, rx) = mpsc::channel(QUEUE);
        let settings = Arc::new(Settings {
            store,
            clock,
            rules,
            configured,
            handoff,
            links,
        });
        tokio::spawn(run(rx, settings));
        Acceptor { tx }
    }

    /// Accepts one message (see [`super::accept`]).
    pub async fn accept(
        &self,
        tenant: &str,
        request: SendRequest,
        idempotency: Option<Idempotency>,
    ) -> Result<Accepted, AcceptError> {
        let work = Work::One {
            request: Box::new(request),
            idempotency,
        };
        match self.submit(tenant, work).await? {
            Answer::One(accepted) => Ok(accepted),
            Answer::Batch(_) => Err(stopped()),
        }
    }

    /// Accepts a batch (see [`super::accept_batch_keyed`]).
    pub async fn accept_batch(
        &self,
        tenant: &str,
        requests: Vec<Box<serde_json::value::RawValue>>,
        idempotency: Option<Idempotency>,
    ) -> Result<BatchAnswer, AcceptError> {
        let work = Work::Batch {
            requests,
            idempotency,
        };
        match self.submit(tenant, work).await? {
            Answer::Batch(answer) => Ok(answer),
            Answer::One(_) => Err(stopped()),
        }
    }

    async fn submit(&self, tenant: &str, work: Work) -> Result<Answer, AcceptError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            tenant: tenant.to_owned(),
            work,
        };
        self.tx
            .send(Queued { job, reply })
            .await
            .map_err(|_| stopped())?;
        // Once queued, the request is accepted (or refused) whether or not this caller
        // is still there to hear it.
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> AcceptError {
    AcceptError::Store(StoreError::Unavailable(
        "the server is stopping and accepts no more messages".into(),
    ))
}

async fn run(mut rx: mpsc::Receiver<Queued>, settings: Arc<Settings>) {
    let groups = Arc::new(Semaphore::new(GROUPS_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(slot) = groups.clone().acquire_owned().await else {
            return;
        };
        let mut size = first.messages();
        let mut group = vec![first];
        while size < MAX_GROUP_MESSAGES {
            match rx.try_recv() {
                Ok(next) => {
                    size += next.messages();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let settings = settings.clone();
        tokio::spawn(async move {
            let (jobs, replies): (Vec<Job>, Vec<_>) =
                group.into_iter().map(|q| (q.job, q.reply)).unzip();
            let ctx = AcceptContext {
                store: &settings.store,
                rules: settings.rules,
                now: settings.clock.now(),
                configured: &settings.configured,
                built_in: &settings.configured,
                handoff: settings.handoff.as_ref(),
                links: settings.links.as_ref(),
            };
            let answers = accept_jobs(&ctx, jobs).await;
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(answer);
            }
            drop(slot);
        });
    }
}
