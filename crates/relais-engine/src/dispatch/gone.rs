//! A dead address: the provider said a message's address will never work again (a push
//! subscription the browser dropped, an app uninstalled; [`SendError::address_gone`]).
//! The message fails once, never retried, and the address leaves the message's contact in
//! the transaction that settles it, so that the next send on that channel is refused at
//! accept instead of going to the dead address. The failure's event says so.

use super::decide::PendingSend;
use relais_channels::adapter::SendError;
use relais_core::contact::Identity;

/// The identity to drop from the message's contact, and the words the failure's event
/// adds; `None` when the address is not gone or the message has no contact.
pub(super) fn dead_identity(send: &PendingSend, error: &SendError) -> Option<(Identity, String)> {
    if !error.address_gone {
        return None;
    }
    let contact = send.item.message.contact_id.as_deref()?;
    let (_, outbound) = send.target.as_ref().ok()?;
    let note = format!(
        "; this {} address was removed from contact {contact}",
        outbound.channel
    );
    Some((
        Identity {
            channel: outbound.channel,
            address: outbound.to.clone(),
        },
        note,
    ))
}
