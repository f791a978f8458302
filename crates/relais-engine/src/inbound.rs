//! What customers write: every channel's inbound path (SMPP `deliver_sm`, provider
//! webhooks, simulated phones) hands one normalised message to
//! [`InboundPipeline::receive`], and nothing else changes from one channel to another:
//!
//! 1. the sender's address is read in its channel's canonical form, and the contact that
//!    owns it found (created when nobody does);
//! 2. the message is stored once per (channel, provider id): a redelivery stops here;
//! 3. keywords (STOP, START, HELP…) are carried out, with exactly one reply;
//! 4. the message is placed in the contact's one conversation (created, or reopened when
//!    resolved; a keyword does not reopen it);
//! 5. NLU annotates it (language, intent, sentiment, urgency);
//! 6. the tenant's webhooks get a `message.received` event, and so does its live event
//!    stream (once per message, keyed by its id), and it is marked processed.
//!
//! Each step after the store is idempotent, and a message whose run a crash cut short is
//! taken up again by [`InboundPipeline::resume_unfinished`] (the server runs it at start
//! and every few seconds): nothing stored is lost, and the customer sees nothing twice
//! (a reply is keyed by the message's id). When classification fails the message goes on
//! unannotated, and the failure is logged.

use crate::agents::Desk;
use crate::events::{EventKind, Events};
use crate::flows::{Flows, FlowsError};
use crate::handoff::Handoff;
use crate::keywords::{KeywordError, carry_out, keywords_of};
use crate::nlu::{Classification, NluService};
use crate::send::{AcceptContext, AcceptError};
use jiff::SignedDuration;
use relais_core::channel::ChannelKind;
use relais_core::clock::Clock;
use relais_core::contact::{AddressRules, Identity, normalize_address};
use relais_core::conversation::ConversationState;
use relais_store::{InboundMessage, InboundPlacement, NewInboundMessage, Store, StoreError};
use std::sync::Arc;

/// Longest text accepted, in bytes: above any channel's limit (a concatenated SMS of 255
/// parts is under 40 kB), so only garbage is refused.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// A message left unfinished this long is taken to be stopped by a crash, not in progress.
pub const UNFINISHED_AFTER: SignedDuration = SignedDuration::from_secs(30);

/// The type of the webhook event an inbound message sends the tenant's application.
pub const MESSAGE_RECEIVED: &str = "message.received";

/// Messages taken up per round of [`InboundPipeline::resume_unfinished`].
const RESUME_BATCH: u32 = 500;

/// A message as a channel received it.
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
    /// The provider's id for the message; a redelivery with the same id is stored once.
    pub provider_id: Option<String>,
}

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
    store: Arc<dyn Store>,
    nlu: Arc<NluService>,
    clock: Arc<dyn Clock>,
    /// How replies (keyword confirmations) are accepted for sending.
    rules: AddressRules,
    configured: Vec<ChannelKind>,
    handoff: Option<Handoff>,
    flows: Arc<Flows>,
    /// The live event stream, when the server has one.
    events: Option<Events>,
    /// Where conversations that wait for a human go.
    desk: Desk,
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
        let (store_for_desk, clock_for_desk) = (store.clone(), clock.clone());
        InboundPipeline {
            store,
            nlu,
            clock,
            rules,
            configured,
            handoff,
            flows,
            events: None,
            desk: Desk::new(store_for_desk, clock_for_desk, None),
        }
    }

    /// The addresses the `http` nodes of flows may call (public ones only by default, as
    /// webhooks).
    pub fn with_flow_destinations(mut self, destinations: crate::webhooks::Destinations) -> Self {
        self.flows = Arc::new(Flows::new(
            self.store.clone(),
            self.nlu.clone(),
            self.clock.clone(),
            destinations,
        ));
        self
    }

    /// Publishes each message's `message.received` on the live event stream too.
    pub fn with_events(mut self, events: Events) -> Self {
        self.desk = Desk::new(self.store.clone(), self.clock.clone(), Some(events.clone()));
        self.events = Some(events);
        self
    }

    /// The help desk the pipeline hands waiting conversations to.
    pub fn desk(&self) -> &Desk {
        &self.desk
    }

    pub fn nlu(&self) -> &Arc<NluService> {
        &self.nlu
    }

    /// The tenant's bot flows.
    pub fn flows(&self) -> &Arc<Flows> {
        &self.flows
    }

    /// Stores a message (once per provider id) and takes it through the pipeline.
    pub async fn receive(&self, msg: NewInbound) -> Result<Received, InboundError> {
        if msg.from.trim().is_empty() {
            return Err(InboundError::Invalid("the sender address is empty".into()));
        }
        if msg.text.len() > MAX_TEXT_BYTES {
            return Err(InboundError::Invalid(format!(
                "the text is longer than {MAX_TEXT_BYTES} bytes"
            )));
        }
        let provider_id = msg
            .provider_id
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty());
        let store = &*self.store;
        let (from, known_address) = match sender_address(msg.channel, &msg.from) {
            Some(address) => (address, true),
            None => {
                // An address we cannot read (an alphanumeric sender, a malformed number)
                // still carries a customer's words: keep them under the raw address,
                // unattributed.
                tracing::warn!(
                    channel = %msg.channel,
                    from = %msg.from,
                    "inbound sender address is not valid for its channel; stored as received"
                );
                (msg.from.trim().to_owned(), false)
            }
        };
        let contact_id = if known_address {
            Some(self.contact_for(&msg.tenant_id, msg.channel, &from).await?)
        } else {
            None
        };
        let inserted = store
            .insert_inbound(&NewInboundMessage {
                id: relais_core::ids::new_id(),
                tenant_id: msg.tenant_id.clone(),
                channel: msg.channel,
                channel_id: msg.channel_id,
                from_address: from,
                to_address: msg.to.trim().to_owned(),
                contact_id,
                text: msg.text,
                provider_id,
                received_at: self.clock.now(),
            })
            .await?;
        if !inserted.created {
            // Its first run finishes it, or the resume sweep does after a crash.
            return Ok(Received {
                message: inserted.message,
                duplicate: true,
            });
        }
        let stored = inserted.message.clone();
        let message = match self.process(inserted.message).await {
            Ok(message) => message,
            // Stored: the sweep takes it up again once the bot's world is back.
            Err(InboundError::Flow(why)) => {
                tracing::warn!(message = %stored.id, error = %why, "the bot's turn failed; the message will be processed again");
                stored
            }
            Err(e) => return Err(e),
        };
        Ok(Received {
            message,
            duplicate: false,
        })
    }

    /// Takes up the messages whose run a crash cut short (stored more than
    /// [`UNFINISHED_AFTER`] ago and not processed); how many were finished.
    pub async fn resume_unfinished(&self) -> Result<usize, StoreError> {
        let before = self.clock.now() - UNFINISHED_AFTER;
        let mut finished = 0;
        loop {
            let unfinished = self.store.unfinished_inbound(before, RESUME_BATCH).await?;
            let count = unfinished.len();
            for message in unfinished {
                let id = message.id.clone();
                match self.process(message).await {
                    Ok(_) => finished += 1,
                    Err(e) => {
                        tracing::error!(message = %id, error = %e, "an inbound message could not be processed; trying again later");
                        return Ok(finished);
                    }
                }
            }
            if count < RESUME_BATCH as usize {
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

    /// Steps 3 to 6 of the pipeline, each idempotent.
    async fn process(&self, mut message: InboundMessage) -> Result<InboundMessage, InboundError> {
        let store = &*self.store;
        let tenant = message.tenant_id.clone();
        let now = self.clock.now();
        let mut keyword = false;
        let mut keyword_action: Option<&'static str> = None;
        if let Some(contact_id) = message.contact_id.clone() {
            let keywords = keywords_of(store, &tenant).await?;
            if let Some(matched) = keywords.find(&message.text) {
                let ctx = AcceptContext {
                    store: &self.store,
                    rules: self.rules,
                    now,
                    configured: &self.configured,
                    handoff: self.handoff.as_ref(),
                };
                keyword = match carry_out(ctx, &keywords, &message, &contact_id, &matched).await {
                    Ok(done) => done,
                    Err(KeywordError::Store(e)) => return Err(e.into()),
                    Err(KeywordError::Reply(AcceptError::Store(e))) => return Err(e.into()),
                    Err(KeywordError::Reply(refused)) => {
                        // A reply that can never go (the tenant's text is refused by the
                        // channel): the keyword's consent change must still be written.
                        tracing::warn!(message = %message.id, error = %refused, "a keyword reply was refused");
                        true
                    }
                };
                if keyword {
                    tracing::info!(message = %message.id, action = matched.action.as_str(), "keyword");
                    keyword_action = Some(matched.action.as_str());
                }
            }
        }
        // Annotated once; written with the mark below (a run cut short classifies again).
        let mut annotated = None;
        if message.annotations.is_none() {
            match self.nlu.classify(&tenant, &message.text, 1).await {
                Ok(classification) => {
                    let annotations = annotations(&classification);
                    let at = self.clock.now();
                    message.annotations = Some(annotations);
                    message.annotated_at = Some(at);
                    annotated = Some(at);
                }
                Err(e) => {
                    tracing::error!(
                        tenant = %tenant,
                        message_id = %message.id,
                        error = %e,
                        "inbound message stored without annotations: classification failed"
                    );
                }
            }
        }
        let (facts, language) = crate::flows::facts_of(&message.text, message.annotations.as_ref());
        let urgent = facts.urgent == Some(true);
        let negative = facts.sentiment.as_deref() == Some("negative");
        // The answer to a satisfaction question is a rating, not a new request: like a
        // keyword, it reopens nothing and reaches no flow.
        let mut rated = None;
        if let Some(contact_id) = message.contact_id.as_deref()
            && !keyword
        {
            rated = self
                .desk
                .take_rating(&tenant, contact_id, &message.text, message.received_at)
                .await?;
        }
        let absorbed = keyword || rated.is_some();
        // A flow that this message would start if it opens the conversation: then the
        // conversation opens in the `bot` state, otherwise it waits for an agent.
        let chosen = match message.contact_id.as_deref() {
            Some(_) if !absorbed => self
                .flows
                .choose(&tenant, message.channel, true, &facts)
                .await
                .map_err(flow_error)?,
            _ => None,
        };
        let conversation = match message.contact_id.as_deref() {
            Some(contact_id) => Some(
                store
                    .place_inbound(&InboundPlacement {
                        tenant_id: &tenant,
                        contact_id,
                        message_id: &message.id,
                        channel: message.channel,
                        channel_id: message.channel_id.as_deref(),
                        address: &message.from_address,
                        last_message: &serde_json::json!({
                            "direction": "in",
                            "text": message.text,
                            "channel": message.channel,
                            "at": message.received_at,
                            "message_id": message.id,
                        }),
                        at: message.received_at,
                        state: if absorbed {
                            ConversationState::Resolved
                        } else if chosen.is_some() {
                            ConversationState::Bot
                        } else {
                            ConversationState::Pending
                        },
                        reopens: !absorbed,
                    })
                    .await?,
            ),
            None => None,
        };
        if let (Some(conversation), Some(rated)) = (conversation.as_ref(), rated.as_ref()) {
            let ctx = AcceptContext {
                store: &self.store,
                rules: self.rules,
                now,
                configured: &self.configured,
                handoff: self.handoff.as_ref(),
            };
            let thanks = crate::agents::csat_thanks(rated);
            if let Err(refused) = crate::replies::reply_once(
                ctx,
                &message,
                serde_json::json!({ "text": thanks }),
                &format!("relais:csat:{}", message.id),
            )
            .await
            {
                match refused {
                    AcceptError::Store(e) => return Err(e.into()),
                    refused => {
                        tracing::warn!(message = %message.id, error = %refused, "the thanks for a rating was refused")
                    }
                }
            }
            tracing::info!(conversation = %conversation.id, score = ?rated.csat_score, "satisfaction rating");
        }
        // The bot's turn: a keyword never reaches a flow.
        let mut bot = None;
        if let Some(conversation) = conversation.as_ref()
            && !absorbed
            && conversation.state == ConversationState::Bot
        {
            let ctx = AcceptContext {
                store: &self.store,
                rules: self.rules,
                now,
                configured: &self.configured,
                handoff: self.handoff.as_ref(),
            };
            bot = self
                .flows
                .take_turn(ctx, &message, conversation, facts, language, chosen)
                .await
                .map_err(flow_error)?;
        }
        // A conversation that waits for or is with a human: the desk places it in its
        // team's queue (priority, SLA) and assigns it when someone has room.
        let mut team = conversation.as_ref().and_then(|c| c.team.clone());
        if let Some(placed) = conversation.as_ref()
            && !absorbed
        {
            let handed_over = bot.as_ref().is_some_and(|turn| turn.state != placed.state);
            let current = if handed_over {
                store.conversation(&tenant, &placed.id).await?
            } else {
                Some(placed.clone())
            };
            if let Some(current) = current
                && matches!(
                    current.state,
                    ConversationState::Pending | ConversationState::Open
                )
            {
                let routed = self
                    .desk
                    .customer_wrote(&current, urgent, negative, message.received_at)
                    .await?;
                team = routed.team;
            }
        }
        let at = self.clock.now();
        let conversation_id = conversation.as_ref().map(|c| c.id.as_str());
        // The tenant's application hears of it (signed like status events), once per
        // message however often this step runs.
        let event = serde_json::json!({
            "type": MESSAGE_RECEIVED,
            "timestamp": at,
            "data": {
                "id": message.id,
                "channel": message.channel,
                "channel_id": message.channel_id,
                "from": message.from_address,
                "to": message.to_address,
                "text": message.text,
                "received_at": message.received_at,
                "contact_id": message.contact_id,
                "conversation_id": conversation_id,
                "keyword": keyword_action,
                "annotations": message.annotations,
                "bot": bot.as_ref().map(|turn| serde_json::json!({
                    "flow": turn.flow,
                    "ending": turn.run.ending,
                    "state": turn.state,
                })),
            },
        });
        crate::webhooks::queue_event(
            store,
            &tenant,
            MESSAGE_RECEIVED,
            event["data"].clone(),
            &format!("in_{}", message.id),
            at,
        )
        .await?;
        if let Some(conversation) = &conversation
            && conversation.opened_at == message.received_at
            && !absorbed
        {
            self.desk.announce_opened(conversation, &message.id).await?;
        }
        if let Some(events) = &self.events {
            events
                .publish_about(
                    &tenant,
                    EventKind::MessageReceived,
                    conversation_id,
                    team.as_deref(),
                    event["data"].clone(),
                    Some(&format!("in_{}", message.id)),
                )
                .await?;
        }
        if let Some(events) = &self.events
            && let (Some(turn), Some(before)) = (&bot, &conversation)
            && turn.state != before.state
        {
            // The bot resolved the conversation or handed it to a team.
            let team = match &turn.run.ending {
                crate::flows::Ending::HandedOff { team, .. } => team.clone(),
                _ => None,
            };
            events
                .publish_about(
                    &tenant,
                    EventKind::ConversationStateChanged,
                    Some(&before.id),
                    team.as_deref(),
                    serde_json::json!({
                        "id": before.id,
                        "state": turn.state,
                        "previous_state": before.state,
                        "contact_id": before.contact_id,
                        "team": team,
                        "by": {"flow": turn.flow},
                    }),
                    Some(&format!("flow_{}", message.id)),
                )
                .await?;
        }
        let written = message.annotations.as_ref().zip(annotated);
        store
            .finish_inbound(&tenant, &message.id, None, conversation_id, written, at)
            .await?;
        message.conversation_id = conversation_id.map(str::to_owned);
        message.processed_at = Some(at);
        Ok(message)
    }

    /// The contact that owns `address`, created (holding just that identity) when nobody
    /// does.
    async fn contact_for(
        &self,
        tenant: &str,
        channel: ChannelKind,
        address: &str,
    ) -> Result<String, StoreError> {
        if let Some(id) = owner(&*self.store, tenant, channel, address).await? {
            return Ok(id);
        }
        let identity = Identity {
            channel,
            address: address.to_owned(),
        };
        // A concurrent message from the same new sender may create it first: then the
        // second try finds it.
        let mut last = None;
        for _ in 0..3 {
            match self
                .store
                .resolve_or_create_contacts(
                    tenant,
                    std::slice::from_ref(&identity),
                    self.clock.now(),
                )
                .await
            {
                Ok(found) => {
                    if let Some((contact, _created)) = found.into_iter().next() {
                        return Ok(contact.id);
                    }
                }
                Err(e @ StoreError::Conflict(_)) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| StoreError::Corrupt("no contact for the sender".into())))
    }
}

/// The contact that owns `address`: on `channel` itself, or else, for a phone number, on
/// any phone channel (an SMS from the number a contact uses on WhatsApp is the same
/// phone; a simulated phone stands in for the contact's real one, as it does for sends).
async fn owner(
    store: &dyn Store,
    tenant: &str,
    channel: ChannelKind,
    address: &str,
) -> Result<Option<String>, StoreError> {
    // A phone number (E.164, with its `+`) is only ever a phone channel's address: one
    // look-up on any channel finds it, the earliest identity first, as sends resolve it.
    let on = (!channel.is_phone_addressed()).then_some(channel);
    Ok(store
        .contact_by_identity(tenant, on, address)
        .await?
        .map(|contact| contact.id))
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
