//! The contact a message belongs to because it answers one Relais sent: an e-mail whose
//! `In-Reply-To` or `References` names the `Message-ID` of a mail sent on the same
//! configured channel is the thread of that mail's contact, whichever address wrote it
//! (the customer answers from an alias, a colleague answers for them).
//!
//! The address that wrote is *not* made an identity of that contact. A `Message-ID` is
//! no secret: it travels with every forward and every quote, so naming it proves only
//! that the writer saw the mail, not that they are the customer. Linked, the address
//! would receive the customer's next mail, their bot answers and their data export; so
//! the message joins the conversation under the address it came from, and an agent who
//! knows better merges the contacts (`POST /v1/contacts/{id}/merge`). A message that
//! names nothing known is the sender's, found by its address as on every channel.

use relais_channels::NewInbound;
use relais_store::{Store, StoreError};

/// Answered ids looked up per message, at most: `In-Reply-To` and the nearest
/// `References` name the thread; a chain of hundreds (a long discussion, or a forged
/// header) is not a reason for hundreds of look-ups.
const ANSWERED_LOOKUPS: usize = 10;

/// The first message `message` answers that its channel sent: its contact, and the
/// address it went to (the sender of an answer whose channel names none: a push
/// notification's button, pressed where the notification was shown).
pub(super) struct Answered {
    pub(super) contact_id: String,
    pub(super) to_address: String,
}

/// The message `message` answers that its channel sent, if any.
pub(super) async fn thread_owner(
    store: &dyn Store,
    message: &NewInbound,
) -> Result<Option<Answered>, StoreError> {
    let Some(channel_id) = message.channel_id.as_deref() else {
        return Ok(None);
    };
    let answered = message
        .answers
        .iter()
        .map(|id| id.trim())
        .filter(|id| !id.is_empty())
        .take(ANSWERED_LOOKUPS);
    for provider_id in answered {
        if let Some(sent) = store
            .message_by_provider_id(channel_id, provider_id)
            .await?
            && sent.tenant_id == message.tenant_id
            && let Some(contact_id) = sent.contact_id
        {
            return Ok(Some(Answered {
                contact_id,
                to_address: sent.to_address,
            }));
        }
    }
    Ok(None)
}
