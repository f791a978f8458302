//! A web chat visitor's opt-in to push notifications: the key their page subscribes with
//! (from the tenant's push channel), and the browser's subscription kept as an identity of
//! the visitor's contact (the contact their chat identity belongs to, created when they
//! never wrote), so that a message to that contact on the push channel reaches them.
//!
//! Invariants:
//! - Only the public key leaves: the channel's config is opened here to derive it.
//! - A subscription is checked (`relais_channels::webpush::opt_in`) before anything is
//!   written; a refused one stores nothing.
//! - A visitor removes only their own contact's subscriptions.

use jiff::Timestamp;
use relais_channels::webpush::SubscriptionError;
use relais_channels::webpush::opt_in::{self, PushKey, SubscriptionJson};
use relais_core::contact::{Contact, Identity};
use relais_store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum OptInError {
    #[error("this site's tenant has no Web Push channel")]
    NoPushChannel,
    #[error("the subscription is refused: {0}")]
    Invalid(#[from] SubscriptionError),
    #[error("this subscription already belongs to another contact")]
    TakenByAnother,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The key of `tenant`'s first push channel that gives one, or `None` when it has none.
pub async fn push_key(store: &dyn Store, tenant: &str) -> Result<Option<PushKey>, StoreError> {
    for record in store.channels(tenant).await? {
        let Ok(opened) = crate::secrets::current().open_config(&record.config) else {
            continue;
        };
        if let Some(key) = opt_in::push_key(&record.kind, &opened) {
            return Ok(Some(key));
        }
    }
    Ok(None)
}

/// Keeps `subscription` as an identity of the contact of `visitor` (a web chat visitor's
/// identity), creating that contact if the visitor never wrote. Answers the contact.
pub async fn subscribe(
    store: &dyn Store,
    tenant: &str,
    visitor: &Identity,
    subscription: &SubscriptionJson,
    now: Timestamp,
) -> Result<Contact, OptInError> {
    let key = push_key(store, tenant)
        .await?
        .ok_or(OptInError::NoPushChannel)?;
    let identity = subscription.identity(key.allow_http)?;
    let contact = store
        .resolve_or_create_contacts(tenant, std::slice::from_ref(visitor), now)
        .await?
        .into_iter()
        .next()
        .map(|(contact, _)| contact)
        .ok_or_else(|| StoreError::Corrupt("the visitor's contact was not resolved".into()))?;
    match store
        .add_identity(tenant, &contact.id, &identity, now)
        .await
    {
        Ok(contact) => Ok(contact),
        Err(StoreError::Conflict(_)) => Err(OptInError::TakenByAnother),
        Err(e) => Err(e.into()),
    }
}

/// Removes the subscriptions at `endpoint` of `visitor`'s contact; whether one was there.
pub async fn unsubscribe(
    store: &dyn Store,
    tenant: &str,
    visitor: &Identity,
    endpoint: &str,
) -> Result<bool, StoreError> {
    let Some(contact) = store
        .contact_by_identity(tenant, Some(visitor.channel), &visitor.address)
        .await?
    else {
        return Ok(false);
    };
    let mut removed = false;
    for identity in contact
        .identities
        .iter()
        .filter(|i| opt_in::subscribed_at(i, endpoint))
    {
        removed |= store.remove_identity(tenant, &contact.id, identity).await?;
    }
    Ok(removed)
}
