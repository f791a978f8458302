//! Failover between the channels of one kind: a message whose step names a channel kind
//! (`sms`) and whose channel cannot send (no live connection, a transport or temporary
//! error) moves at once to the next of the tenant's channels of that kind, in its routing
//! order ([`crate::routing`]), that takes its destination and can send now. The move is a
//! settlement like a fallback's, on the same step; the message's events show the hop.

use super::Dispatcher;
use crate::routing::Accounts;
use jiff::Timestamp;
use relais_channels::adapter::SendError;
use relais_core::channel::ChannelKind;
use relais_core::fallback::FallbackChain;
use relais_core::retry::ErrorClass;
use relais_core::status::MessageStatus;
use relais_store::{
    MessageEvent, OutboxItem, OutboxNext, OutboxPhase, Settlement, StepMove, StoreError,
};

impl Dispatcher {
    /// Where a message whose channel cannot send goes instead: when its step names a
    /// channel kind, the next of the tenant's channels of that kind, in the message's
    /// routing order ([`crate::routing`]), that takes its destination and can send now.
    /// `None` when its step names one channel, or no other channel can take it.
    pub(super) async fn fail_over_target(
        &self,
        item: &OutboxItem,
        chain: Option<&FallbackChain>,
    ) -> Result<Option<String>, StoreError> {
        let message = &item.message;
        let step = usize::try_from(message.step)
            .ok()
            .and_then(|step| chain?.steps().get(step));
        let Some(kind) = step.and_then(|step| step.channel.parse::<ChannelKind>().ok()) else {
            return Ok(None);
        };
        // Sent by the kind's own adapter (the sandbox): no other to go to.
        if message.channel == kind.as_str() {
            return Ok(None);
        }
        let accounts = Accounts::load(&*self.store, &message.tenant_id, kind).await?;
        let order = accounts.order(&message.to_address, &message.id);
        let after = order
            .iter()
            .position(|id| *id == message.channel)
            .map_or(0, |at| at + 1);
        Ok(order.into_iter().skip(after).find(|id| {
            *id != message.channel
                && self
                    .registry
                    .get(id)
                    .is_some_and(|adapter| adapter.is_ready())
        }))
    }

    /// Whether the messages of `lane`, whose channel cannot send, may have somewhere else
    /// to go: another configured channel of its kind can send now. Only then are they
    /// claimed (to fail over, or to wait in the outbox again when theirs is the only
    /// channel that takes them); otherwise they stay in the outbox untouched.
    pub(super) fn may_fail_over(&self, lane: &str) -> bool {
        let Some(adapter) = self.registry.get(lane) else {
            return false;
        };
        let kind = adapter.kind();
        self.registry.ids().iter().any(|id| {
            id != lane
                && self
                    .registry
                    .get(id)
                    .is_some_and(|other| other.kind() == kind && other.is_ready())
        })
    }
}

/// Why a message claimed from a lane whose channel is not ready was not sent.
pub(super) fn unavailable() -> SendError {
    SendError::not_sent(
        "channel_unavailable",
        "the channel has no live connection to its provider",
    )
}

/// The settlement of a message that moves from its channel, which could not send it, to
/// `next`, another channel of the same kind: sent from there at once, its attempts
/// counted afresh, and both ends of the hop in its events.
pub(super) fn failed_over(
    item: &OutboxItem,
    error: &SendError,
    next: String,
    now: Timestamp,
) -> Settlement {
    let message = &item.message;
    let mut left = MessageEvent::new(MessageStatus::Sending, now)
        .channel(message.channel.as_str())
        .reason(error.code.clone())
        .detail(format!("{}; failing over to `{next}`", error.reason));
    if error.class != ErrorClass::NotSent {
        left = left.attempt(item.attempts + 1);
    }
    let mut s = Settlement::new(OutboxNext::Reschedule {
        due_at: now,
        phase: OutboxPhase::Send,
        attempts: 0,
    });
    s.events.push(left);
    s.events.push(
        MessageEvent::new(MessageStatus::Queued, now)
            .channel(next.as_str())
            .reason("failover")
            .detail(format!(
                "failing over from `{}` to `{next}`, which takes this destination too",
                message.channel
            )),
    );
    s.move_to = Some(StepMove {
        step: message.step,
        channel: next,
        to_address: message.to_address.clone(),
        content: message.content.clone(),
        segments: message.segments,
    });
    s
}
