//! The engine's Prometheus counters, named here once so that `docs/metrics.md` has one
//! place to match: messages given a status, receipts, and the outbox's depth. (Inbound
//! messages, webhook deliveries and link clicks are counted where they happen.)
//!
//! Counters are bumped only after the store committed what they count, so a round written
//! again after a store failure is not counted twice.

use relais_store::{MessageEvent, NewMessage, Settlement};

/// `relais_messages_total{channel, status}`: a message was given `status` on `channel`.
pub const MESSAGES: &str = "relais_messages_total";
/// `relais_receipts_total{channel, status}`: a provider's delivery receipt came in.
pub const RECEIPTS: &str = "relais_receipts_total";
/// `relais_outbox_ready`: outbox rows due now and not leased (work waiting for a worker).
pub const OUTBOX_READY: &str = "relais_outbox_ready";

/// Channel of an event, `unknown` when it names none.
fn channel_of(event: &MessageEvent) -> String {
    event.channel.clone().unwrap_or_else(|| "unknown".into())
}

/// Messages stored by the accept path: each with the status it was accepted in
/// (`queued`, `scheduled` or `rejected`).
pub fn count_accepted<'m>(messages: impl IntoIterator<Item = &'m NewMessage>) {
    for message in messages {
        metrics::counter!(MESSAGES, "channel" => message.channel.clone(), "status" => message.status.as_str())
            .increment(1);
    }
}

/// A round of outcomes written: each settlement's status, and each receipt.
pub fn count_round(settlements: &[(String, Settlement)], receipts: &[(String, MessageEvent)]) {
    for (_, settlement) in settlements {
        if let Some(event) = &settlement.status {
            metrics::counter!(MESSAGES, "channel" => channel_of(event), "status" => event.status.as_str())
                .increment(1);
        }
    }
    for (_, event) in receipts {
        count_receipt(event);
    }
}

/// One receipt applied (from a channel's events or a provider's status webhook).
pub fn count_receipt(event: &MessageEvent) {
    let channel = channel_of(event);
    metrics::counter!(RECEIPTS, "channel" => channel.clone(), "status" => event.status.as_str())
        .increment(1);
    metrics::counter!(MESSAGES, "channel" => channel, "status" => event.status.as_str())
        .increment(1);
}
