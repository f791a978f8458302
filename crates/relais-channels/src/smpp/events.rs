//! An SMPP client's events as the channel's: receipts folded per message and turned into
//! status reports, MO messages into inbound messages. A part's `deliver_sm` is confirmed
//! only with its message's outcome (a part's state is not stored on its own, so a crash
//! makes the SMSC deliver those receipts again).

use crate::configured::{ChannelEvent, ChannelEvents, ChannelIdentity};
use crate::event::{Confirm, MessageRef, NewInbound, StatusReport};
use async_trait::async_trait;
use relais_core::channel::ChannelKind;
use relais_core::status::MessageStatus;
use relais_smpp::{
    Ack, ClientEvents, InboundMessage, MessageOutcome, Receipt, ReceiptState, SmppEvent,
    message_outcome,
};
use std::collections::HashMap;
use std::sync::Arc;

/// Messages whose parts' receipts are awaited at once, per channel; past it the oldest
/// half is forgotten (those messages stay `sent`) rather than growing without bound.
const MAX_PENDING_PARTS: usize = 200_000;

/// Events read from the binds are handed over this many at a time at most: the engine
/// writes a burst's receipts together, and takes its MO messages as one group.
const BURST: usize = 1000;

/// The engine status a part's final receipt state means (`None` for intermediate states).
fn status_of(state: ReceiptState) -> Option<MessageStatus> {
    match state {
        ReceiptState::Delivered => Some(MessageStatus::Delivered),
        ReceiptState::Undeliverable | ReceiptState::Unknown | ReceiptState::Deleted => {
            Some(MessageStatus::Undelivered)
        }
        ReceiptState::Expired => Some(MessageStatus::Expired),
        ReceiptState::Rejected => Some(MessageStatus::Rejected),
        ReceiptState::Accepted | ReceiptState::Enroute => None,
    }
}

/// The latest state of each part of the multi-part messages still waiting for receipts,
/// with the acknowledgements of the parts' `deliver_sm`: they are confirmed only once the
/// message's outcome is stored (a part's state is not stored on its own, so a crash makes
/// the SMSC deliver those receipts again).
#[derive(Default)]
struct PartStates {
    pending: HashMap<Arc<str>, PendingParts>,
}

/// Each part's latest state (by index) and the acknowledgements held back for them.
type PendingParts = (Vec<Option<ReceiptState>>, Vec<Ack>);

impl PartStates {
    /// Records a part's state; the message's outcome once it is decided, with the
    /// acknowledgements of all its parts.
    fn record(
        &mut self,
        reference: &Arc<str>,
        index: u8,
        total: u8,
        state: ReceiptState,
        ack: Ack,
    ) -> (MessageOutcome, Vec<Ack>) {
        let total = usize::from(total.max(1));
        if self.pending.len() >= MAX_PENDING_PARTS {
            // Forgotten without being confirmed: the SMSC delivers them again.
            let drop: Vec<Arc<str>> = self
                .pending
                .keys()
                .take(MAX_PENDING_PARTS / 2)
                .cloned()
                .collect();
            for key in drop {
                self.pending.remove(&key);
            }
        }
        let (parts, acks) = self
            .pending
            .entry(reference.clone())
            .or_insert_with(|| (vec![None; total], Vec::new()));
        if let Some(slot) = parts.get_mut(usize::from(index.saturating_sub(1))) {
            *slot = Some(state);
        }
        acks.push(ack);
        let known: Vec<ReceiptState> = parts.iter().flatten().copied().collect();
        let outcome = message_outcome(total, &known);
        if outcome == MessageOutcome::Pending {
            return (outcome, Vec::new());
        }
        let acks = self
            .pending
            .remove(reference)
            .map(|(_, acks)| acks)
            .unwrap_or_default();
        (outcome, acks)
    }
}

/// The events of one SMPP channel.
pub(super) struct SmppEvents {
    identity: ChannelIdentity,
    client: ClientEvents,
    parts: PartStates,
}

impl SmppEvents {
    pub(super) fn new(identity: ChannelIdentity, client: ClientEvents) -> Self {
        SmppEvents {
            identity,
            client,
            parts: PartStates::default(),
        }
    }

    /// The channel's event for a receipt, if one is due yet.
    fn on_receipt(&mut self, receipt: Receipt, ack: Ack) -> Option<ChannelEvent> {
        let detail = match &receipt.error {
            Some(err) => format!(
                "SMSC receipt {} stat {} err {err}",
                receipt.message_id,
                receipt.state.stat()
            ),
            None => format!(
                "SMSC receipt {} stat {}",
                receipt.message_id,
                receipt.state.stat()
            ),
        };
        let report = |message, status| StatusReport {
            tenant_id: self.identity.tenant_id.clone(),
            channel_id: self.identity.id.clone(),
            message,
            status,
            // The SMSC's `done date` has no zone and minute precision: the engine's clock.
            at: None,
            detail: Some(detail.clone()),
            address_gone: false,
        };
        let Some(part) = &receipt.part else {
            // Not correlated (sent before a restart, or held too long): the id is the
            // first part's only for single-part messages, which is the best that can be
            // done.
            let Some(status) = status_of(receipt.state) else {
                ack.confirm();
                return None;
            };
            let report = report(MessageRef::Provider(receipt.message_id.clone()), status);
            return Some(ChannelEvent::Status(report, confirming(vec![ack])));
        };
        let (outcome, acks) = if part.total <= 1 {
            (message_outcome(1, &[receipt.state]), vec![ack])
        } else {
            self.parts
                .record(&part.reference, part.index, part.total, receipt.state, ack)
        };
        let status = match outcome {
            MessageOutcome::Pending if part.total <= 1 => {
                Ack::confirm_all(acks);
                return None;
            }
            MessageOutcome::Pending => return None,
            MessageOutcome::Delivered => MessageStatus::Delivered,
            MessageOutcome::Failed(state) => status_of(state).unwrap_or(MessageStatus::Undelivered),
        };
        // The reference is the id of a message this channel submitted.
        let report = report(MessageRef::Ours(part.reference.to_string()), status);
        Some(ChannelEvent::Status(report, confirming(acks)))
    }

    fn on_inbound(&self, mo: InboundMessage, ack: Ack) -> ChannelEvent {
        let message = NewInbound {
            answers: Vec::new(),
            tenant_id: self.identity.tenant_id.clone(),
            channel: ChannelKind::Sms,
            channel_id: Some(self.identity.id.clone()),
            from: e164_or_raw(&mo.source),
            to: mo.destination,
            text: mo.text,
            // deliver_sm carries no message id for MO; the SMSC redelivers only on a lost
            // resp.
            payload: None,
            media: None,
            provider_id: None,
        };
        ChannelEvent::Inbound(message, confirming(vec![ack]))
    }
}

fn confirming(acks: Vec<Ack>) -> Confirm {
    Confirm::new(move || Ack::confirm_all(acks))
}

#[async_trait]
impl ChannelEvents for SmppEvents {
    async fn next_burst(&mut self) -> Option<Vec<ChannelEvent>> {
        loop {
            let first = self.client.recv().await?;
            let mut burst = vec![first];
            while burst.len() < BURST
                && let Some(next) = self.client.try_recv()
            {
                burst.push(next);
            }
            let mut events = Vec::with_capacity(burst.len());
            for event in burst {
                match event {
                    SmppEvent::Receipt(receipt, ack) => {
                        events.extend(self.on_receipt(receipt, ack))
                    }
                    SmppEvent::Inbound(mo, ack) => events.push(self.on_inbound(mo, ack)),
                    SmppEvent::Bind { bind, connected } => {
                        tracing::info!(channel = %self.identity.id, bind, connected, "SMPP bind state");
                    }
                }
            }
            if !events.is_empty() {
                return Some(events);
            }
        }
    }
}

/// An SMPP address as E.164 when it is a long number (`33612345678` → `+33612345678`);
/// short codes and alphanumeric senders stay as they are.
pub fn e164_or_raw(address: &str) -> String {
    if !address.starts_with('+') && address.len() > 6 && address.bytes().all(|b| b.is_ascii_digit())
    {
        format!("+{address}")
    } else {
        address.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_message_is_delivered_only_when_every_part_is_and_its_parts_are_acknowledged_then() {
        let mut parts = PartStates::default();
        let r: Arc<str> = Arc::from("m1");
        let (outcome, acks) = parts.record(&r, 1, 2, ReceiptState::Delivered, Ack::none());
        assert_eq!(outcome, MessageOutcome::Pending);
        assert!(
            acks.is_empty(),
            "the first part's receipt waits for the second"
        );
        let (outcome, acks) = parts.record(&r, 2, 2, ReceiptState::Delivered, Ack::none());
        assert_eq!(outcome, MessageOutcome::Delivered);
        assert_eq!(
            acks.len(),
            2,
            "both parts' receipts are acknowledged with the outcome"
        );
        let f: Arc<str> = Arc::from("m2");
        let (outcome, _) = parts.record(&f, 2, 3, ReceiptState::Undeliverable, Ack::none());
        assert_eq!(outcome, MessageOutcome::Failed(ReceiptState::Undeliverable));
        assert!(parts.pending.is_empty());
    }
}
