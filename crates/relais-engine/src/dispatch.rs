//! The dispatcher: claims due outbox rows with a lease, sends them through the channel's
//! adapter under a per-channel rate limit, and settles each attempt (acknowledged, retried,
//! failed, expired, moved to the next channel of the chain) in one transaction with its
//! outbox row.
//!
//! The outbox is the only queue. Time comes from the injected clock, and [`Dispatcher::run_once`]
//! does one round of work, so tests drive the dispatcher without sleeping.

use crate::handoff::Handoff;
use crate::send::segments_for;
use async_trait::async_trait;
use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use jiff::{SignedDuration, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;
use relais_core::channel::ChannelKind;
use relais_core::clock::Clock;
use relais_core::consent::{Purpose, may_send};
use relais_core::content::{ChannelCapabilities, Content, degrade};
use relais_core::fallback::{Attempt, FallbackChain, FallbackDecision, MoveOn};
use relais_core::retry::{ErrorClass, GiveUpReason, RetryDecision, RetryPolicy};
use relais_core::status::MessageStatus;
use relais_store::{
    Message, MessageEvent, OutboxItem, OutboxNext, OutboxPhase, Settlement, StepMove, Store,
    StoreError,
};
use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// One message handed to an adapter, its content already degraded for the channel.
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    pub message_id: String,
    pub tenant_id: String,
    pub channel: ChannelKind,
    pub to: String,
    /// The sender the message shows; `None` leaves it to the channel's configuration.
    pub from: Option<String>,
    pub content: Content,
    /// 1 for the first attempt on this channel.
    pub attempt: i64,
    pub now: Timestamp,
}

/// The provider took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderAck {
    pub provider_id: String,
}

/// The provider did not take the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct SendError {
    pub class: ErrorClass,
    /// A stable code for the event log (`throttled`, `invalid_number`, …).
    pub code: String,
    pub reason: String,
}

impl SendError {
    pub fn transient(code: impl Into<String>, reason: impl Into<String>) -> Self {
        SendError {
            class: ErrorClass::Transient,
            code: code.into(),
            reason: reason.into(),
        }
    }
    pub fn permanent(code: impl Into<String>, reason: impl Into<String>) -> Self {
        SendError {
            class: ErrorClass::Permanent,
            code: code.into(),
            reason: reason.into(),
        }
    }
}

/// A status report from a provider (a DLR, a status webhook, a simulated phone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub message_id: String,
    pub status: MessageStatus,
    pub at: Timestamp,
    pub detail: Option<String>,
}

/// One channel's connection to its provider. Every channel has one; the engine never asks
/// which channel it talks to.
#[async_trait]
pub trait ChannelAdapter: Send + Sync {
    fn kind(&self) -> ChannelKind;
    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError>;
    /// Receipts that became due by `now` (adapters that are told by webhooks return none).
    async fn poll_receipts(&self, _now: Timestamp) -> Vec<Receipt> {
        Vec::new()
    }
    /// Called once a round's sends are answered, before they are settled: an adapter that
    /// keeps a log (the sim's phones) writes it in one go here.
    async fn flush(&self) {}
}

/// Adapters of configured channels (an SMPP account…), by channel id. Shared by the API, which
/// adds a channel as soon as it is created, and the dispatcher, which sends a message whose
/// `channel` is that id through it. These adapters pace themselves (an SMPP client has its
/// `max_rate` and window), so the per-kind token bucket does not apply to them.
#[derive(Clone, Default)]
pub struct ChannelRegistry {
    adapters: Arc<std::sync::RwLock<HashMap<String, Arc<dyn ChannelAdapter>>>>,
    receipts: ReceiptInbox,
    handoff: Handoff,
}

/// Receipts that configured channels read and matched to their messages, waiting for the
/// dispatcher to write them: with the settlement of the round being sent (an SMSC that
/// answers at once has a message's `sent` and `delivered` written as one row update), or at
/// the start of the next round. Pushing wakes a resting dispatcher.
#[derive(Clone, Default)]
pub struct ReceiptInbox {
    queue: Arc<std::sync::Mutex<Vec<(String, MessageEvent)>>>,
    pushed: Arc<tokio::sync::Notify>,
}

impl ReceiptInbox {
    pub fn push(&self, receipts: Vec<(String, MessageEvent)>) {
        if receipts.is_empty() {
            return;
        }
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(receipts);
        self.pushed.notify_one();
    }

    fn take(&self) -> Vec<(String, MessageEvent)> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ChannelRegistry {
    pub fn insert(&self, channel_id: &str, adapter: Arc<dyn ChannelAdapter>) {
        let mut map = self.adapters.write().unwrap_or_else(|p| p.into_inner());
        map.insert(channel_id.to_owned(), adapter);
    }
    pub fn remove(&self, channel_id: &str) -> Option<Arc<dyn ChannelAdapter>> {
        let mut map = self.adapters.write().unwrap_or_else(|p| p.into_inner());
        map.remove(channel_id)
    }
    pub fn get(&self, channel_id: &str) -> Option<Arc<dyn ChannelAdapter>> {
        let map = self.adapters.read().unwrap_or_else(|p| p.into_inner());
        map.get(channel_id).cloned()
    }
    /// Where the registry's channels leave the receipts they read.
    pub fn receipts(&self) -> &ReceiptInbox {
        &self.receipts
    }
    /// Where the accept path hands messages due now to the dispatcher that runs with this
    /// registry.
    pub fn handoff(&self) -> &Handoff {
        &self.handoff
    }
}

#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Names this node in leases; unique per process.
    pub lease_owner: String,
    /// How long a claim holds before another node may take the work over.
    pub lease_for: SignedDuration,
    /// Rows claimed per round.
    pub batch: u32,
    /// Messages per second per channel kind, unless `rates` says otherwise.
    pub default_rate: f64,
    pub rates: HashMap<ChannelKind, f64>,
    /// Messages per second per sender (`from`) on each channel, unless `sender_rates`
    /// says otherwise; `None` leaves senders unpaced.
    pub sender_rate: Option<f64>,
    pub sender_rates: HashMap<String, f64>,
    pub retry: RetryPolicy,
    /// How long the background loop rests when a round found nothing to do.
    pub idle: std::time::Duration,
    /// How the `sim` channel answers.
    pub sim: crate::sim::SimConfig,
    /// A development aid: the `sim` channel also POSTs every send to this URL
    /// (`RELAIS_SIM_SINK_URL`), see [`crate::sim::SimAdapter::with_sink`].
    pub sim_sink_url: Option<String>,
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
            sim: crate::sim::SimConfig::default(),
            sim_sink_url: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundReport {
    pub claimed: usize,
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    pub expired: usize,
    pub fallbacks: usize,
    pub throttled: usize,
    pub receipts: usize,
    /// Webhook delivery attempts.
    pub webhooks: usize,
}

/// A token bucket on the injected clock: `rate` per second, bursts of up to `rate` (at
/// least one).
#[derive(Debug, Clone)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Timestamp,
}

impl Bucket {
    fn new(rate: f64, now: Timestamp) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        let burst = rate.max(1.0);
        Bucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Whether a token is there now, or when the next one comes; takes nothing.
    fn ready(&mut self, now: Timestamp) -> Result<(), Timestamp> {
        let elapsed = now.duration_since(self.last).as_secs_f64().max(0.0);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now.max(self.last);
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.rate;
            let wait =
                SignedDuration::try_from_secs_f64(wait).unwrap_or(SignedDuration::from_secs(1));
            Err(now.checked_add(wait).unwrap_or(Timestamp::MAX))
        }
    }
}

/// A round between its claim and its sends.
struct Round {
    report: RoundReport,
    settlements: Vec<(String, Settlement)>,
    sends: Vec<PendingSend>,
}

/// A round whose sends were answered, waiting to be written.
struct Sent {
    report: RoundReport,
    settlements: Vec<(String, Settlement)>,
    now: Timestamp,
}

/// What [`Dispatcher::triage`] made of a claimed row.
enum Triage {
    Settle(String, Box<Settlement>),
    Send(Box<PendingSend>),
}

/// A claimed message on its way to its adapter.
struct PendingSend {
    item: OutboxItem,
    chain: Option<FallbackChain>,
    /// The adapter and what it is given, or why the message cannot be sent.
    target: Result<(Arc<dyn ChannelAdapter>, OutboundMessage), SendError>,
    /// The attempt's `sending` mark, for a message that goes to its adapter.
    sending: Option<MessageEvent>,
}

/// Token buckets per channel kind and per (channel, sender).
#[derive(Default)]
struct Buckets {
    channels: HashMap<ChannelKind, Bucket>,
    senders: HashMap<(String, String), Bucket>,
}

pub struct Dispatcher {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: DispatcherConfig,
    adapters: HashMap<ChannelKind, Arc<dyn ChannelAdapter>>,
    registry: ChannelRegistry,
    buckets: Mutex<Buckets>,
    rng: Mutex<StdRng>,
    webhooks: Option<crate::webhooks::WebhookWorker>,
    /// When a claim last found nothing, until a claim finds something again.
    found_nothing_at: Mutex<Option<Timestamp>>,
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
            buckets: Mutex::new(Buckets::default()),
            rng: Mutex::new(StdRng::from_entropy()),
            webhooks: None,
            found_nothing_at: Mutex::new(None),
        }
    }

    /// Delivers the tenants' outgoing webhooks through `poster` in each round.
    pub fn with_webhooks(mut self, poster: Arc<dyn crate::webhooks::WebhookPoster>) -> Self {
        self.webhooks = Some(crate::webhooks::WebhookWorker::new(
            self.store.clone(),
            self.clock.clone(),
            poster,
            RetryPolicy::WEBHOOKS,
            self.config.lease_owner.clone(),
        ));
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

    /// One round: applies due receipts, then claims and handles due outbox rows.
    pub async fn run_once(&self) -> Result<RoundReport, DispatchError> {
        let round = self.begin_round().await?;
        self.finish_round(round).await
    }

    /// The first half of a round: applies due receipts, claims due rows, decides what
    /// needs no send and marks the sends `sending`.
    async fn begin_round(&self) -> Result<Round, DispatchError> {
        let mut report = RoundReport::default();
        let now = self.clock.now();
        // One transaction for all the round's receipts: with thousands of messages in
        // flight, a commit per receipt is what limits the dispatcher.
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
        receipts.extend(self.registry.receipts().take());
        report.receipts = receipts.len();
        // What waits in the outbox since before the oldest hand-off goes first (retries,
        // scheduled messages, a backlog); hand-offs fill the rest of the round. While
        // hand-offs keep coming and the last claim found nothing, the outbox is looked at
        // every CLAIM_PAUSE instead of every round.
        let handoff = self.registry.handoff();
        let head = handoff.head_due();
        let mut found_nothing_at = self
            .found_nothing_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let paused = head.is_some()
            && found_nothing_at.is_some_and(|at| now.duration_since(at) < CLAIM_PAUSE);
        let mut items = if paused {
            Vec::new()
        } else {
            let claimed = self
                .store
                .claim_due_by(
                    now,
                    head.map_or(now, |head| head.min(now)),
                    self.config.batch,
                    &self.config.lease_owner,
                    self.config.lease_for,
                )
                .await?;
            found_nothing_at = claimed.is_empty().then_some(now);
            claimed
        };
        *self
            .found_nothing_at
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = found_nothing_at;
        let room = usize::try_from(self.config.batch)
            .unwrap_or(usize::MAX)
            .saturating_sub(items.len());
        items.extend(handoff.take(room, now));
        report.claimed = items.len();
        let mut settlements: Vec<(String, Settlement)> = Vec::with_capacity(items.len());
        let mut sends = Vec::new();
        for item in items {
            match self.triage(item, &mut report).await? {
                Triage::Settle(id, s) => settlements.push((id, *s)),
                Triage::Send(send) => sends.push(*send),
            }
        }
        if !receipts.is_empty() {
            self.store.record_statuses(&receipts).await?;
        }
        self.stamp_sending(&mut sends);
        Ok(Round {
            report,
            settlements,
            sends,
        })
    }

    /// The second half: sends, settles the round in one transaction, delivers webhooks.
    async fn finish_round(&self, round: Round) -> Result<RoundReport, DispatchError> {
        let sent = self.send_round(round).await?;
        self.settle_sent(sent).await
    }

    /// The sends of a round and what each answer makes of its message.
    async fn send_round(&self, round: Round) -> Result<Sent, DispatchError> {
        let Round {
            mut report,
            mut settlements,
            sends,
        } = round;
        // The whole round goes out at once: adapters keep their own window (an SMPP bind)
        // or answer at once (sim), and the round's size bounds what is in flight. The sends
        // run inside this task: a task per send cost more than most sends do.
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
                // An adapter that panics loses its answer: the lease runs out and the
                // message is tried again, so nothing is lost.
                Err(_) => tracing::error!("a channel adapter's send panicked"),
            }
        }
        drop(in_flight);
        let mut outcomes: Vec<(PendingSend, Result<ProviderAck, SendError>)> =
            Vec::with_capacity(sends.len());
        for (send, answer) in sends.into_iter().zip(answers) {
            match (answer, &send.target) {
                (Some(answer), _) => outcomes.push((send, answer)),
                // No adapter for its channel: it never went out.
                (None, Err(error)) => {
                    let error = error.clone();
                    outcomes.push((send, Err(error)));
                }
                (None, Ok(_)) => {}
            }
        }
        for adapter in self.adapters.values() {
            adapter.flush().await;
        }
        let now = self.clock.now();
        for (send, outcome) in outcomes {
            let mut s = self.conclude(&send, outcome, now, &mut report).await?;
            s.sending = send.sending;
            settlements.push((send.item.message.id.clone(), s));
        }
        Ok(Sent {
            report,
            settlements,
            now,
        })
    }

    /// Writes a sent round in one transaction, with the receipts read meanwhile, then
    /// delivers webhooks.
    async fn settle_sent(&self, sent: Sent) -> Result<RoundReport, DispatchError> {
        let Sent {
            mut report,
            settlements,
            now,
        } = sent;
        let meanwhile = self.registry.receipts().take();
        report.receipts += meanwhile.len();
        let kept = self
            .store
            .settle_round(&self.config.lease_owner, &settlements, &meanwhile, now)
            .await?;
        for ((id, _), kept) in settlements.iter().zip(kept) {
            if !kept {
                tracing::warn!(message = %id, "lease lost before settling; another node has the message");
            }
        }
        if let Some(webhooks) = &self.webhooks {
            report.webhooks = webhooks.run_once().await?;
        }
        Ok(report)
    }

    /// Rounds until one finds nothing to do (receipts included), at most `max_rounds`.
    pub async fn run_until_idle(&self, max_rounds: usize) -> Result<RoundReport, DispatchError> {
        let mut total = RoundReport::default();
        for _ in 0..max_rounds {
            let r = self.run_once().await?;
            total.claimed += r.claimed;
            total.sent += r.sent;
            total.retried += r.retried;
            total.failed += r.failed;
            total.expired += r.expired;
            total.fallbacks += r.fallbacks;
            total.throttled += r.throttled;
            total.receipts += r.receipts;
            total.webhooks += r.webhooks;
            if r.claimed == 0 && r.receipts == 0 && r.webhooks == 0 {
                break;
            }
        }
        Ok(total)
    }

    /// What a claimed row needs: a settlement decided without sending (a fallback timer,
    /// an expired or throttled message), or a send.
    async fn triage(
        &self,
        item: OutboxItem,
        report: &mut RoundReport,
    ) -> Result<Triage, DispatchError> {
        let now = self.clock.now();
        let id = item.message.id.clone();
        let message = &item.message;
        if message.status.is_final() || message.status == MessageStatus::Delivered {
            return Ok(Triage::Settle(
                id,
                Box::new(Settlement::new(OutboxNext::Done)),
            ));
        }
        let chain: Option<FallbackChain> = serde_json::from_value(message.chain.clone()).ok();
        if item.phase == OutboxPhase::Watch {
            let s = self.watch(&item, chain.as_ref(), report).await?;
            return Ok(Triage::Settle(id, Box::new(s)));
        }
        if message.expires_at.is_some_and(|end| now >= end) {
            report.expired += 1;
            let mut s = Settlement::new(OutboxNext::Done);
            s.status = Some(
                MessageEvent::new(MessageStatus::Expired, now)
                    .reason("validity")
                    .detail("the message's validity ran out before it could be sent"),
            );
            return Ok(Triage::Settle(id, Box::new(s)));
        }
        let target = match self.prepare(&item) {
            Err(e) => Err(e),
            Ok((adapter, outbound, paced)) => {
                let kind = (!paced).then(|| adapter.kind());
                if let Err(next) = self.take_token(kind, &item.message, now) {
                    report.throttled += 1;
                    return Ok(Triage::Settle(
                        id,
                        Box::new(Settlement::new(OutboxNext::Reschedule {
                            due_at: next,
                            phase: OutboxPhase::Send,
                            attempts: item.attempts,
                        })),
                    ));
                }
                Ok((adapter, outbound))
            }
        };
        Ok(Triage::Send(Box::new(PendingSend {
            item,
            chain,
            target,
            sending: None,
        })))
    }

    /// Stamps each send's `sending` mark now, as the attempt starts. It is written with
    /// the attempt's outcome, in the settle transaction (a status only moves forward, so
    /// the log reads the same; a cancel meanwhile is refused because the outbox row is
    /// leased).
    fn stamp_sending(&self, sends: &mut [PendingSend]) {
        let now = self.clock.now();
        for send in sends.iter_mut().filter(|send| send.target.is_ok()) {
            let message = &send.item.message;
            send.sending = Some(
                MessageEvent::new(MessageStatus::Sending, now)
                    .channel(message.channel.as_str())
                    .attempt(send.item.attempts + 1),
            );
        }
    }

    /// The settlement of a send once the adapter answered.
    async fn conclude(
        &self,
        send: &PendingSend,
        outcome: Result<ProviderAck, SendError>,
        now: Timestamp,
        report: &mut RoundReport,
    ) -> Result<Settlement, DispatchError> {
        let item = &send.item;
        let message = &item.message;
        let chain = send.chain.as_ref();
        let attempt = item.attempts + 1;
        match outcome {
            Ok(ack) => {
                report.sent += 1;
                let mut s = Settlement::new(self.after_sent(item, chain, now));
                s.status = Some(
                    MessageEvent::new(MessageStatus::Sent, now)
                        .channel(message.channel.as_str())
                        .attempt(attempt)
                        .detail(format!("provider id {}", ack.provider_id)),
                );
                s.provider_id = Some(ack.provider_id);
                Ok(s)
            }
            Err(error) => {
                let decision = {
                    let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
                    self.config.retry.decide(
                        error.class,
                        u32::try_from(attempt).unwrap_or(u32::MAX),
                        now,
                        message.expires_at,
                        &mut *rng,
                    )
                };
                match decision {
                    RetryDecision::RetryAt(at) => {
                        report.retried += 1;
                        let mut s = Settlement::new(OutboxNext::Reschedule {
                            due_at: at,
                            phase: OutboxPhase::Send,
                            attempts: attempt,
                        });
                        s.events.push(
                            MessageEvent::new(MessageStatus::Sending, now)
                                .channel(message.channel.as_str())
                                .attempt(attempt)
                                .reason(error.code.clone())
                                .detail(format!("{}; retrying at {at}", error.reason)),
                        );
                        Ok(s)
                    }
                    RetryDecision::GiveUp(why) => {
                        let status = match why {
                            GiveUpReason::WouldExpire => MessageStatus::Expired,
                            GiveUpReason::Permanent | GiveUpReason::AttemptsExhausted => {
                                MessageStatus::Failed
                            }
                        };
                        let event = MessageEvent::new(status, now)
                            .channel(message.channel.as_str())
                            .attempt(attempt)
                            .reason(error.code.clone())
                            .detail(error.reason.clone());
                        self.step_failed(item, chain, event, report).await
                    }
                }
            }
        }
    }

    /// The adapter, the message as it goes to it, and whether the adapter paces itself
    /// (a configured channel).
    fn prepare(
        &self,
        item: &OutboxItem,
    ) -> Result<(Arc<dyn ChannelAdapter>, OutboundMessage, bool), SendError> {
        let message = &item.message;
        let (kind, adapter, paced) = match self.registry.get(&message.channel) {
            Some(adapter) => (adapter.kind(), adapter, true),
            None => {
                let kind: ChannelKind = message.channel.parse().map_err(|_| {
                    SendError::permanent(
                        "unknown_channel",
                        format!("channel `{}` is not known", message.channel),
                    )
                })?;
                let adapter = self.adapters.get(&kind).cloned().ok_or_else(|| {
                    SendError::permanent(
                        "channel_not_configured",
                        format!("no `{kind}` channel is configured on this server"),
                    )
                })?;
                (kind, adapter, false)
            }
        };
        let content: Content = serde_json::from_value(message.content.clone()).map_err(|e| {
            SendError::permanent("bad_content", format!("stored content is unreadable: {e}"))
        })?;
        let content = degrade(&content, ChannelCapabilities::for_kind(kind));
        Ok((
            adapter,
            OutboundMessage {
                message_id: message.id.clone(),
                tenant_id: message.tenant_id.clone(),
                channel: kind,
                to: message.to_address.clone(),
                from: message.sender.clone(),
                content,
                attempt: item.attempts + 1,
                now: self.clock.now(),
            },
            paced,
        ))
    }

    /// Takes a token from the channel kind's bucket (`None` for a channel that paces
    /// itself) and from the message's sender's, or says when both will have one.
    fn take_token(
        &self,
        kind: Option<ChannelKind>,
        message: &Message,
        now: Timestamp,
    ) -> Result<(), Timestamp> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Buckets { channels, senders } = &mut *buckets;
        let channel = kind.map(|kind| {
            let rate = self
                .config
                .rates
                .get(&kind)
                .copied()
                .unwrap_or(self.config.default_rate);
            channels
                .entry(kind)
                .or_insert_with(|| Bucket::new(rate, now))
        });
        let sender = message.sender.as_ref().and_then(|from| {
            let rate = self
                .config
                .sender_rates
                .get(from)
                .copied()
                .or(self.config.sender_rate)?;
            Some(
                senders
                    .entry((message.channel.clone(), from.clone()))
                    .or_insert_with(|| Bucket::new(rate, now)),
            )
        });
        let mut buckets: Vec<&mut Bucket> = channel.into_iter().chain(sender).collect();
        let mut next = None;
        for bucket in buckets.iter_mut() {
            if let Err(at) = bucket.ready(now) {
                next = next.max(Some(at));
            }
        }
        if let Some(at) = next {
            return Err(at);
        }
        for bucket in buckets {
            bucket.tokens -= 1.0;
        }
        Ok(())
    }

    /// After the provider took the message: done, or a fallback timer when the step waits
    /// for a delivery or a read.
    fn after_sent(
        &self,
        item: &OutboxItem,
        chain: Option<&FallbackChain>,
        now: Timestamp,
    ) -> OutboxNext {
        let Some(chain) = chain else {
            return OutboxNext::Done;
        };
        let step = usize::try_from(item.message.step).unwrap_or(usize::MAX);
        let has_next = step.saturating_add(1) < chain.steps().len();
        match chain.steps().get(step).map(|s| s.move_on) {
            Some(MoveOn::NotDeliveredWithin(within) | MoveOn::NotReadWithin(within))
                if has_next =>
            {
                OutboxNext::Reschedule {
                    due_at: now.checked_add(within).unwrap_or(Timestamp::MAX),
                    phase: OutboxPhase::Watch,
                    attempts: 0,
                }
            }
            _ => OutboxNext::Done,
        }
    }

    /// The attempts of the chain so far, for [`FallbackChain::decide`]: earlier steps
    /// failed (that is why the message moved on), the current one has `current`.
    fn attempts(item: &OutboxItem, current: MessageStatus, started_at: Timestamp) -> Vec<Attempt> {
        let step = usize::try_from(item.message.step).unwrap_or(0);
        let mut attempts: Vec<Attempt> = (0..step)
            .map(|_| Attempt {
                status: MessageStatus::Failed,
                started_at: item.message.created_at,
            })
            .collect();
        attempts.push(Attempt {
            status: current,
            started_at,
        });
        attempts
    }

    /// The current step failed for good: the next channel of the chain, or the end.
    async fn step_failed(
        &self,
        item: &OutboxItem,
        chain: Option<&FallbackChain>,
        event: MessageEvent,
        report: &mut RoundReport,
    ) -> Result<Settlement, DispatchError> {
        let now = event.at;
        let decision = chain
            .map(|c| c.decide(&Self::attempts(item, event.status, now), now))
            .unwrap_or(FallbackDecision::Finish {
                status: event.status,
                step: 0,
            });
        let mut skipped = Vec::new();
        if let (Some(chain), FallbackDecision::Start { step }) = (chain, decision) {
            match self
                .move_to(item, chain, step, vec![event.clone()], now)
                .await?
            {
                Ok(s) => {
                    report.fallbacks += 1;
                    return Ok(s);
                }
                Err(events) => skipped = events,
            }
        }
        report.failed += 1;
        let mut s = Settlement::new(OutboxNext::Done);
        s.status = Some(event);
        s.events = skipped;
        Ok(s)
    }

    async fn move_to(
        &self,
        item: &OutboxItem,
        chain: &FallbackChain,
        step: usize,
        events: Vec<MessageEvent>,
        now: Timestamp,
    ) -> Result<Result<Settlement, Vec<MessageEvent>>, StoreError> {
        let (to, events) = match next_step_or_skips(
            &*self.store,
            &item.message,
            chain,
            step,
            events,
            now,
        )
        .await?
        {
            Ok(found) => found,
            Err(skipped) => return Ok(Err(skipped)),
        };
        let mut s = Settlement::new(OutboxNext::Reschedule {
            due_at: now,
            phase: OutboxPhase::Send,
            attempts: 0,
        });
        s.events = events;
        s.move_to = Some(to);
        Ok(Ok(s))
    }

    /// A fallback timer came due: was the current step delivered (or read) in time?
    async fn watch(
        &self,
        item: &OutboxItem,
        chain: Option<&FallbackChain>,
        report: &mut RoundReport,
    ) -> Result<Settlement, DispatchError> {
        let now = self.clock.now();
        let Some(chain) = chain else {
            return Ok(Settlement::new(OutboxNext::Done));
        };
        let step = usize::try_from(item.message.step).unwrap_or(0);
        let within = match chain.steps().get(step).map(|s| s.move_on) {
            Some(MoveOn::NotDeliveredWithin(w) | MoveOn::NotReadWithin(w)) => w,
            _ => SignedDuration::ZERO,
        };
        let started_at = item.due_at.checked_sub(within).unwrap_or(item.due_at);
        match chain.decide(&Self::attempts(item, item.message.status, started_at), now) {
            FallbackDecision::Start { step } => {
                let waited = MessageEvent::new(item.message.status, now)
                    .channel(item.message.channel.as_str())
                    .reason("fallback_timeout")
                    .detail(format!("not delivered within {within:#}"));
                match self.move_to(item, chain, step, vec![waited], now).await? {
                    Ok(s) => {
                        report.fallbacks += 1;
                        Ok(s)
                    }
                    Err(skipped) => {
                        let mut s = Settlement::new(OutboxNext::Done);
                        s.events = skipped;
                        Ok(s)
                    }
                }
            }
            FallbackDecision::WaitUntil(at) => Ok(Settlement::new(OutboxNext::Reschedule {
                due_at: at,
                phase: OutboxPhase::Watch,
                attempts: 0,
            })),
            FallbackDecision::WaitForStatus | FallbackDecision::Finish { .. } => {
                Ok(Settlement::new(OutboxNext::Done))
            }
        }
    }
}

/// The move of `message` to step `step` of its chain, or to the first later step whose
/// channel the contact consented to, with the events that say so; `None` when no step is
/// left.
async fn next_step(
    store: &dyn Store,
    message: &Message,
    chain: &FallbackChain,
    step: usize,
    events: Vec<MessageEvent>,
    now: Timestamp,
) -> Result<Option<(StepMove, Vec<MessageEvent>)>, StoreError> {
    Ok(next_step_or_skips(store, message, chain, step, events, now)
        .await?
        .ok())
}

/// [`next_step`], or, when no step is left, the events of the steps skipped for consent:
/// the message's log must say why the chain ended there.
async fn next_step_or_skips(
    store: &dyn Store,
    message: &Message,
    chain: &FallbackChain,
    step: usize,
    events: Vec<MessageEvent>,
    now: Timestamp,
) -> Result<Result<(StepMove, Vec<MessageEvent>), Vec<MessageEvent>>, StoreError> {
    let mut skipped = Vec::new();
    let ledger = match &message.contact_id {
        Some(contact) => store.consents(&message.tenant_id, contact).await?,
        None => Vec::new(),
    };
    let purpose = Purpose::parse(&message.purpose).unwrap_or(Purpose::Transactional);
    let mut step = step;
    while let Some(candidate) = chain.steps().get(step) {
        let Some(kind) = step_kind(store, &message.tenant_id, &candidate.channel).await? else {
            break;
        };
        let decision = may_send(&ledger, kind, &purpose);
        if decision.allowed {
            break;
        }
        skipped.push(
            MessageEvent::new(MessageStatus::Rejected, now)
                .channel(kind.as_str())
                .reason(decision.code)
                .detail(format!("fallback skipped: {}", decision.explanation)),
        );
        step += 1;
    }
    let Some(next) = chain.steps().get(step) else {
        return Ok(Err(skipped));
    };
    let kind = step_kind(store, &message.tenant_id, &next.channel).await?;
    let mut events = events;
    events.extend(skipped);
    Ok(step_move(message, chain, step, kind, events, now).ok_or_else(Vec::new))
}

/// The channel kind a step sends on: the step names a kind (`sms`), or the id of a channel
/// configured by the tenant (an SMPP connection sends `sms`). `None` for a channel that
/// was deleted since: sending to it will fail and say so.
async fn step_kind(
    store: &dyn Store,
    tenant: &str,
    channel: &str,
) -> Result<Option<ChannelKind>, StoreError> {
    if let Ok(kind) = channel.parse::<ChannelKind>() {
        return Ok(Some(kind));
    }
    Ok(store
        .channel(tenant, channel)
        .await?
        .and_then(|record| crate::send::configured_kind(&record.kind)))
}

fn step_move(
    message: &Message,
    chain: &FallbackChain,
    step: usize,
    kind: Option<ChannelKind>,
    mut events: Vec<MessageEvent>,
    now: Timestamp,
) -> Option<(StepMove, Vec<MessageEvent>)> {
    let next = chain.steps().get(step)?;
    let content: Option<Content> = serde_json::from_value(message.content.clone()).ok();
    let segments = match (kind, &content) {
        (Some(kind), Some(content)) => segments_for(content, kind),
        _ => None,
    };
    events.push(
        MessageEvent::new(MessageStatus::Queued, now)
            .channel(next.channel.as_str())
            .reason("fallback")
            .detail(format!(
                "falling back from `{}` to `{}`",
                message.channel, next.channel
            )),
    );
    Some((
        StepMove {
            step: i64::try_from(step).unwrap_or(i64::MAX),
            channel: next.channel.clone(),
            content: message.content.clone(),
            segments,
        },
        events,
    ))
}

/// Applies a provider's receipt (an SMPP DLR, a status webhook) to the message it knows by
/// `provider_id` on `channel`. A failure on a step of a fallback chain that has a next
/// step moves the message to it. The new status, or `None` when the receipt was stale, a
/// duplicate, for no message of ours, or moved the message on.
pub async fn apply_provider_receipt(
    store: &dyn Store,
    channel: ChannelKind,
    provider_id: &str,
    status: MessageStatus,
    at: Timestamp,
    detail: Option<String>,
) -> Result<Option<MessageStatus>, DispatchError> {
    apply_channel_receipt(store, channel.as_str(), provider_id, status, at, detail).await
}

/// [`apply_provider_receipt`] for a message sent on `channel`, a channel kind or a
/// configured channel's id.
pub async fn apply_channel_receipt(
    store: &dyn Store,
    channel: &str,
    provider_id: &str,
    status: MessageStatus,
    at: Timestamp,
    detail: Option<String>,
) -> Result<Option<MessageStatus>, DispatchError> {
    let Some(message) = store.message_by_provider_id(channel, provider_id).await? else {
        return Ok(None);
    };
    apply_receipt_to(store, &message, status, at, detail).await
}

/// Applies a receipt to a message already found (an SMPP receipt names the message by the
/// reference it was submitted with).
pub async fn apply_receipt_to(
    store: &dyn Store,
    message: &Message,
    status: MessageStatus,
    at: Timestamp,
    detail: Option<String>,
) -> Result<Option<MessageStatus>, DispatchError> {
    let mut event = MessageEvent::new(status, at)
        .channel(message.channel.as_str())
        .reason("receipt");
    if let Some(detail) = detail {
        event = event.detail(detail);
    }
    // A failure on a step that has a next one moves the message on instead of ending it.
    if status.is_failure()
        && let Ok(chain) = serde_json::from_value::<FallbackChain>(message.chain.clone())
    {
        let step = usize::try_from(message.step).unwrap_or(0);
        let mut attempts: Vec<Attempt> = (0..step)
            .map(|_| Attempt {
                status: MessageStatus::Failed,
                started_at: message.created_at,
            })
            .collect();
        attempts.push(Attempt {
            status,
            started_at: message.updated_at,
        });
        if let FallbackDecision::Start { step: next } = chain.decide(&attempts, at)
            && let Some((to, events)) =
                next_step(store, message, &chain, next, vec![event.clone()], at).await?
            && store
                .fall_back(&message.id, message.step, &events, &to, at)
                .await?
        {
            return Ok(None);
        }
    }
    Ok(store.record_status(&message.id, &event).await?)
}

/// The dispatcher running in the background.
/// A spawned round: its sends, then its settle.
type RoundTask = tokio::task::JoinHandle<Result<RoundReport, DispatchError>>;

/// Rounds sent and not yet settled at most: the newest is sent while the one before it
/// is written.
const UNSETTLED_ROUNDS: usize = 2;

/// The hand-off queue holds this many rounds.
const HANDOFF_ROUNDS: usize = 16;

/// How long a dispatcher fed by hand-offs goes without looking at the outbox once a
/// claim found nothing there: the longest a retry or a scheduled message waits for it.
const CLAIM_PAUSE: SignedDuration = SignedDuration::from_millis(100);

pub struct DispatcherHandle {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl DispatcherHandle {
    /// Stops after the round in progress and waits for it.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "dispatcher task ended badly");
        }
    }
}

impl Dispatcher {
    /// Runs rounds until shut down, resting `config.idle` when a round found nothing.
    /// Rounds overlap: the next one is claimed and marked while the previous one is sent
    /// and settled, so the store's writer and the channels work at the same time.
    pub fn spawn(self: Arc<Self>) -> DispatcherHandle {
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let handoff = self.registry.handoff().clone();
        // Room for a few rounds: enough to keep rounds full, few enough to be sent long
        // before their leases run out.
        handoff.open(
            &self.config.lease_owner,
            self.config.lease_for,
            usize::try_from(self.config.batch)
                .unwrap_or(usize::MAX)
                .saturating_mul(HANDOFF_ROUNDS),
        );
        let task = tokio::spawn(async move {
            let failed = self.config.idle.max(std::time::Duration::from_secs(1));
            // Rounds sent and not yet settled, oldest first; each settles after the one
            // before it.
            let mut unsettled: VecDeque<RoundTask> = VecDeque::new();
            let mut last_settled: Option<tokio::sync::oneshot::Receiver<()>> = None;
            let mut last_sent: Option<tokio::sync::oneshot::Receiver<()>> = None;
            loop {
                let begun = self.begin_round().await;
                let mut rest = None;
                let mut webhooks = 0;
                // A round goes out once the previous one's sends are answered, while that
                // one is being written: the channels and the store's writer work at the
                // same time.
                if let Some(sent) = last_sent.take() {
                    let _ = sent.await;
                }
                let idle = begun
                    .as_ref()
                    .is_ok_and(|r| r.report.claimed == 0 && r.report.receipts == 0);
                let keep = if idle { 0 } else { UNSETTLED_ROUNDS - 1 };
                while unsettled.len() > keep {
                    let Some(oldest) = unsettled.pop_front() else {
                        break;
                    };
                    match oldest.await {
                        Ok(Ok(r)) => webhooks += r.webhooks,
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "dispatcher round failed");
                            rest = Some(failed);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "dispatcher round ended badly");
                            rest = Some(failed);
                        }
                    }
                }
                match begun {
                    Ok(round) => {
                        if idle && webhooks == 0 {
                            rest = rest.or(Some(self.config.idle));
                        }
                        let (sent, sent_rx) = tokio::sync::oneshot::channel();
                        let (settled, settled_rx) = tokio::sync::oneshot::channel::<()>();
                        let previous = last_settled.replace(settled_rx);
                        last_sent = Some(sent_rx);
                        let this = self.clone();
                        unsettled.push_back(tokio::spawn(async move {
                            let answered = this.send_round(round).await;
                            let _ = sent.send(());
                            if let Some(previous) = previous {
                                // Dropped unanswered if that round ended badly: go on.
                                let _ = previous.await;
                            }
                            let result = match answered {
                                Ok(answered) => this.settle_sent(answered).await,
                                Err(e) => Err(e),
                            };
                            drop(settled);
                            result
                        }));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "dispatcher round failed");
                        rest = Some(failed);
                    }
                }
                if token.is_cancelled() {
                    break;
                }
                if let Some(rest) = rest {
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = tokio::time::sleep(rest) => {}
                        _ = self.registry.receipts().pushed.notified() => {}
                        _ = handoff.pushed() => {}
                    }
                }
            }
            // The rounds being sent are settled before the dispatcher stops, and the
            // receipts read meanwhile are written.
            while let Some(round) = unsettled.pop_front() {
                match round.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "dispatcher round failed"),
                    Err(e) => tracing::error!(error = %e, "dispatcher round ended badly"),
                }
            }
            let left = self.registry.receipts().take();
            if let Err(e) = self.store.record_statuses(&left).await {
                tracing::error!(error = %e, count = left.len(), "cannot store the last receipts");
            }
            // Hand-offs not sent are given back to the outbox at once, not when their
            // leases run out.
            let unsent: Vec<String> = handoff.close().into_iter().map(|i| i.message.id).collect();
            if let Err(e) = self
                .store
                .release_leases(&self.config.lease_owner, &unsent)
                .await
            {
                tracing::error!(error = %e, count = unsent.len(), "cannot give the unsent hand-offs back; they are claimed when their leases run out");
            }
        });
        DispatcherHandle { shutdown, task }
    }
}

/// Starts the dispatcher of `relais serve` with the `sim` sandbox channel and outgoing
/// webhooks.
pub fn spawn_dispatcher(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: DispatcherConfig,
) -> DispatcherHandle {
    spawn_dispatcher_with(store, clock, config, ChannelRegistry::default())
}

/// [`spawn_dispatcher`] that also sends through the configured channels of `registry`.
pub fn spawn_dispatcher_with(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: DispatcherConfig,
    registry: ChannelRegistry,
) -> DispatcherHandle {
    let mut sim = crate::sim::SimAdapter::new(store.clone(), config.sim.clone());
    if let Some(url) = &config.sim_sink_url {
        sim = match sim.with_sink(url.clone()) {
            Ok(sim) => sim,
            Err(e) => {
                tracing::error!(error = %e, "the sim sink is off: no HTTP client");
                crate::sim::SimAdapter::new(store.clone(), config.sim.clone())
            }
        };
    }
    let mut dispatcher = Dispatcher::new(store, clock, config)
        .with_adapter(Arc::new(sim))
        .with_registry(registry);
    match crate::webhooks::HttpPoster::new() {
        Ok(poster) => dispatcher = dispatcher.with_webhooks(Arc::new(poster)),
        Err(e) => tracing::error!(error = %e, "outgoing webhooks are off: no HTTP client"),
    }
    Arc::new(dispatcher).spawn()
}
