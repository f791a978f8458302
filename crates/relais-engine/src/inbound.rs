//! What customers write: every channel's inbound path (SMPP `deliver_sm`, provider
//! webhooks, simulated phones) ends in [`receive`], which stores the message once per
//! provider id, ties it to the contact that owns the sender's address, and annotates it
//! with NLU (language, intent, sentiment, urgency).
//!
//! A stored message is never lost to a later step: when classification fails the message
//! stays, unannotated, and the failure is logged.

use crate::nlu::{Classification, NluService};
use relais_core::channel::ChannelKind;
use relais_core::clock::Clock;
use relais_core::contact::{AddressRules, normalize_address};
use relais_store::{InboundMessage, NewInboundMessage, Store, StoreError};

/// Longest text accepted, in bytes: above any channel's limit (a concatenated SMS of 255
/// parts is under 40 kB), so only garbage is refused.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

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
}

/// Stores an inbound message (idempotently on its provider id) and annotates it with NLU.
pub async fn receive(
    store: &dyn Store,
    nlu: &NluService,
    clock: &dyn Clock,
    msg: NewInbound,
) -> Result<Received, InboundError> {
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
    let (from, known_address) = match sender_address(msg.channel, &msg.from) {
        Some(address) => (address, true),
        None => {
            // An address we cannot read (an alphanumeric sender, a malformed number) still
            // carries a customer's words: keep them under the raw address, unattributed.
            tracing::warn!(
                channel = %msg.channel,
                from = %msg.from,
                "inbound sender address is not valid for its channel; stored as received"
            );
            (msg.from.trim().to_owned(), false)
        }
    };
    let contact_id = if known_address {
        owner(store, &msg.tenant_id, msg.channel, &from).await?
    } else {
        None
    };
    let now = clock.now();
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
            received_at: now,
        })
        .await?;
    let mut message = inserted.message;
    if !inserted.created {
        return Ok(Received {
            message,
            duplicate: true,
        });
    }
    match nlu.classify(&msg.tenant_id, &message.text, 1).await {
        Ok(classification) => {
            let annotations = annotations(&classification);
            let at = clock.now();
            store
                .set_inbound_annotations(&msg.tenant_id, &message.id, &annotations, at)
                .await?;
            message.annotations = Some(annotations);
            message.annotated_at = Some(at);
        }
        Err(e) => {
            tracing::error!(
                tenant = %msg.tenant_id,
                message_id = %message.id,
                error = %e,
                "inbound message stored without annotations: classification failed"
            );
        }
    }
    Ok(Received {
        message,
        duplicate: false,
    })
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
    if let Some(contact) = store
        .contact_by_identity(tenant, Some(channel), address)
        .await?
    {
        return Ok(Some(contact.id));
    }
    if !channel.is_phone_addressed() {
        return Ok(None);
    }
    for other in ChannelKind::ALL
        .into_iter()
        .filter(|k| *k != channel && k.is_phone_addressed())
    {
        if let Some(contact) = store
            .contact_by_identity(tenant, Some(other), address)
            .await?
        {
            return Ok(Some(contact.id));
        }
    }
    Ok(None)
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
