//! What a channel hands the engine: the messages customers wrote, the statuses its
//! provider reported and the consents people changed on the channel, each with the
//! confirmation its provider waits for.
//!
//! A channel never stores anything itself. It turns what its provider sent (a
//! `deliver_sm`, a webhook) into these values; the engine stores them and only then calls
//! [`Confirm::confirm`], so that a provider that waits for an answer (an SMSC waiting for
//! `deliver_sm_resp`, a webhook waiting for its 200) delivers again whatever a crash cut
//! short, and nothing is lost.

use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::status::MessageStatus;

/// A message as a channel received it, before the inbound pipeline reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInbound {
    pub tenant_id: String,
    pub channel: ChannelKind,
    /// The configured channel it arrived on, when there is one.
    pub channel_id: Option<String>,
    /// The sender as the provider wrote it.
    pub from: String,
    /// The number, short code or account it was sent to.
    pub to: String,
    pub text: String,
    /// The payload of the button, quick reply or suggestion the customer tapped, when they
    /// tapped one (`text` is then its title). A flow reads it the same way whichever
    /// channel it came from; on channels without buttons the engine finds it from a
    /// numbered answer.
    pub payload: Option<String>,
    /// The media the customer sent with it (a web chat visitor's uploaded image), already
    /// stored in the media store; `text` may then be empty.
    pub media: Option<relais_core::media::MediaRef>,
    /// The provider's id for the message; a redelivery with the same id is stored once.
    pub provider_id: Option<String>,
    /// The provider ids of messages this channel sent that this one answers, nearest
    /// first (e-mail's `In-Reply-To`, then its `References`); empty where the channel does
    /// not say. A message answering one the engine knows belongs to the conversation of
    /// that message's contact, whichever address it came from.
    pub answers: Vec<String>,
}

/// Which message a status is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageRef {
    /// Relais's own message id, which the provider carried back (a client reference).
    Ours(String),
    /// The id the provider gave the message when it took it; found through the send's
    /// acknowledgement.
    Provider(String),
    /// Every message the channel sent to `recipient` (an address of kind `kind`) before
    /// `before`: a provider's watermark, which names no message (Messenger's `read`).
    SentBefore {
        kind: ChannelKind,
        recipient: String,
        before: Timestamp,
    },
}

/// A person's consent, changed on the channel itself (they unsubscribed in the app, or
/// clicked an unsubscribe link), as the channel's provider reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentReport {
    pub tenant_id: String,
    pub channel: ChannelKind,
    /// The person's address on the channel.
    pub address: String,
    pub status: relais_core::consent::ConsentStatus,
    pub purpose: relais_core::consent::Purpose,
    /// What the provider said, kept as the ledger entry's proof. It names the provider's
    /// event (its time and ids), so that a redelivery of the same report is recorded once.
    pub proof: String,
}

/// A provider's report on a message a configured channel sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub tenant_id: String,
    /// The configured channel that sent the message.
    pub channel_id: String,
    pub message: MessageRef,
    pub status: MessageStatus,
    /// When the provider says it happened; `None` for when the engine receives it.
    pub at: Option<Timestamp>,
    /// What the provider said, for the message's event log.
    pub detail: Option<String>,
    /// The provider says the address will never work (an e-mail's hard bounce for an
    /// unknown mailbox): with a failure, the address leaves the message's contact, so
    /// that the next send on the channel is refused instead of bouncing again.
    pub address_gone: bool,
}

/// Called once what it came with is stored. Dropping it uncalled says it was not: the
/// provider delivers it again.
#[must_use = "an unconfirmed delivery is delivered again"]
pub struct Confirm(Option<Box<dyn FnOnce() + Send>>);

impl Confirm {
    pub fn new(on_stored: impl FnOnce() + Send + 'static) -> Self {
        Confirm(Some(Box::new(on_stored)))
    }

    /// For a provider that waits for nothing (a webhook already answered, a test).
    pub fn none() -> Self {
        Confirm(None)
    }

    pub fn confirm(mut self) {
        if let Some(on_stored) = self.0.take() {
            on_stored();
        }
    }
}

impl std::fmt::Debug for Confirm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Confirm(waiting)"
        } else {
            "Confirm(none)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_confirmation_runs_once_when_confirmed_and_never_when_dropped() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        Confirm::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .confirm();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let counted = calls.clone();
        drop(Confirm::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a dropped confirmation tells the provider nothing"
        );
    }
}
