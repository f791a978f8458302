//! Messages the content checks held for review (`docs/trust.md`): a reviewer releases one
//! (it goes out at once, or at its `send_at`, within the recipient's quiet hours as on
//! the accept path) or rejects one (`rejected`, final, with the reviewer's reason).
//!
//! Only a `held` message is reviewed: reviewing it again, or one that was canceled
//! meanwhile, changes nothing and says what it became.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use relais_core::consent::Purpose;
use relais_core::phone::normalize_phone;
use relais_core::quiet_hours::hold;
use relais_core::status::MessageStatus;
use relais_store::{Review, ReviewOutcome, Store, StoreError};

/// Why a review changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("message {0} not found")]
    NotFound(String),
    #[error("the message is not held for review (it is {0})")]
    NotHeld(MessageStatus),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Releases a held message: `queued` now, or `scheduled` until its `send_at` or the end of
/// the recipient's quiet hours.
pub async fn release(
    store: &dyn Store,
    tenant: &str,
    id: &str,
    now: Timestamp,
) -> Result<MessageStatus, ReviewError> {
    let found = store
        .message(tenant, id)
        .await?
        .ok_or_else(|| ReviewError::NotFound(id.to_owned()))?;
    let message = found.message;
    if message.status != MessageStatus::Held {
        return Err(ReviewError::NotHeld(message.status));
    }
    let wanted = message.send_at.filter(|at| *at > now).unwrap_or(now);
    let quiet = crate::settings::quiet_hours_of(store, tenant).await?;
    let region = normalize_phone(&message.to_address, None)
        .ok()
        .and_then(|p| p.region());
    let tz = region
        .as_deref()
        .and_then(crate::send::zone_of_country)
        .unwrap_or(TimeZone::UTC);
    // A purpose that no longer parses is held by every rule, as marketing is.
    let purpose = Purpose::parse(&message.purpose).unwrap_or(Purpose::Marketing);
    let due = hold(wanted, &tz, region.as_deref(), &purpose, &quiet)
        .map(|held| held.until)
        .unwrap_or(wanted);
    let (status, detail) = if due > now {
        (
            MessageStatus::Scheduled,
            format!("released by a reviewer, scheduled for {due}"),
        )
    } else {
        (MessageStatus::Queued, "released by a reviewer".to_owned())
    };
    let review = Review::Release {
        status,
        due_at: due,
        detail,
    };
    outcome(store.review_held(tenant, id, &review, now).await, id)
}

/// Rejects a held message for good, with the reviewer's reason.
pub async fn reject(
    store: &dyn Store,
    tenant: &str,
    id: &str,
    reason: Option<&str>,
    now: Timestamp,
) -> Result<MessageStatus, ReviewError> {
    let detail = match reason.map(str::trim).filter(|r| !r.is_empty()) {
        Some(reason) => format!("rejected by a reviewer: {reason}"),
        None => "rejected by a reviewer".to_owned(),
    };
    outcome(
        store
            .review_held(tenant, id, &Review::Reject { detail }, now)
            .await,
        id,
    )
}

fn outcome(
    result: Result<ReviewOutcome, StoreError>,
    id: &str,
) -> Result<MessageStatus, ReviewError> {
    match result {
        Ok(ReviewOutcome::Done(status)) => Ok(status),
        Ok(ReviewOutcome::NotHeld(status)) => Err(ReviewError::NotHeld(status)),
        Err(StoreError::NotFound(_)) => Err(ReviewError::NotFound(id.to_owned())),
        Err(e) => Err(ReviewError::Store(e)),
    }
}
