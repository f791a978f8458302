//! The `sim` sandbox channel's side in the engine: its phones' log kept in the store, and
//! a phone's reply taken through the inbound pipeline. The adapter itself is
//! [`relais_channels::sim`].

use crate::inbound::{InboundError, InboundPipeline, Received};
use async_trait::async_trait;
use relais_channels::sim::{PhoneEntry, PhoneLog};
pub use relais_channels::sim::{RECEIVED, SENT, SimAdapter, SimConfig, display_text};
use relais_core::clock::Clock;
use relais_store::{SimEntry, Store};
use std::sync::Arc;

/// The phones' log in the store.
struct StoredPhoneLog(Arc<dyn Store>);

fn stored(entry: PhoneEntry) -> SimEntry {
    SimEntry {
        id: entry.id,
        number: entry.number,
        direction: entry.direction,
        message_id: entry.message_id,
        text: entry.text,
        at: entry.at,
    }
}

#[async_trait]
impl PhoneLog for StoredPhoneLog {
    async fn record(&self, tenant: &str, entries: Vec<PhoneEntry>) {
        let entries: Vec<SimEntry> = entries.into_iter().map(stored).collect();
        // The phones' log is a sandbox view: losing it must not fail sends that went out.
        if let Err(e) = self.0.sim_record(tenant, &entries).await {
            tracing::error!(error = %e, tenant, "the simulated phones' log was not written");
        }
    }
}

/// The sandbox phones, their log kept in `store`.
pub fn adapter(store: Arc<dyn Store>, config: SimConfig) -> SimAdapter {
    SimAdapter::new(Arc::new(StoredPhoneLog(store)), config)
}

/// What a simulated phone's reply became.
#[derive(Debug, Clone, PartialEq)]
pub struct Replied {
    /// The reply in the phone's log.
    pub entry: SimEntry,
    /// The reply as the tenant received it: an annotated inbound message.
    pub inbound: Received,
}

/// A simulated phone writes to the tenant: the reply goes through the same inbound path as
/// any channel's (stored once per `provider_id`, tied to its contact, annotated by NLU) and
/// is kept in the phone's log (see [`relais_channels::sim::phone_reply`]).
pub async fn reply(
    pipeline: &InboundPipeline,
    store: &dyn Store,
    clock: &dyn Clock,
    tenant: &str,
    number: &str,
    text: &str,
    provider_id: Option<String>,
) -> Result<Replied, InboundError> {
    if text.trim().is_empty() {
        return Err(InboundError::Invalid("`text` must not be empty".into()));
    }
    let (entry, message) =
        relais_channels::sim::phone_reply(tenant, number, text, provider_id, clock.now());
    let inbound = pipeline.receive(message).await?;
    let entry = stored(entry);
    store
        .sim_record(tenant, std::slice::from_ref(&entry))
        .await?;
    Ok(Replied { entry, inbound })
}
