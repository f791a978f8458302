//! Numbered answers: on a channel without buttons, the buttons of a message went out as
//! numbered lines ("1. Je confirme", "2. Je déplace"), and a customer who answers "2"
//! chose the second one. The message is given that button's payload, as a tap would
//! give it on a channel with buttons, so a flow never needs to know which channel
//! answered.
//!
//! The numbers are not stored: degradation is a pure function of the content and the
//! channel's capabilities, so the message the customer answered is degraded again, the
//! way the dispatcher degraded it when it sent it.

use relais_core::content::{ChannelCapabilities, Content, answered_number, degrade_with_choices};
use relais_core::status::MessageStatus;
use relais_store::{Message, NewInboundMessage, Store, StoreError};

/// The contact's latest messages looked through for the one the customer answered: the
/// latest that reached this address on this channel.
const RECENT_MESSAGES: u32 = 10;

/// The payload of the choice `inbound` names by its number, if the latest message that
/// reached its sender on its channel offered numbered choices and the number is one.
pub(super) async fn chosen_by_number(
    store: &dyn Store,
    inbound: &NewInboundMessage,
) -> Result<Option<String>, StoreError> {
    if inbound.payload.is_some() || answered_number(&inbound.text).is_none() {
        return Ok(None);
    }
    let Some(contact_id) = inbound.contact_id.as_deref() else {
        return Ok(None);
    };
    let recent = store
        .messages_of_contact(&inbound.tenant_id, contact_id, RECENT_MESSAGES)
        .await?;
    let Some(answered) = recent.iter().find(|sent| answers(inbound, sent)) else {
        return Ok(None);
    };
    // Stored content that no longer reads (an older format) offered nothing we can name.
    let Ok(content) = serde_json::from_value::<Content>(answered.content.clone()) else {
        return Ok(None);
    };
    let degraded = degrade_with_choices(&content, ChannelCapabilities::for_kind(inbound.channel));
    Ok(degraded
        .answered(&inbound.text)
        .map(|choice| choice.payload.clone()))
}

/// Whether `sent` reached the customer who wrote `inbound`, where they wrote it.
fn answers(inbound: &NewInboundMessage, sent: &Message) -> bool {
    let same_channel = inbound.channel_id.as_deref() == Some(sent.channel.as_str())
        || sent.channel == inbound.channel.as_str();
    let reached = matches!(
        sent.status,
        MessageStatus::Sending
            | MessageStatus::Sent
            | MessageStatus::Delivered
            | MessageStatus::Read
    );
    same_channel && reached && sent.to_address == inbound.from_address
}
