//! What a `branch` step looks for on the last message its run sent: `read` (the
//! message's `read` status), `clicked` (a `clicked` event in the message's log, written by
//! tracked links), `replied` (the contact wrote in on any channel after it was sent).

use jiff::Timestamp;
use relais_core::journey::Engagement;
use relais_core::status::MessageStatus;
use relais_store::{Store, StoreError};

/// The name a click takes in a message's event log (as its status or its reason).
pub const CLICKED: &str = "clicked";

/// Whether the contact engaged with message `message_id` (sent at `sent_at`) that way,
/// at or before `until`.
pub async fn engaged(
    store: &dyn Store,
    tenant: &str,
    contact_id: &str,
    on: Engagement,
    message_id: &str,
    sent_at: Timestamp,
    until: Timestamp,
) -> Result<bool, StoreError> {
    match on {
        Engagement::Read | Engagement::Clicked => {
            let Some(message) = store.message(tenant, message_id).await? else {
                return Ok(false);
            };
            Ok(message.events.iter().any(|e| {
                e.at <= until
                    && match on {
                        Engagement::Read => e.status == MessageStatus::Read,
                        _ => e.status.as_str() == CLICKED || e.reason.as_deref() == Some(CLICKED),
                    }
            }))
        }
        Engagement::Replied => Ok(store
            .last_inbound_at(tenant, &[contact_id])
            .await?
            .iter()
            .any(|last| last.at > sent_at && last.at <= until)),
    }
}
