//! One channel's lane in the running dispatcher: a bounded queue of claimed messages, a
//! readiness gate and a window.
//!
//! - The claimer puts into a lane only what it has room for ([`Lane::room`]), and nothing
//!   while the channel is not ready: a channel without a live connection leaves its
//!   messages in the outbox, without spending attempts.
//! - At most the adapter's `max_in_flight` messages are between "given to the adapter" and "outcome
//!   written" (the window, see `settler`): a slow or throttled channel fills its own window
//!   and holds up no other lane.
//! - On shutdown a lane starts nothing new, waits a bounded time for the answers of what it
//!   sent, and gives back the rest.

use super::decide::{PendingSend, expired};
use super::settler::{SettleQueue, Settled};
use super::{Dispatcher, RoundReport};
use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use relais_channels::adapter::{ProviderAck, SendError};
use relais_core::retry::ErrorClass;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// How often a lane whose channel is not ready looks again.
const NOT_READY_POLL: Duration = Duration::from_millis(100);

pub(super) struct Lane {
    pub(super) key: String,
    queue: Mutex<VecDeque<PendingSend>>,
    window: Arc<Semaphore>,
    /// Messages queued or being sent at most.
    capacity: usize,
    /// Sends given to the adapter and not answered yet.
    sending: AtomicUsize,
    ready: AtomicBool,
    wake: tokio::sync::Notify,
    /// When the last claim for this lane found nothing (the outbox is then looked at less
    /// often while hand-offs keep the lane busy).
    pub(super) found_nothing_at: Mutex<Option<jiff::Timestamp>>,
    /// The last claim took all it could: more may wait in the outbox.
    pub(super) more_in_outbox: AtomicBool,
}

impl Lane {
    pub(super) fn new(key: &str, limit: usize, batch: usize) -> Lane {
        let limit = limit.max(1);
        Lane {
            key: key.to_owned(),
            queue: Mutex::new(VecDeque::new()),
            window: Arc::new(Semaphore::new(limit)),
            capacity: limit + batch.max(1),
            sending: AtomicUsize::new(0),
            ready: AtomicBool::new(true),
            wake: tokio::sync::Notify::new(),
            found_nothing_at: Mutex::new(None),
            more_in_outbox: AtomicBool::new(false),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<PendingSend>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many more messages the claimer may give this lane now.
    pub(super) fn room(&self) -> usize {
        let queued = self.queue().len();
        self.capacity
            .saturating_sub(queued + self.sending.load(Ordering::Relaxed))
    }

    pub(super) fn push(&self, send: PendingSend) {
        self.queue().push_back(send);
        self.wake.notify_one();
    }

    /// Everything queued and not sent (shutdown).
    fn drain(&self) -> Vec<PendingSend> {
        self.queue().drain(..).collect()
    }

    /// Waits until the lane has a message, its channel is ready and its window has room
    /// (the window slot), or, while its channel is not ready, another channel of its kind
    /// can take its messages. Changes nothing a cancellation could lose.
    async fn sendable(&self, dispatcher: &Dispatcher) -> Sendable {
        loop {
            let woken = self.wake.notified();
            if self.queue().is_empty() {
                woken.await;
                continue;
            }
            let ready = dispatcher
                .adapter_of(&self.key)
                .map_or(true, |(_, adapter, _)| adapter.is_ready());
            self.set_ready(dispatcher, ready);
            if !ready && dispatcher.may_fail_over(&self.key) {
                return Sendable::FailOver;
            }
            if !ready {
                tokio::time::sleep(NOT_READY_POLL).await;
                continue;
            }
            match self.window.clone().acquire_owned().await {
                Ok(permit) => return Sendable::Send(permit),
                // The window is never closed; wait as if it were full.
                Err(_) => std::future::pending::<()>().await,
            }
        }
    }

    fn set_ready(&self, dispatcher: &Dispatcher, ready: bool) {
        if self.ready.swap(ready, Ordering::Relaxed) != ready {
            dispatcher
                .registry
                .handoff()
                .set_lane_open(&self.key, ready);
            if ready {
                tracing::info!(lane = %self.key, "channel ready: sending again");
                dispatcher.room.notify_one();
            } else {
                tracing::warn!(lane = %self.key, "channel not ready (no live connection): its messages wait in the outbox");
            }
        }
    }
}

/// What the lane does with its next message.
enum Sendable {
    /// Send it, in this window slot.
    Send(OwnedSemaphorePermit),
    /// Its channel cannot send: hand it to another channel of its kind (or back to the
    /// outbox when it has none).
    FailOver,
}

type Answer = std::thread::Result<Result<ProviderAck, SendError>>;

/// Runs a lane until `stop`: sends what the claimer queues, hands each outcome with its
/// window slot to the writer. Returns the ids of the messages it holds and did not send
/// (queued, or sent and unanswered when the grace ran out), whose leases the caller gives
/// back.
pub(super) async fn run(
    dispatcher: Arc<Dispatcher>,
    lane: Arc<Lane>,
    settle: SettleQueue,
    stop: CancellationToken,
    grace: Duration,
) -> Vec<String> {
    let mut sends = FuturesUnordered::new();
    let mut unanswered: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            biased;
            Some((send, permit, answer)) = sends.next(), if !sends.is_empty() => {
                let (send, permit, answer): (PendingSend, OwnedSemaphorePermit, Answer) = (send, permit, answer);
                lane.sending.fetch_sub(1, Ordering::Relaxed);
                unanswered.remove(send.id());
                dispatcher.room.notify_one();
                on_answer(&dispatcher, &lane, &settle, send, permit, answer).await;
            }
            _ = stop.cancelled(), if deadline.is_none() => {
                deadline = Some(tokio::time::Instant::now() + grace);
            }
            next = lane.sendable(&dispatcher), if deadline.is_none() => {
                let Some(send) = lane.queue().pop_front() else {
                    continue;
                };
                let permit = match next {
                    Sendable::Send(permit) => permit,
                    Sendable::FailOver => {
                        settle_unsent(&dispatcher, &settle, send).await;
                        continue;
                    }
                };
                if let Some(send) = check_before_sending(&dispatcher, &settle, send) {
                    lane.sending.fetch_add(1, Ordering::Relaxed);
                    unanswered.insert(send.id().to_owned());
                    sends.push(send_one(&dispatcher, send, permit));
                }
            }
            _ = async { if let Some(d) = deadline { tokio::time::sleep_until(d).await } }, if deadline.is_some() => {
                break;
            }
        }
        if deadline.is_some() && sends.is_empty() {
            break;
        }
    }
    let mut left: Vec<String> = lane.drain().iter().map(|s| s.id().to_owned()).collect();
    if !sends.is_empty() {
        tracing::warn!(lane = %lane.key, unanswered = sends.len(), "stopping with sends unanswered; the provider may have them");
    }
    // Dropping the futures abandons their answers: the provider may or may not have the
    // messages, as after a crash.
    drop(sends);
    left.extend(unanswered);
    left
}

/// A queued message whose channel cannot send: settled as not sent, which moves it to
/// another channel of its kind, or back to the outbox to wait for its own.
async fn settle_unsent(dispatcher: &Dispatcher, settle: &SettleQueue, send: PendingSend) {
    let now = dispatcher.clock.now();
    let mut report = RoundReport::default();
    match dispatcher
        .conclude(&send, Err(super::failover::unavailable()), now, &mut report)
        .await
    {
        Ok(settlement) => settle.push(Settled {
            id: send.id().to_owned(),
            settlement,
            permit: None,
        }),
        Err(e) => {
            tracing::error!(error = %e, message = %send.id(), "cannot move a message off a channel that cannot send");
            dispatcher.held.release([send.id()]);
        }
    }
}

/// A message's last checks before it goes: its lease still has time (or it is left to
/// whoever takes it over), its validity has not run out.
fn check_before_sending(
    dispatcher: &Dispatcher,
    settle: &SettleQueue,
    send: PendingSend,
) -> Option<PendingSend> {
    let now = dispatcher.clock.now();
    if !dispatcher
        .held
        .valid(send.id(), now, dispatcher.config.lease_for / 4)
    {
        tracing::warn!(message = %send.id(), "lease about to run out before sending; left to the next claim");
        dispatcher.held.release([send.id()]);
        return None;
    }
    if send.item.message.expires_at.is_some_and(|end| now >= end) {
        settle.push(Settled {
            id: send.id().to_owned(),
            settlement: expired(now),
            permit: None,
        });
        return None;
    }
    Some(send)
}

fn send_one(
    dispatcher: &Dispatcher,
    mut send: PendingSend,
    permit: OwnedSemaphorePermit,
) -> impl std::future::Future<Output = (PendingSend, OwnedSemaphorePermit, Answer)> + use<> {
    dispatcher.stamp_sending(&mut send);
    async move {
        let answer = match &send.target {
            Ok((adapter, outbound)) => {
                AssertUnwindSafe(adapter.send(outbound))
                    .catch_unwind()
                    .await
            }
            Err(error) => Ok(Err(error.clone())),
        };
        (send, permit, answer)
    }
}

async fn on_answer(
    dispatcher: &Dispatcher,
    lane: &Lane,
    settle: &SettleQueue,
    mut send: PendingSend,
    permit: OwnedSemaphorePermit,
    answer: Answer,
) {
    let outcome = match answer {
        Ok(outcome) => outcome,
        Err(_) => {
            // An adapter that panics loses its answer: the lease runs out and the message
            // is tried again, so nothing is lost.
            tracing::error!(lane = %lane.key, message = %send.id(), "a channel adapter's send panicked");
            dispatcher.held.release([send.id()]);
            return;
        }
    };
    let fails_over = match &outcome {
        Err(e) if e.class == ErrorClass::NotSent => dispatcher
            .fail_over_target(&send.item, send.chain.as_ref())
            .await
            .ok()
            .flatten()
            .is_some(),
        _ => false,
    };
    if let Err(e) = &outcome
        && e.class == ErrorClass::NotSent
        && !fails_over
    {
        // It never left: back to the head of the queue, no attempt spent, until the
        // channel is ready again.
        drop(permit);
        send.sending = None;
        lane.set_ready(dispatcher, false);
        lane.queue().push_front(send);
        return;
    }
    let now = dispatcher.clock.now();
    let mut report = RoundReport::default();
    match dispatcher.conclude(&send, outcome, now, &mut report).await {
        Ok(settlement) => settle.push(Settled {
            id: send.id().to_owned(),
            settlement,
            permit: Some(permit),
        }),
        Err(e) => {
            // Only a failure's fallback reads the store; without it the outcome cannot be
            // decided: the lease runs out and the attempt is made again.
            tracing::error!(error = %e, message = %send.id(), "cannot decide the outcome of a failed send");
            dispatcher.held.release([send.id()]);
        }
    }
}
