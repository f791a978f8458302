//! One-click unsubscribe from a marketing mail (RFC 8058): the link of its
//! `List-Unsubscribe` header, posted (`List-Unsubscribe=One-Click`) by the person's mail
//! program or by the button of the page the link opens, records an opt-out in the ledger
//! of the contact the mail was sent to; which channel and purpose it leaves (marketing on
//! e-mail), and its proof, the token's channel module says.
//!
//! The token names the tenant and the message and is signed with a key derived from the
//! master key ([`crate::secrets::unsubscribe_key`]): a made-up or altered token is refused
//! before anything is read. The record's source is `channel`, its proof names the
//! message, and its time is when it was posted; posting the same link again records
//! nothing more.

use crate::channels::record_channel_consent;
use jiff::Timestamp;
use relais_channels::email::unsubscribe::{TokenError, Unsubscribed};
use relais_core::consent::{ConsentRecord, ConsentSource, ConsentStatus};
use relais_store::{Store, StoreError};

/// Why an unsubscribe link was not followed; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum UnsubscribeError {
    /// Not a link of the shape Relais writes.
    #[error("{0}")]
    Malformed(TokenError),
    /// A well-formed link this server did not sign, or for a message it does not have.
    #[error("{0}")]
    Unknown(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What following a link did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub contact_id: String,
    /// `false` when the link had been followed before: nothing more was recorded.
    pub recorded: bool,
}

/// The message a link is about, when this server signed it (nothing is read or changed).
pub fn check(token: &str) -> Result<Unsubscribed, UnsubscribeError> {
    crate::secrets::unsubscribe_key()
        .verify(token)
        .map_err(|e| match e {
            TokenError::Malformed => UnsubscribeError::Malformed(e),
            TokenError::Forged => UnsubscribeError::Unknown(e.to_string()),
        })
}

/// Follows the link of `token`: the opt-out of marketing on e-mail of the contact the
/// message was sent to, recorded once.
pub async fn one_click(
    store: &dyn Store,
    token: &str,
    now: Timestamp,
) -> Result<Unsubscribe, UnsubscribeError> {
    let unsubscribed = check(token)?;
    let tenant_id = unsubscribed.tenant_id.as_str();
    let channel = unsubscribed.channel();
    let message = store
        .message(tenant_id, &unsubscribed.message_id)
        .await?
        .map(|found| found.message)
        .ok_or_else(|| UnsubscribeError::Unknown("this message is not known here".into()))?;
    let contact_id = match message.contact_id {
        Some(contact) => contact,
        None => store
            .contact_by_identity(tenant_id, Some(channel), &message.to_address)
            .await?
            .map(|contact| contact.id)
            .ok_or_else(|| {
                UnsubscribeError::Unknown("the person this message went to is not known".into())
            })?,
    };
    let record = ConsentRecord {
        id: relais_core::ids::new_id(),
        contact_id: contact_id.clone(),
        channel: Some(channel),
        purpose: unsubscribed.purpose(),
        status: ConsentStatus::OptedOut,
        source: ConsentSource::Channel,
        proof: Some(unsubscribed.proof()),
        recorded_at: now,
    };
    let recorded =
        record_channel_consent(store, tenant_id, record, Some(&unsubscribed.message_id)).await?;
    Ok(Unsubscribe {
        contact_id,
        recorded,
    })
}
