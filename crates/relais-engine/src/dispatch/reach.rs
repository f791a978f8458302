//! The business-initiated budget of a channel whose adapter gives a [`RecipientLimit`]
//! (WhatsApp's messaging limit: so many distinct customers per moving 24 h).
//!
//! - A message is business-initiated when it goes out as a provider template to a
//!   recipient outside their customer-service window on the channel's kind; nothing else
//!   counts.
//! - It goes while the channel messaged fewer than `limit` distinct recipients in the
//!   window, or when its recipient is already one of them (they are not counted again).
//!   Otherwise it waits in the outbox, no attempt spent and an event saying why, until the
//!   recipient messaged longest ago leaves the window. It is never failed for the limit.
//! - The count lives in the store (`channel_reach`), so a restart keeps it. A recipient is
//!   recorded before the send (a send that then fails still counts: waiting too early is
//!   better than being refused). Check and record happen under one lock per dispatcher, so
//!   two lanes never both take the last place; several nodes sharing a store may overshoot
//!   by the sends they decide at the same instant.
//! - A waiting message is told why once: when a place frees, every message waiting for it
//!   is looked at again and all but one wait once more, and a campaign of thousands would
//!   otherwise grow each message's log (rewritten with its row) at every place that frees.

use super::{DispatchError, Dispatcher};
use jiff::Timestamp;
use relais_channels::adapter::RecipientLimit;
use relais_core::channel::ChannelKind;
use relais_core::content::{Body, ChannelCapabilities, Content};
use relais_core::status::MessageStatus;
use relais_store::{MessageEvent, OutboxItem, OutboxNext, OutboxPhase, Settlement};
use std::collections::HashSet;

/// Waiting messages remembered as told at most; past it the memory starts again (a
/// message canceled while waiting is never forgotten otherwise), at the cost of one more
/// event each.
const TOLD_AT_MOST: usize = 100_000;

/// What the dispatcher keeps between checks: the lock under which a place is checked and
/// taken, and the messages already told they wait.
#[derive(Default)]
pub(super) struct Places {
    told: tokio::sync::Mutex<HashSet<String>>,
}

/// The `reason` of the event a message waiting for the limit gets.
pub const MESSAGING_LIMIT: &str = "messaging_limit";

impl Dispatcher {
    /// `None` when the message may go now (and, if business-initiated, its recipient is
    /// counted); otherwise the settlement that makes it wait.
    pub(super) async fn within_limit(
        &self,
        item: &OutboxItem,
        kind: ChannelKind,
        content: &Content,
        limit: RecipientLimit,
        now: Timestamp,
    ) -> Result<Option<Settlement>, DispatchError> {
        if !matches!(content.body, Body::Template(_))
            || self.in_service_window(item, kind, now).await?
        {
            return Ok(None);
        }
        let message = &item.message;
        let since = now.checked_sub(limit.window).unwrap_or(Timestamp::MIN);
        let mut told = self.places.told.lock().await;
        let reach = self
            .store
            .reach_since(
                &message.tenant_id,
                &message.channel,
                &message.to_address,
                since,
            )
            .await?;
        if reach.recipient.is_none() && reach.recipients >= limit.recipients {
            let due_at = reach
                .oldest
                .and_then(|oldest| oldest.checked_add(limit.window).ok())
                .filter(|at| *at > now)
                .unwrap_or(now);
            let mut s = Settlement::new(OutboxNext::Reschedule {
                due_at,
                phase: OutboxPhase::Send,
                attempts: item.attempts,
            });
            if told.len() >= TOLD_AT_MOST {
                told.clear();
            }
            if !told.insert(message.id.clone()) {
                return Ok(Some(s));
            }
            s.events.push(
                MessageEvent::new(MessageStatus::Queued, now)
                    .channel(message.channel.as_str())
                    .reason(MESSAGING_LIMIT)
                    .detail(format!(
                        "`{}` started conversations with {} of its {} customers allowed in {:#}: this business-initiated message waits until {due_at}, when a place frees",
                        message.channel, reach.recipients, limit.recipients, limit.window
                    )),
            );
            return Ok(Some(s));
        }
        told.remove(&message.id);
        self.store
            .record_reach(
                &message.tenant_id,
                &message.channel,
                &message.to_address,
                now,
                since,
            )
            .await?;
        Ok(None)
    }

    /// Whether the message's contact wrote on `kind` recently enough for its
    /// customer-service window to be open (then the message is not business-initiated).
    async fn in_service_window(
        &self,
        item: &OutboxItem,
        kind: ChannelKind,
        now: Timestamp,
    ) -> Result<bool, DispatchError> {
        let caps = ChannelCapabilities::for_kind(kind);
        if caps.service_window_hours.is_none() {
            return Ok(false);
        }
        let Some(contact) = &item.message.contact_id else {
            return Ok(false);
        };
        let last = self
            .store
            .last_inbound_at(&item.message.tenant_id, &[contact.as_str()])
            .await?
            .into_iter()
            .find(|l| l.channel == kind)
            .map(|l| l.at);
        Ok(last.is_some() && caps.allows_free_form(last, now))
    }
}
