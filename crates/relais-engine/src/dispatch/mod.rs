//! The dispatcher: takes due work from the outbox, sends it through each channel's adapter,
//! and records each attempt's outcome (acknowledged, retried, failed, expired, moved to the
//! next channel of the chain).
//!
//! - The outbox is the only queue. Work is claimed with a lease, per lane (a channel), only
//!   as much as the lane can start now; a heartbeat extends the leases of the work in hand,
//!   and a message is sent only while its lease has time left ([`held`]).
//! - Each channel has its own lane ([`lane`]): a slow, throttled or disconnected channel
//!   holds up no other, and a channel with no live connection leaves its messages in the
//!   outbox without spending attempts.
//! - A channel whose adapter gives a recipient limit (a messaging limit on distinct
//!   customers per moving window) sends business-initiated messages only while under it;
//!   the others wait in the outbox for a place ([`reach`]).
//! - Outcomes are written by one writer in group commits ([`settler`]); a lane's window
//!   slot is given back only once its outcome is durable, so a `kill -9` sends again at
//!   most a window of messages per channel.
//!
//! Time comes from the injected clock, and [`Dispatcher::run_once`] does one pass of the
//! same steps (claim, triage, send, settle), so tests drive the dispatcher without sleeping.

mod buckets;
mod decide;
mod failover;
mod gone;
mod held;
mod lane;
mod reach;
mod receipts;
mod registry;
mod runner;
mod settler;

pub use reach::MESSAGING_LIMIT;
pub use receipts::{
    apply_channel_receipt, apply_provider_receipt, apply_receipt_to, receipt_event,
};
pub use registry::{ChannelRegistry, ReceiptAck, ReceiptInbox};
pub use relais_channels::adapter::{
    ChannelAdapter, DEFAULT_IN_FLIGHT, OutboundMessage, ProviderAck, Receipt, RecipientLimit,
    SendError,
};
pub use runner::{DispatcherHandle, spawn_dispatcher, spawn_dispatcher_with};

use decide::{PendingSend, Triage};
use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use jiff::{SignedDuration, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;
use relais_core::channel::ChannelKind;
use relais_core::clock::Clock;
use relais_core::retry::RetryPolicy;
use relais_store::{MessageEvent, OutboxItem, Settlement, Store, StoreError, WATCH_LANE};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Names this node in leases; unique per process.
    pub lease_owner: String,
    /// How long a claim holds before another node may take the work over; the heartbeat
    /// extends it every quarter of it while the work is in hand.
    pub lease_for: SignedDuration,
    /// Rows claimed per lane and pass at most (and the queue a lane keeps beyond its
    /// window).
    pub batch: u32,
    /// Messages per second per channel kind, unless `rates` says otherwise.
    pub default_rate: f64,
    pub rates: HashMap<ChannelKind, f64>,
    /// Messages per second per sender (`from`) on each channel, unless `sender_rates`
    /// says otherwise; `None` leaves senders unpaced.
    pub sender_rate: Option<f64>,
    pub sender_rates: HashMap<String, f64>,
    pub retry: RetryPolicy,
    /// How long the background loop rests when a pass found nothing to do.
    pub idle: std::time::Duration,
    /// How long a stopping dispatcher waits for the answers of the sends in flight.
    pub shutdown_grace: std::time::Duration,
    /// How the `sim` channel answers.
    pub sim: crate::sim::SimConfig,
    /// A development aid: the `sim` channel also POSTs every send to this URL
    /// (`RELAIS_SIM_SINK_URL`), see [`crate::sim::SimAdapter::with_sink`].
    pub sim_sink_url: Option<String>,
    /// How long finished webhook deliveries stay in the log; `None`: forever.
    pub webhook_log_retention: Option<SignedDuration>,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            lease_owner: format!("node-{}", relais_core::ids::new_id()),
            lease_for: SignedDuration::from_secs(60),
            batch: 200,
            default_rate: 100.0,
            rates: HashMap::new(),
            sender_rate: None,
            sender_rates: HashMap::new(),
            retry: RetryPolicy::DEFAULT,
            idle: std::time::Duration::from_millis(200),
            shutdown_grace: runner::SHUTDOWN_GRACE,
            sim: crate::sim::SimConfig::default(),
            sim_sink_url: None,
            webhook_log_retention: Some(crate::webhooks::DEFAULT_LOG_RETENTION),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundReport {
    pub claimed: usize,
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    pub expired: usize,
    pub fallbacks: usize,
    /// Messages moved to another channel of their step's kind because theirs could not
    /// send.
    pub failovers: usize,
    pub throttled: usize,
    /// Business-initiated messages that wait for a place under their channel's messaging
    /// limit, no attempt spent.
    pub limited: usize,
    /// Messages that did not leave (their channel had no live connection) and wait, no
    /// attempt spent.
    pub held: usize,
    pub receipts: usize,
    /// Webhook delivery attempts.
    pub webhooks: usize,
}

impl RoundReport {
    fn add(&mut self, r: &RoundReport) {
        self.claimed += r.claimed;
        self.sent += r.sent;
        self.retried += r.retried;
        self.failed += r.failed;
        self.expired += r.expired;
        self.fallbacks += r.fallbacks;
        self.failovers += r.failovers;
        self.throttled += r.throttled;
        self.limited += r.limited;
        self.held += r.held;
        self.receipts += r.receipts;
        self.webhooks += r.webhooks;
    }
}

/// How long a dispatcher fed by hand-offs goes without looking at a lane's outbox once a
/// claim found nothing there: the longest a retry or a scheduled message waits for it.
const CLAIM_PAUSE: SignedDuration = SignedDuration::from_millis(100);

pub struct Dispatcher {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: DispatcherConfig,
    adapters: HashMap<ChannelKind, Arc<dyn ChannelAdapter>>,
    registry: ChannelRegistry,
    buckets: Mutex<buckets::Buckets>,
    rng: Mutex<StdRng>,
    webhooks: Option<crate::webhooks::WebhookWorker>,
    held: held::Held,
    /// When a claim of a lane last found nothing, for [`Dispatcher::run_once`].
    found_nothing_at: Mutex<HashMap<String, Timestamp>>,
    /// Rung when lanes have room again (a send was answered, a channel came back).
    room: tokio::sync::Notify,
    /// Rung after each group of outcomes is written (webhook deliveries may be due).
    settled: tokio::sync::Notify,
    /// Places under channels' messaging limits, checked and taken one at a time.
    places: reach::Places,
}

impl Dispatcher {
    /// A dispatcher with no adapter; add them with [`Dispatcher::with_adapter`].
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: DispatcherConfig) -> Self {
        Dispatcher {
            store,
            clock,
            config,
            adapters: HashMap::new(),
            registry: ChannelRegistry::default(),
            buckets: Mutex::new(buckets::Buckets::default()),
            rng: Mutex::new(StdRng::from_entropy()),
            webhooks: None,
            held: held::Held::default(),
            found_nothing_at: Mutex::new(HashMap::new()),
            room: tokio::sync::Notify::new(),
            settled: tokio::sync::Notify::new(),
            places: reach::Places::default(),
        }
    }

    /// Delivers the tenants' outgoing webhooks through `poster`.
    pub fn with_webhooks(mut self, poster: Arc<dyn crate::webhooks::WebhookPoster>) -> Self {
        self.webhooks = Some(
            crate::webhooks::WebhookWorker::new(
                self.store.clone(),
                self.clock.clone(),
                poster,
                RetryPolicy::WEBHOOKS,
                self.config.lease_owner.clone(),
            )
            .with_log_retention(self.config.webhook_log_retention),
        );
        self
    }

    /// Registers the adapter of its channel kind (replacing an earlier one).
    pub fn with_adapter(mut self, adapter: Arc<dyn ChannelAdapter>) -> Self {
        self.adapters.insert(adapter.kind(), adapter);
        self
    }

    /// Sends messages whose `channel` is a configured channel's id through its adapter.
    pub fn with_registry(mut self, registry: ChannelRegistry) -> Self {
        self.registry = registry;
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The lanes this dispatcher claims for: the kinds it has an adapter for and the
    /// configured channels.
    fn lane_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .adapters
            .keys()
            .map(|k| k.as_str().to_owned())
            .collect();
        keys.extend(self.registry.ids());
        keys.sort();
        keys.dedup();
        keys
    }

    /// Whether `lane`'s channel can send now (an unknown lane's messages are claimed, to
    /// fail with the reason).
    fn lane_ready(&self, lane: &str) -> bool {
        self.adapter_of(lane)
            .map_or(true, |(_, adapter, _)| adapter.is_ready())
    }

    /// How many of `lane`'s messages a pass may claim: the kind's tokens for a channel the
    /// dispatcher paces.
    fn lane_budget(&self, lane: &str, room: usize, now: Timestamp) -> usize {
        match self.adapter_of(lane) {
            Ok((kind, _, false)) => room.min(self.tokens_of(kind, now)),
            _ => room,
        }
    }

    /// Claims for one lane: what waits in its outbox since before its oldest hand-off,
    /// then its hand-offs, `max` in all. While hand-offs keep coming and the lane's last
    /// claim found nothing, its outbox is looked at every [`CLAIM_PAUSE`] only.
    async fn claim_for(
        &self,
        lane: &str,
        max: usize,
        now: Timestamp,
        found_nothing_at: &Mutex<Option<Timestamp>>,
        outbox: bool,
    ) -> Result<Vec<OutboxItem>, DispatchError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let handoff = self.registry.handoff();
        let head = handoff.head_due(lane);
        let last_empty = *found_nothing_at.lock().unwrap_or_else(|p| p.into_inner());
        let paused = !outbox
            || head.is_some() && last_empty.is_some_and(|at| now.duration_since(at) < CLAIM_PAUSE);
        let mut items = if paused {
            Vec::new()
        } else {
            let claimed = self
                .store
                .claim_lane(
                    lane,
                    now,
                    head.map_or(now, |h| h.min(now)),
                    u32::try_from(max).unwrap_or(u32::MAX),
                    &self.config.lease_owner,
                    self.config.lease_for,
                )
                .await?;
            *found_nothing_at.lock().unwrap_or_else(|p| p.into_inner()) =
                claimed.is_empty().then_some(now);
            claimed
        };
        let room = max.saturating_sub(items.len());
        items.extend(self.take_handoffs(lane, room, now));
        Ok(self.held.hold(items))
    }

    /// Up to `max` of `lane`'s hand-offs. One whose lease has less than half its time left
    /// is left instead: its lease runs out soon and a claim takes it then, so it is never
    /// sent under a lease about to pass to another node.
    fn take_handoffs(&self, lane: &str, max: usize, now: Timestamp) -> Vec<OutboxItem> {
        let half = self.config.lease_for / 2;
        self.registry
            .handoff()
            .take(lane, max)
            .into_iter()
            .filter(|item| item.lease_until.duration_since(now) >= half)
            .collect()
    }

    /// Claims the fallback timers and the work of lanes this dispatcher has no lane for.
    async fn claim_others(
        &self,
        max: usize,
        now: Timestamp,
        strays: bool,
    ) -> Result<Vec<OutboxItem>, DispatchError> {
        let limit = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let owner = &self.config.lease_owner;
        let mut items = self
            .store
            .claim_lane(
                WATCH_LANE,
                now,
                now,
                limit(max),
                owner,
                self.config.lease_for,
            )
            .await?;
        if strays && items.len() < max {
            let mut known = self.lane_keys();
            known.push(WATCH_LANE.to_owned());
            items.extend(
                self.store
                    .claim_strays(
                        &known,
                        now,
                        limit(max - items.len()),
                        owner,
                        self.config.lease_for,
                    )
                    .await?,
            );
        }
        Ok(self.held.hold(items))
    }

    /// Receipts the built-in adapters hold that are due by `now` (the sim's phones), as
    /// status changes to write.
    async fn due_receipts(&self, now: Timestamp) -> Vec<(String, MessageEvent)> {
        let mut receipts = Vec::new();
        for adapter in self.adapters.values() {
            for receipt in adapter.poll_receipts(now).await {
                let mut event = MessageEvent::new(receipt.status, receipt.at)
                    .channel(adapter.kind().as_str())
                    .reason("receipt");
                if let Some(detail) = receipt.detail {
                    event = event.detail(detail);
                }
                receipts.push((receipt.message_id, event));
            }
        }
        receipts
    }

    /// One pass, all of it before returning: claims due work of every ready lane (at most
    /// `batch` messages in all), sends it, writes the outcomes and the receipts that came
    /// in, in one transaction, then delivers due webhooks.
    pub async fn run_once(&self) -> Result<RoundReport, DispatchError> {
        let mut report = RoundReport::default();
        let now = self.clock.now();
        let mut receipts = self.due_receipts(now).await;
        let batch = usize::try_from(self.config.batch).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        for lane in self.lane_keys() {
            let ready = self.lane_ready(&lane);
            self.registry.handoff().set_lane_open(&lane, ready);
            if !ready && !self.may_fail_over(&lane) {
                continue;
            }
            let budget = self.lane_budget(&lane, batch.saturating_sub(items.len()), now);
            let pause = self.lane_pause(&lane);
            items.extend(self.claim_for(&lane, budget, now, &pause, true).await?);
            self.keep_lane_pause(&lane, &pause);
        }
        items.extend(
            self.claim_others(batch.saturating_sub(items.len()), now, true)
                .await?,
        );
        report.claimed = items.len();
        let mut settlements: Vec<(String, Settlement)> = Vec::with_capacity(items.len());
        let mut sends: Vec<PendingSend> = Vec::new();
        for item in items {
            match self.triage(item, &mut report).await? {
                Triage::Settle(id, s) => settlements.push((id, *s)),
                Triage::Send(send) => sends.push(*send),
            }
        }
        for send in &mut sends {
            self.stamp_sending(send);
        }
        let mut answers: Vec<Option<Result<ProviderAck, SendError>>> =
            sends.iter().map(|_| None).collect();
        let mut in_flight: FuturesUnordered<_> = sends
            .iter()
            .enumerate()
            .filter_map(|(index, send)| {
                let (adapter, outbound) = send.target.as_ref().ok()?;
                Some(async move {
                    let answer = AssertUnwindSafe(adapter.send(outbound))
                        .catch_unwind()
                        .await;
                    (index, answer)
                })
            })
            .collect();
        while let Some((index, answer)) = in_flight.next().await {
            match answer {
                Ok(answer) => answers[index] = Some(answer),
                Err(_) => tracing::error!("a channel adapter's send panicked"),
            }
        }
        drop(in_flight);
        for adapter in self.adapters.values() {
            adapter.flush().await;
        }
        let now = self.clock.now();
        for (send, answer) in sends.into_iter().zip(answers) {
            let outcome = match (answer, &send.target) {
                (Some(answer), _) => answer,
                (None, Err(error)) => Err(error.clone()),
                // Its adapter panicked: the lease runs out and it is tried again.
                (None, Ok(_)) => {
                    self.held.release([send.id()]);
                    continue;
                }
            };
            let s = self.conclude(&send, outcome, now, &mut report).await?;
            settlements.push((send.id().to_owned(), s));
        }
        let (more, acks) = self.registry.receipts().take();
        receipts.extend(more);
        report.receipts = receipts.len();
        let kept = self
            .store
            .settle_round(&self.config.lease_owner, &settlements, &receipts, now)
            .await?;
        crate::counters::count_round(&settlements, &receipts);
        for ((id, _), kept) in settlements.iter().zip(kept) {
            if !kept {
                tracing::warn!(message = %id, "lease lost before settling; another node has the message");
            }
        }
        self.held
            .release(settlements.iter().map(|(id, _)| id.as_str()));
        for ack in acks {
            ack();
        }
        if let Some(webhooks) = &self.webhooks {
            report.webhooks = webhooks.run_once().await?.attempts;
        }
        Ok(report)
    }

    fn lane_pause(&self, lane: &str) -> Mutex<Option<Timestamp>> {
        let map = self
            .found_nothing_at
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Mutex::new(map.get(lane).copied())
    }

    fn keep_lane_pause(&self, lane: &str, pause: &Mutex<Option<Timestamp>>) {
        let at = *pause.lock().unwrap_or_else(|p| p.into_inner());
        let mut map = self
            .found_nothing_at
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match at {
            Some(at) => map.insert(lane.to_owned(), at),
            None => map.remove(lane),
        };
    }

    /// Passes until one finds nothing to do (receipts included), at most `max_rounds`.
    pub async fn run_until_idle(&self, max_rounds: usize) -> Result<RoundReport, DispatchError> {
        let mut total = RoundReport::default();
        for _ in 0..max_rounds {
            let r = self.run_once().await?;
            total.add(&r);
            if r.claimed == 0 && r.receipts == 0 && r.webhooks == 0 {
                break;
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests;
