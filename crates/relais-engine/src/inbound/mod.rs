//! What customers write: every channel's inbound path (SMPP `deliver_sm`, provider
//! webhooks, simulated phones) hands one normalised message to
//! [`InboundPipeline::receive`], and nothing else changes from one channel to another:
//!
//! 1. the sender's address is read in its channel's canonical form, and the contact that
//!    owns it found (created when nobody does); a message that answers one the channel
//!    sent (an e-mail's `In-Reply-To`) is that message's contact's instead ([`thread`]);
//! 2. the message is stored once per (channel, provider id): a redelivery stops here;
//! 3. keywords (STOP, START, HELP…) are carried out, with exactly one reply;
//! 4. the message is placed in the contact's one conversation (created, or reopened when
//!    resolved; a keyword does not reopen it);
//! 5. NLU annotates it (language, intent, sentiment, urgency);
//! 6. the bot takes its turn, or the help desk queues the conversation for a human;
//! 7. the tenant's webhooks get a `message.received` event, and so does its live event
//!    stream (once per message, keyed by its id), and it is marked processed.
//!
//! Messages that arrive together go through together ([`lanes`]): each step is one
//! store operation for the whole group (one insert, one contact look-up, one
//! conversation upsert, one flow-session read, one accept of the bot's answers, one
//! event append, one mark), not one per message. A sender's messages keep their order.
//! The messages of a tenant whose flows call out (an `http` or `answer` node, which may
//! wait seconds) go through one by one instead, each on its own, so that a slow CRM holds
//! up no other customer.
//!
//! Each step after the store is idempotent, and a message whose run a crash cut short is
//! taken up again by [`InboundPipeline::resume_unfinished`] (the server runs it at start
//! and every few seconds): nothing stored is lost, and the customer sees nothing twice
//! (a reply is keyed by the message's id). When classification fails the message goes on
//! unannotated, and the failure is logged.

mod choices;
mod lanes;
mod steps;
mod thread;

use crate::agents::Desk;
use crate::events::Events;
use crate::flows::{Flows, FlowsError};
use crate::handoff::Handoff;
use crate::nlu::{Classification, NluService};
use crate::send::AcceptContext;
use jiff::SignedDuration;
use relais_core::channel::ChannelKind;
use relais_core::clock::Clock;
use relais_core::contact::{AddressRules, normalize_address};
use relais_store::{InboundMessage, Store, StoreError};
use std::sync::{Arc, OnceLock};

/// Longest text accepted, in bytes: above any channel's limit (a concatenated SMS of 255
/// parts is under 40 kB), so only garbage is refused.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// A message left unfinished this long is taken to be stopped by a crash, not in progress.
pub const UNFINISHED_AFTER: SignedDuration = SignedDuration::from_secs(30);

/// The type of the webhook event an inbound message sends the tenant's application.
pub const MESSAGE_RECEIVED: &str = "message.received";

/// Messages taken up per round of [`InboundPipeline::resume_unfinished`].
const RESUME_BATCH: u32 = 500;

pub use relais_channels::NewInbound;

#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub message: InboundMessage,
    /// `true` when the provider id was already known: nothing was stored or classified.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A flow's turn could not be taken (its world failed it); tried again later.
    #[error("the bot's turn failed: {0}")]
    Flow(String),
}

fn flow_error(e: FlowsError) -> InboundError {
    match e {
        FlowsError::Store(e) => InboundError::Store(e),
        other => InboundError::Flow(other.to_string()),
    }
}

/// The inbound pipeline of a server: cheap to share (`Arc`).
pub struct InboundPipeline {
    core: Arc<Core>,
    /// Started by the first message (they need the runtime); builders start them over.
    lanes: OnceLock<lanes::Lanes>,
}

/// What every step of the pipeline works with; shared by the lanes.
#[derive(Clone)]
struct Core {
    store: Arc<dyn Store>,
    nlu: Arc<NluService>,
    clock: Arc<dyn Clock>,
    /// How replies (keyword confirmations, the bot's answers) are accepted for sending.
    rules: AddressRules,
    configured: Vec<ChannelKind>,
    handoff: Option<Handoff>,
    flows: Arc<Flows>,
    /// The live event stream, when the server has one.
    events: Option<Events>,
    /// Where conversations that wait for a human go.
    desk: Desk,
}

impl Core {
    fn accept_context(&self, now: jiff::Timestamp) -> AcceptContext<'_> {
        AcceptContext {
            store: &self.store,
            rules: self.rules,
            now,
            configured: &self.configured,
            // A reply is never refused for want of a channel of its kind: it is stored in
            // the conversation, and the dispatcher fails it with its reason
            // (`channel_not_configured`) when nothing can send it. Refused, the customer's
            // message would be taken up again and again.
            built_in: &ChannelKind::ALL,
            handoff: self.handoff.as_ref(),
            links: None,
        }
    }
}

impl InboundPipeline {
    /// `rules`, `configured` and `handoff` are those of the server's accept path, which
    /// sends the pipeline's replies.
    pub fn new(
        store: Arc<dyn Store>,
        nlu: Arc<NluService>,
        clock: Arc<dyn Clock>,
        rules: AddressRules,
        configured: Vec<ChannelKind>,
        handoff: Option<Handoff>,
    ) -> Self {
        let flows = Arc::new(Flows::new(
            store.clone(),
            nlu.clone(),
            clock.clone(),
            crate::webhooks::process_destinations(),
        ));
        let desk = Desk::new(store.clone(), clock.clone(), None);
        InboundPipeline {
            core: Arc::new(Core {
                store,
                nlu,
                clock,
                rules,
                configured,
                handoff,
                flows,
                events: None,
                desk,
            }),
            lanes: OnceLock::new(),
        }
    }

    /// The core to change while building; lanes started with the old one stop.
    fn core_mut(&mut self) -> &mut Core {
        self.lanes = OnceLock::new();
        Arc::make_mut(&mut self.core)
    }

    /// The addresses the `http` nodes of flows may call (public ones only by default, as
    /// webhooks).
    pub fn with_flow_destinations(mut self, destinations: crate::webhooks::Destinations) -> Self {
        let core = self.core_mut();
        core.flows = Arc::new(Flows::new(
            core.store.clone(),
            core.nlu.clone(),
            core.clock.clone(),
            destinations,
        ));
        self
    }

    /// Publishes each message's `message.received` on the live event stream too.
    pub fn with_events(mut self, events: Events) -> Self {
        let core = self.core_mut();
        core.desk = Desk::new(core.store.clone(), core.clock.clone(), Some(events.clone()));
        core.events = Some(events);
        self
    }

    /// The help desk the pipeline hands waiting conversations to.
    pub fn desk(&self) -> &Desk {
        &self.core.desk
    }

    pub fn nlu(&self) -> &Arc<NluService> {
        &self.core.nlu
    }

    /// The tenant's bot flows.
    pub fn flows(&self) -> &Arc<Flows> {
        &self.core.flows
    }

    /// Stores a message (once per provider id) and takes it through the pipeline, with
    /// the messages that arrive meanwhile.
    pub async fn receive(&self, msg: NewInbound) -> Result<Received, InboundError> {
        // Without a sender, only an answer to a message Relais sent can be placed: it
        // comes from where that message went (a push notification's button).
        if msg.from.trim().is_empty() && msg.answers.is_empty() {
            return Err(InboundError::Invalid("the sender address is empty".into()));
        }
        if msg.text.len() > MAX_TEXT_BYTES {
            return Err(InboundError::Invalid(format!(
                "the text is longer than {MAX_TEXT_BYTES} bytes"
            )));
        }
        self.lanes
            .get_or_init(|| lanes::Lanes::start(self.core.clone()))
            .receive(msg)
            .await
    }

    /// Takes up the messages whose run a crash cut short (stored more than
    /// [`UNFINISHED_AFTER`] ago and not processed); how many were finished.
    pub async fn resume_unfinished(&self) -> Result<usize, StoreError> {
        let core = &self.core;
        let before = core.clock.now() - UNFINISHED_AFTER;
        let mut finished = 0;
        loop {
            let unfinished = core.store.unfinished_inbound(before, RESUME_BATCH).await?;
            let count = unfinished.len();
            let ids: Vec<String> = unfinished.iter().map(|m| m.id.clone()).collect();
            for (id, outcome) in ids.iter().zip(core.process(unfinished).await) {
                match outcome {
                    Ok(_) => finished += 1,
                    Err(e) => {
                        tracing::error!(message = %id, error = %e, "an inbound message could not be processed; trying again later");
                    }
                }
            }
            if finished == 0 || count < RESUME_BATCH as usize {
                return Ok(finished);
            }
        }
    }

    /// [`InboundPipeline::resume_unfinished`] at once, then every `every`, for as long as
    /// the task runs.
    pub async fn resume_forever(self: Arc<Self>, every: std::time::Duration) {
        loop {
            match self.resume_unfinished().await {
                Ok(0) => {}
                Ok(finished) => {
                    tracing::info!(
                        finished,
                        "inbound messages a stop had left midway were processed"
                    );
                }
                Err(e) => tracing::warn!(error = %e, "cannot look for unfinished inbound messages"),
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// The canonical address of a sender, or `None` when it is not valid for its channel.
///
/// Providers write phone numbers in international form without the `+` (SMPP MO
/// `source_addr` with TON international, WhatsApp `wa_id`), and inbound paths have no
/// default country to read national numbers with, so 8 to 15 digits not starting with 0
/// are taken as international.
pub fn sender_address(channel: ChannelKind, raw: &str) -> Option<String> {
    let raw = raw.trim();
    let international = raw.len() >= 8
        && raw.len() <= 15
        && !raw.starts_with('0')
        && raw.bytes().all(|b| b.is_ascii_digit());
    let candidate = if channel.is_phone_addressed() && international {
        format!("+{raw}")
    } else {
        raw.to_owned()
    };
    normalize_address(
        channel,
        &candidate,
        AddressRules {
            default_country: None,
        },
    )
    .ok()
}

/// What is stored as a message's annotations: the classification as `POST
/// /v1/nlu/classify` returns it (`model_version`, `language`, `intent`, `sentiment` with its
/// emotions, `urgency` with its cues).
fn annotations(classification: &Classification) -> serde_json::Value {
    serde_json::to_value(classification).unwrap_or_else(|e| {
        // Serialising plain structs of strings and numbers cannot fail but for a NaN score.
        tracing::error!(error = %e, "classification could not be serialised");
        serde_json::Value::Null
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smpp_numbers_without_plus_are_international() {
        assert_eq!(
            sender_address(ChannelKind::Sms, "33612345678").as_deref(),
            Some("+33612345678")
        );
        assert_eq!(
            sender_address(ChannelKind::Sms, "+33 6 12 34 56 78").as_deref(),
            Some("+33612345678")
        );
        assert_eq!(
            sender_address(ChannelKind::Sim, "0033612345678").as_deref(),
            Some("+33612345678")
        );
    }

    #[test]
    fn unreadable_senders_are_not_guessed() {
        // A national number needs a country the inbound path does not have.
        assert_eq!(sender_address(ChannelKind::Sms, "0612345678"), None);
        assert_eq!(sender_address(ChannelKind::Sms, "MYBANK"), None);
        // Non-phone channels keep their own rules.
        assert_eq!(
            sender_address(ChannelKind::Telegram, "123456789").as_deref(),
            Some("123456789")
        );
    }
}
