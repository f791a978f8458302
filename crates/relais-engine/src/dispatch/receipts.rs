//! Receipts that need their message: a provider's status report found by its provider id,
//! and a failure that moves a message to the next step of its fallback chain.

use super::DispatchError;
use super::decide::next_step;
use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::fallback::{Attempt, FallbackChain, FallbackDecision};
use relais_core::status::MessageStatus;
use relais_store::{Message, MessageEvent, Store};

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

/// The event a provider's report on a message sent on `channel` writes in its log.
pub fn receipt_event(
    status: MessageStatus,
    at: Timestamp,
    channel: &str,
    detail: Option<String>,
) -> MessageEvent {
    let event = MessageEvent::new(status, at)
        .channel(channel)
        .reason("receipt");
    match detail {
        Some(detail) => event.detail(detail),
        None => event,
    }
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
    let event = receipt_event(status, at, &message.channel, detail);
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
    let recorded = store.record_status(&message.id, &event).await?;
    crate::counters::count_receipt(&event);
    Ok(recorded)
}
