//! Group commit of the inbound pipeline. Messages queue in one of [`LANES`] lanes, chosen
//! by their sender, and each lane takes what is queued (up to [`MAX_GROUP`] messages) as
//! one group while the next group queues: a customer's messages therefore go through in
//! the order they came, one group after the other, and the store sees one operation per
//! step for the whole group, not one per message. Lanes run side by side, so a group
//! waiting on its store holds up only its own lane. The messages of a tenant whose flows
//! call out go through on their own instead (see [`alone_if_calling_out`]).

use super::{Core, InboundError, NewInbound, Received, flow_error};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Groups in progress at once, at most.
pub(super) const LANES: usize = 2;

/// A group stops taking messages once it holds this many.
pub(super) const MAX_GROUP: usize = 256;

/// Messages waiting in a lane at most; past it callers wait (back-pressure).
const QUEUE: usize = 1024;

struct Queued {
    message: NewInbound,
    reply: oneshot::Sender<Result<Received, InboundError>>,
}

/// The lanes of a pipeline; their tasks end when this is dropped.
pub(super) struct Lanes {
    lanes: Vec<mpsc::Sender<Queued>>,
}

impl Lanes {
    pub(super) fn start(core: Arc<Core>) -> Lanes {
        let lanes = (0..LANES)
            .map(|_| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(run(rx, core.clone()));
                tx
            })
            .collect();
        Lanes { lanes }
    }

    pub(super) async fn receive(&self, message: NewInbound) -> Result<Received, InboundError> {
        let lane = &self.lanes[lane_of(&message)];
        let (reply, answer) = oneshot::channel();
        lane.send(Queued { message, reply })
            .await
            .map_err(|_| stopped())?;
        // Once queued, the message goes through whether or not this caller still waits.
        answer.await.map_err(|_| stopped())?
    }
}

/// The lane of a message's sender (the same for all its messages).
fn lane_of(message: &NewInbound) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (&message.tenant_id, message.channel, message.from.trim()).hash(&mut hasher);
    (hasher.finish() % LANES as u64) as usize
}

fn stopped() -> InboundError {
    InboundError::Store(relais_store::StoreError::Unavailable(
        "the inbound pipeline is stopping".into(),
    ))
}

async fn run(mut rx: mpsc::Receiver<Queued>, core: Arc<Core>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let group = alone_if_calling_out(&core, group).await;
        let (messages, replies): (Vec<NewInbound>, Vec<_>) =
            group.into_iter().map(|q| (q.message, q.reply)).unzip();
        let answers = core.receive_group(messages).await;
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
    }
}

/// Sends the messages of tenants whose flows call out (an `http` or `answer` node, which
/// may wait seconds for a CRM or a language model) through on their own, side by side,
/// so that a slow endpoint holds up no other customer; the rest of the group goes on.
async fn alone_if_calling_out(core: &Arc<Core>, group: Vec<Queued>) -> Vec<Queued> {
    let mut calls_out: HashMap<String, bool> = HashMap::new();
    let mut rest = Vec::with_capacity(group.len());
    for queued in group {
        let tenant = queued.message.tenant_id.clone();
        let alone = match calls_out.get(&tenant) {
            Some(known) => *known,
            None => match core.flows.call_out(&tenant).await {
                Ok(known) => *calls_out.entry(tenant).or_insert(known),
                Err(e) => {
                    let _ = queued.reply.send(Err(flow_error(e)));
                    continue;
                }
            },
        };
        if !alone {
            rest.push(queued);
            continue;
        }
        let core = core.clone();
        tokio::spawn(async move {
            let answer = core
                .receive_group(vec![queued.message])
                .await
                .pop()
                .unwrap_or_else(|| Err(stopped()));
            let _ = queued.reply.send(answer);
        });
    }
    rest
}
