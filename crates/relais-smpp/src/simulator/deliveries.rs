//! What the simulated SMSC owes its ESMEs (receipts, MO messages), delivered as a real SMSC
//! does: at least once. A `deliver_sm` whose `deliver_sm_resp` is an error, is missing past
//! the deadline, or is lost with its bind, is delivered again after the redelivery delay, on
//! any receiving bind of the same `system_id`, until one answers `ESME_ROK`.
//!
//! One task keeps the owed messages by due time, queues the due ones to the sessions one
//! after the other and awaits their answers together (a `FuturesUnordered` of answers, no
//! task per message), so thousands can wait for their answers at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::SimStats;
use crate::pdu::ShortMessage;
use crate::server::{DeliverError, ServerHandle};

/// Deliveries waiting for their answer at once; past it owed messages wait their turn.
const MAX_IN_FLIGHT: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Receipt,
    Mo,
}

/// One message owed to the ESMEs of `principal`.
#[derive(Debug)]
pub(super) struct Owed {
    pub principal: String,
    pub message: ShortMessage,
    pub kind: Kind,
    /// Times it reached a session.
    pub sent: u32,
}

impl SimStats {
    fn counters_of(&self, kind: Kind) -> (&AtomicU64, &AtomicU64, &AtomicU64) {
        match kind {
            Kind::Receipt => (
                &self.receipts_sent,
                &self.receipts_redelivered,
                &self.receipts_acked,
            ),
            Kind::Mo => (&self.mo_sent, &self.mo_redelivered, &self.mo_acked),
        }
    }
}

/// Delivers what arrives on `rx` (each with its due time) until `stop`.
pub(super) async fn run(
    mut rx: mpsc::UnboundedReceiver<(Instant, Owed)>,
    server: ServerHandle<String>,
    stats: Arc<SimStats>,
    redelivery_delay: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut due: BTreeMap<(Instant, u64), Owed> = BTreeMap::new();
    let mut counter = 0u64;
    let mut in_flight = FuturesUnordered::new();
    loop {
        let now = Instant::now();
        // Queued to the sessions one after the other (waiting only when a session's queue
        // is full); their answers are awaited together below.
        while in_flight.len() < MAX_IN_FLIGHT {
            let Some(entry) = due.first_entry() else {
                break;
            };
            if entry.key().0 > now {
                break;
            }
            let owed = entry.remove();
            let queued = tokio::select! {
                _ = stop.changed() => return,
                q = server.deliver_queued(&owed.principal, owed.message.clone()) => q,
            };
            match queued {
                Ok(answer) => in_flight.push(async move {
                    let result = answer.await.unwrap_or(Err(DeliverError::SessionClosed));
                    (owed, result)
                }),
                Err(_) => {
                    // Nobody bound (or the session just closed): try again later.
                    counter += 1;
                    due.insert((now + redelivery_delay, counter), owed);
                }
            }
        }
        let next = if in_flight.len() < MAX_IN_FLIGHT {
            due.keys().next().map(|(at, _)| *at)
        } else {
            None
        };
        tokio::select! {
            _ = stop.changed() => return,
            item = rx.recv() => match item {
                Some((at, owed)) => {
                    counter += 1;
                    due.insert((at, counter), owed);
                    while let Ok((at, owed)) = rx.try_recv() {
                        counter += 1;
                        due.insert((at, counter), owed);
                    }
                }
                None => return,
            },
            Some((owed, result)) = in_flight.next(), if !in_flight.is_empty() => {
                settle(&stats, &mut due, &mut counter, redelivery_delay, owed, result);
                while let Some(Some((owed, result))) = in_flight.next().now_or_never() {
                    settle(&stats, &mut due, &mut counter, redelivery_delay, owed, result);
                }
            }
            _ = async {
                if let Some(at) = next {
                    tokio::time::sleep_until(at).await;
                }
            }, if next.is_some() => {}
        }
    }
}

/// Counts one answered delivery; what was not acknowledged is owed again later.
fn settle(
    stats: &SimStats,
    due: &mut BTreeMap<(Instant, u64), Owed>,
    counter: &mut u64,
    redelivery_delay: Duration,
    mut owed: Owed,
    result: Result<(), DeliverError>,
) {
    let (sent, redelivered, acked) = stats.counters_of(owed.kind);
    sent.fetch_add(1, Ordering::Relaxed);
    if owed.sent > 0 {
        redelivered.fetch_add(1, Ordering::Relaxed);
    }
    owed.sent += 1;
    match result {
        Ok(()) => {
            acked.fetch_add(1, Ordering::Relaxed);
        }
        Err(DeliverError::Invalid(e)) => {
            tracing::warn!(error = %e, "simulator: message cannot be delivered; dropped");
        }
        Err(_) => {
            *counter += 1;
            due.insert((Instant::now() + redelivery_delay, *counter), owed);
        }
    }
}
