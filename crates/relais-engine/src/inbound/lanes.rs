//! Group commit of the inbound pipeline. Messages queue in one of [`LANES`] lanes, chosen
//! by their sender, and each lane takes what is queued (up to [`MAX_GROUP`] messages) as
//! one group while the next group queues: a customer's messages therefore go through in
//! the order they came, one group after the other, and the store sees one operation per
//! step for the whole group, not one per message. Lanes run side by side, so a group
//! waiting on something slow (a flow's call to a CRM) holds up only its own lane.

use super::{Core, InboundError, NewInbound, Received};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Groups in progress at once, at most.
pub(super) const LANES: usize = 4;

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
        let (messages, replies): (Vec<NewInbound>, Vec<_>) =
            group.into_iter().map(|q| (q.message, q.reply)).unzip();
        let answers = core.receive_group(messages).await;
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
    }
}
