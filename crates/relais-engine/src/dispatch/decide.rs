//! What becomes of a claimed message: settled without a send (a fallback timer, an expired
//! or rate-limited message), or sent; and what an adapter's answer makes of it (sent,
//! retried, moved to another channel of the kind its step names when its own cannot send,
//! failed, moved to the next channel of its chain).

use super::buckets::{Bucket, Buckets};
use super::{DispatchError, Dispatcher, RoundReport};
use crate::routing::Accounts;
use jiff::{SignedDuration, Timestamp};
use relais_channels::adapter::{ChannelAdapter, OutboundMessage, ProviderAck, SendError};
use relais_core::channel::ChannelKind;
use relais_core::consent::{Purpose, may_send};
use relais_core::content::{Body, ChannelCapabilities, Content, degrade};
use relais_core::fallback::{Attempt, FallbackChain, FallbackDecision, MoveOn};
use relais_core::retry::{ErrorClass, GiveUpReason, RetryDecision};
use relais_core::status::MessageStatus;
use relais_store::{
    LastInbound, Message, MessageEvent, OutboxItem, OutboxNext, OutboxPhase, Settlement, StepMove,
    Store, StoreError,
};
use std::sync::Arc;

/// What [`Dispatcher::triage`] made of a claimed row.
pub(super) enum Triage {
    Settle(String, Box<Settlement>),
    Send(Box<PendingSend>),
}

/// A claimed message on its way to its adapter.
pub(super) struct PendingSend {
    pub(super) item: OutboxItem,
    pub(super) chain: Option<FallbackChain>,
    /// The adapter and what it is given, or why the message cannot be sent.
    pub(super) target: Result<(Arc<dyn ChannelAdapter>, OutboundMessage), SendError>,
    /// The attempt's `sending` mark, for a message that goes to its adapter.
    pub(super) sending: Option<MessageEvent>,
}

impl PendingSend {
    pub(super) fn id(&self) -> &str {
        &self.item.message.id
    }
}

/// The settlement of a message whose validity ran out before it could be sent.
pub(super) fn expired(now: Timestamp) -> Settlement {
    let mut s = Settlement::new(OutboxNext::Done);
    s.status = Some(
        MessageEvent::new(MessageStatus::Expired, now)
            .reason("validity")
            .detail("the message's validity ran out before it could be sent"),
    );
    s
}

impl Dispatcher {
    /// What a claimed row needs: a settlement decided without sending (a fallback timer,
    /// an expired or throttled message), or a send.
    pub(super) async fn triage(
        &self,
        item: OutboxItem,
        report: &mut RoundReport,
    ) -> Result<Triage, DispatchError> {
        let now = self.clock.now();
        let id = item.message.id.clone();
        let message = &item.message;
        let chain: Option<FallbackChain> = serde_json::from_value(message.chain.clone()).ok();
        // A fallback timer decides for itself: a step that waits for `read` moves on even
        // when the message was delivered.
        if item.phase == OutboxPhase::Watch && !message.status.is_final() {
            let s = self.watch(&item, chain.as_ref(), report).await?;
            return Ok(Triage::Settle(id, Box::new(s)));
        }
        // A delivered message is not sent again, unless its chain moved on because the
        // step before waited for `read`: that step's delivery is why it moves on.
        let moved_on_unread = usize::try_from(message.step)
            .ok()
            .and_then(|step| step.checked_sub(1))
            .and_then(|before| chain.as_ref()?.steps().get(before))
            .is_some_and(|before| matches!(before.move_on, MoveOn::NotReadWithin(_)));
        if message.status.is_final()
            || (message.status == MessageStatus::Delivered && !moved_on_unread)
        {
            return Ok(Triage::Settle(
                id,
                Box::new(Settlement::new(OutboxNext::Done)),
            ));
        }
        if message.expires_at.is_some_and(|end| now >= end) {
            report.expired += 1;
            return Ok(Triage::Settle(id, Box::new(expired(now))));
        }
        let target = match self.prepare(&item) {
            Err(e) => Err(e),
            Ok((adapter, outbound, paced)) => {
                if let Some(limit) = adapter.recipient_limit()
                    && let Some(wait) = self
                        .within_limit(&item, adapter.kind(), &outbound.content, limit, now)
                        .await?
                {
                    report.limited += 1;
                    return Ok(Triage::Settle(id, Box::new(wait)));
                }
                let kind = (!paced).then(|| adapter.kind());
                let sender_rate = match &item.message.sender {
                    Some(from) => self.sender_rate_of(&item.message.tenant_id, from).await,
                    None => None,
                };
                if let Err(next) = self.take_token(kind, &item.message, sender_rate, now) {
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

    /// Stamps a send's `sending` mark now, as the attempt starts. It is written with the
    /// attempt's outcome (a status only moves forward, so the log reads the same; a cancel
    /// meanwhile is refused because the outbox row is leased).
    pub(super) fn stamp_sending(&self, send: &mut PendingSend) {
        if send.target.is_err() {
            return;
        }
        let now = self.clock.now();
        let message = &send.item.message;
        send.sending = Some(
            MessageEvent::new(MessageStatus::Sending, now)
                .channel(message.channel.as_str())
                .attempt(send.item.attempts + 1),
        );
        if let Ok((_, outbound)) = &mut send.target {
            outbound.now = now;
        }
    }

    /// The settlement of a send once the adapter answered.
    pub(super) async fn conclude(
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
        let mut settlement = match outcome {
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
                s
            }
            Err(error) => {
                // A channel that cannot send (no live connection, a transport or
                // temporary error) hands the message to the next channel of the step's
                // kind that takes it, at once, rather than making it wait. Never after a
                // provider's acknowledgement: this is a refusal or no answer at all.
                if error.class != ErrorClass::Permanent
                    && let Some(next) = self.fail_over_target(item, chain).await?
                {
                    report.failovers += 1;
                    let mut s = super::failover::failed_over(item, &error, next, now);
                    s.sending = send.sending.clone();
                    return Ok(s);
                }
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
                match (decision, error.class) {
                    // It never left: it waits, its attempts untouched and nothing logged
                    // (the message's row is not rewritten for a wait).
                    (RetryDecision::RetryAt(at), ErrorClass::NotSent) => {
                        report.held += 1;
                        return Ok(Settlement::new(OutboxNext::Reschedule {
                            due_at: at,
                            phase: OutboxPhase::Send,
                            attempts: item.attempts,
                        }));
                    }
                    (RetryDecision::RetryAt(at), _) => {
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
                        s
                    }
                    (RetryDecision::GiveUp(why), _) => {
                        let status = match why {
                            GiveUpReason::WouldExpire => MessageStatus::Expired,
                            GiveUpReason::Permanent | GiveUpReason::AttemptsExhausted => {
                                MessageStatus::Failed
                            }
                        };
                        let dead = super::gone::dead_identity(send, &error);
                        let note = dead.as_ref().map_or("", |(_, note)| note.as_str());
                        let event = MessageEvent::new(status, now)
                            .channel(message.channel.as_str())
                            .attempt(attempt)
                            .reason(error.code.clone())
                            .detail(format!("{}{note}", error.reason));
                        let mut s = self.step_failed(item, chain, event, report).await?;
                        s.drop_identity = dead.map(|(identity, _)| identity);
                        s
                    }
                }
            }
        };
        settlement.sending = send.sending.clone();
        Ok(settlement)
    }

    /// The adapter, the message as it goes to it, and whether the adapter paces itself
    /// (a configured channel).
    pub(super) fn prepare(
        &self,
        item: &OutboxItem,
    ) -> Result<(Arc<dyn ChannelAdapter>, OutboundMessage, bool), SendError> {
        let message = &item.message;
        let (kind, adapter, paced) = self.adapter_of(&message.channel)?;
        // Claimed from a lane whose channel cannot send, to fail over.
        if !adapter.is_ready() {
            return Err(super::failover::unavailable());
        }
        let content: Content = serde_json::from_value(message.content.clone()).map_err(|e| {
            SendError::permanent("bad_content", format!("stored content is unreadable: {e}"))
        })?;
        let content = degrade(&content, &adapter.capabilities());
        // Unreadable, it must not pass for transactional (no unsubscribe link).
        let purpose = relais_core::consent::Purpose::parse(&message.purpose).map_err(|e| {
            SendError::permanent("bad_purpose", format!("stored purpose is unreadable: {e}"))
        })?;
        Ok((
            adapter,
            OutboundMessage {
                message_id: message.id.clone(),
                tenant_id: message.tenant_id.clone(),
                channel: kind,
                to: message.to_address.clone(),
                from: message.sender.clone(),
                content,
                purpose,
                human_agent_since: message.human_agent_since,
                attempt: item.attempts + 1,
                now: self.clock.now(),
            },
            paced,
        ))
    }

    /// The adapter that sends on `channel` (a configured channel's id or a channel kind),
    /// its kind, and whether it paces itself.
    pub(super) fn adapter_of(
        &self,
        channel: &str,
    ) -> Result<(ChannelKind, Arc<dyn ChannelAdapter>, bool), SendError> {
        if let Some(adapter) = self.registry.get(channel) {
            return Ok((adapter.kind(), adapter, true));
        }
        let kind: ChannelKind = channel.parse().map_err(|_| {
            SendError::permanent(
                "unknown_channel",
                format!("channel `{channel}` is not known"),
            )
        })?;
        let adapter = self.adapters.get(&kind).cloned().ok_or_else(|| {
            SendError::permanent(
                "channel_not_configured",
                format!("no `{kind}` channel is configured on this server"),
            )
        })?;
        Ok((kind, adapter, false))
    }

    /// Takes a token from the channel kind's bucket (`None` for a channel that paces
    /// itself) and from the message's sender's at `sender_rate` (`None`: not paced), or
    /// says when both will have one.
    pub(super) fn take_token(
        &self,
        kind: Option<ChannelKind>,
        message: &Message,
        sender_rate: Option<f64>,
        now: Timestamp,
    ) -> Result<(), Timestamp> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Buckets { channels, senders } = &mut *buckets;
        let channel = kind.map(|kind| {
            let rate = self.rate_of(kind);
            channels
                .entry(kind)
                .or_insert_with(|| Bucket::new(rate, now))
        });
        let sender = message
            .sender
            .as_ref()
            .zip(sender_rate)
            .map(|(from, rate)| {
                // Per tenant: two tenants may name the same sender at different rates.
                let bucket = senders
                    .entry((
                        message.tenant_id.clone(),
                        message.channel.clone(),
                        from.clone(),
                    ))
                    .or_insert_with(|| Bucket::new(rate, now));
                // An operator may have changed the rate since the bucket was made.
                bucket.set_rate(rate);
                bucket
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
            bucket.take();
        }
        Ok(())
    }

    /// Messages per second the dispatcher allows `sender` of `tenant` now: the tenant's
    /// settings (`/v1/settings` `sender_rates`, read through the store's configuration
    /// cache, so a change applies within a second and without a restart) over the
    /// server's (`RELAIS_SENDER_RATE(S)`); `None` leaves the sender unpaced.
    pub async fn sender_rate_of(&self, tenant: &str, sender: &str) -> Option<f64> {
        let tenant_rates = match crate::settings::sender_rates_of(&*self.store, tenant).await {
            Ok(rates) => rates,
            // One tenant's unreadable setting must not stop every tenant's sends: its
            // senders go at the server's rates, and the log says why.
            Err(e) => {
                tracing::warn!(tenant, error = %e, "sender rates unreadable; the server's apply");
                relais_core::sender_rates::SenderRates::default()
            }
        };
        tenant_rates.rate_of(sender).or_else(|| {
            self.config
                .sender_rates
                .get(sender)
                .copied()
                .or(self.config.sender_rate)
        })
    }

    /// Messages per second of a channel kind the dispatcher paces.
    pub(super) fn rate_of(&self, kind: ChannelKind) -> f64 {
        self.config
            .rates
            .get(&kind)
            .copied()
            .unwrap_or(self.config.default_rate)
    }

    /// Tokens the kind's bucket holds now (how many of its messages to claim).
    pub(super) fn tokens_of(&self, kind: ChannelKind, now: Timestamp) -> usize {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let rate = self.rate_of(kind);
        buckets
            .channels
            .entry(kind)
            .or_insert_with(|| Bucket::new(rate, now))
            .available(now)
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
        let (within, awaited) = match chain.steps().get(step).map(|s| s.move_on) {
            Some(MoveOn::NotDeliveredWithin(w)) => (w, "delivered"),
            Some(MoveOn::NotReadWithin(w)) => (w, "read"),
            _ => (SignedDuration::ZERO, "delivered"),
        };
        let started_at = item.due_at.checked_sub(within).unwrap_or(item.due_at);
        match chain.decide(&Self::attempts(item, item.message.status, started_at), now) {
            FallbackDecision::Start { step } => {
                let waited = MessageEvent::new(item.message.status, now)
                    .channel(item.message.channel.as_str())
                    .reason("fallback_timeout")
                    .detail(format!("not {awaited} within {within:#}"));
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
pub(super) async fn next_step(
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

/// [`next_step`], or, when no step is left, the events of the steps skipped for consent or
/// a closed customer-service window:
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
    let mut wrote: Option<Vec<LastInbound>> = None;
    let mut addresses = StepAddresses::new(store, message).await?;
    let mut address = message.to_address.clone();
    while let Some(candidate) = chain.steps().get(step) {
        let Some(kind) = step_kind(store, &message.tenant_id, &candidate.channel).await? else {
            break;
        };
        match addresses.on(kind).await? {
            Some(found) => address = found,
            None => {
                skipped.push(
                    MessageEvent::new(MessageStatus::Rejected, now)
                        .channel(kind.as_str())
                        .reason("no_address")
                        .detail(format!(
                            "fallback skipped: the contact has no address on `{kind}`"
                        )),
                );
                step += 1;
                continue;
            }
        }
        let decision = may_send(&ledger, kind, &purpose);
        if !decision.allowed {
            skipped.push(
                MessageEvent::new(MessageStatus::Rejected, now)
                    .channel(kind.as_str())
                    .reason(decision.code)
                    .detail(format!("fallback skipped: {}", decision.explanation)),
            );
            step += 1;
            continue;
        }
        match closed_window(store, message, kind, &candidate.channel, now, &mut wrote).await? {
            Some(detail) => {
                skipped.push(
                    MessageEvent::new(MessageStatus::Rejected, now)
                        .channel(kind.as_str())
                        .reason("window_closed")
                        .detail(format!("fallback skipped: {detail}")),
                );
                step += 1;
            }
            None => break,
        }
    }
    let Some(next) = chain.steps().get(step) else {
        return Ok(Err(skipped));
    };
    let kind = step_kind(store, &message.tenant_id, &next.channel).await?;
    // A step naming a kind goes out on the tenant's channel of that kind that its routing
    // rules give this message (the sandbox's kind, with none configured, on its adapter).
    let mut channel = next.channel.clone();
    if let Ok(named) = next.channel.parse::<ChannelKind>() {
        let accounts = Accounts::load(store, &message.tenant_id, named).await?;
        if let Some(first) = accounts.order(&address, &message.id).into_iter().next() {
            channel = first;
        }
    }
    let mut events = events;
    events.extend(skipped);
    Ok(step_move(message, step, channel, address, kind, events, now).ok_or_else(Vec::new))
}

/// Where a message moving along its chain is sent on each step's channel: to the address
/// it has while that reaches the channel (one phone number on every phone channel), else
/// to its contact's own address there (their phone number after a push subscription). The
/// contact is read once, and only when a step needs another kind of address.
struct StepAddresses<'s> {
    store: &'s dyn Store,
    message: &'s Message,
    current: Option<relais_core::contact::Identity>,
    contact: Option<Option<relais_core::contact::Contact>>,
}

impl<'s> StepAddresses<'s> {
    async fn new(store: &'s dyn Store, message: &'s Message) -> Result<Self, StoreError> {
        let current = step_kind(store, &message.tenant_id, &message.channel)
            .await?
            .map(|channel| relais_core::contact::Identity {
                channel,
                address: message.to_address.clone(),
            });
        Ok(Self {
            store,
            message,
            current,
            contact: None,
        })
    }

    async fn on(&mut self, kind: ChannelKind) -> Result<Option<String>, StoreError> {
        if let Some(current) = self.current.as_ref().filter(|c| c.reaches_on(kind)) {
            return Ok(Some(current.address.clone()));
        }
        if self.contact.is_none() {
            self.contact = Some(match &self.message.contact_id {
                Some(id) => self.store.contact(&self.message.tenant_id, id).await?,
                None => None,
            });
        }
        Ok(self
            .contact
            .iter()
            .flatten()
            .find_map(|contact| contact.address_on(kind))
            .map(str::to_owned))
    }
}

/// Why the message may not go on `kind` now: a free-form message whose customer-service
/// window there is closed. The accept path judged the window for every step; a chain that
/// moves on later looks again, since time has passed (when the contact last wrote is read
/// once per move, into `wrote`).
async fn closed_window(
    store: &dyn Store,
    message: &Message,
    kind: ChannelKind,
    channel: &str,
    now: Timestamp,
    wrote: &mut Option<Vec<LastInbound>>,
) -> Result<Option<String>, StoreError> {
    let caps = ChannelCapabilities::for_kind(kind);
    let Some(hours) = caps.service_window_hours else {
        return Ok(None);
    };
    let free_form = serde_json::from_value::<Content>(message.content.clone())
        .map(|content| !matches!(degrade(&content, caps).body, Body::Template(_)))
        .unwrap_or(true);
    if !free_form {
        return Ok(None);
    }
    let last = match &message.contact_id {
        Some(contact) => {
            if wrote.is_none() {
                *wrote = Some(
                    store
                        .last_inbound_at(&message.tenant_id, &[contact.as_str()])
                        .await?,
                );
            }
            wrote
                .iter()
                .flatten()
                .find(|l| l.channel == kind)
                .map(|l| l.at)
        }
        None => None,
    };
    // A human agent's reply keeps the channel's longer agent window (`human_agent_since`
    // is set only where the configured channel allows it).
    let human_agent = message.human_agent_since.is_some();
    let open = if human_agent {
        caps.allows_human_agent_reply(last, now)
    } else {
        caps.allows_free_form(last, now)
    };
    if open {
        return Ok(None);
    }
    let hours = match caps.human_agent_window_hours {
        Some(agent_hours) if human_agent => agent_hours,
        _ => hours,
    };
    let since = match last {
        Some(at) => format!("the contact last wrote on {kind} at {at}"),
        None => format!("the contact never wrote on {kind}"),
    };
    Ok(Some(format!(
        "the {hours} h customer-service window of `{channel}` is closed ({since}): outside it only a template may be sent"
    )))
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
    step: usize,
    channel: String,
    to_address: String,
    kind: Option<ChannelKind>,
    mut events: Vec<MessageEvent>,
    now: Timestamp,
) -> Option<(StepMove, Vec<MessageEvent>)> {
    let content: Option<Content> = serde_json::from_value(message.content.clone()).ok();
    let segments = match (kind, &content) {
        (Some(kind), Some(content)) => crate::send::segments_for(content, kind),
        _ => None,
    };
    events.push(
        MessageEvent::new(MessageStatus::Queued, now)
            .channel(channel.as_str())
            .reason("fallback")
            .detail(format!(
                "falling back from `{}` to `{channel}`",
                message.channel
            )),
    );
    Some((
        StepMove {
            step: i64::try_from(step).unwrap_or(i64::MAX),
            channel,
            to_address,
            content: message.content.clone(),
            segments,
        },
        events,
    ))
}
