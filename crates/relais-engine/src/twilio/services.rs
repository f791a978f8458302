//! Messaging Services: a tenant's pools of senders, each under an `MG` SID. A message sent
//! with `MessagingServiceSid` and no `From` takes the pool's sender for its recipient,
//! always the same one while the pool is the same ([`relais_core::twilio::sticky_sender`]).

use jiff::Timestamp;
use relais_core::sender::Sender;
use relais_core::twilio::generate_service_sid;
use relais_store::{Store, StoreError, TwilioService};

/// Why a service was not created.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("a service needs at least one sender")]
    NoSender,
    #[error("sender {index} (`{given}`): {reason}")]
    BadSender {
        index: usize,
        given: String,
        reason: String,
    },
    #[error("the name must hold 1 to 64 characters")]
    BadName,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a service with these senders (numbers, short codes or alphanumeric IDs).
pub async fn create_service(
    store: &dyn Store,
    tenant: &str,
    name: &str,
    senders: &[String],
    now: Timestamp,
) -> Result<TwilioService, ServiceError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ServiceError::BadName);
    }
    if senders.is_empty() {
        return Err(ServiceError::NoSender);
    }
    let senders = senders
        .iter()
        .enumerate()
        .map(|(index, given)| {
            Sender::parse(given)
                .map(|s| s.as_str().to_owned())
                .map_err(|e| ServiceError::BadSender {
                    index,
                    given: given.clone(),
                    reason: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let service = TwilioService {
        sid: generate_service_sid(),
        tenant_id: tenant.to_owned(),
        name: name.to_owned(),
        senders,
        created_at: now,
    };
    store.insert_twilio_service(&service).await?;
    Ok(service)
}
