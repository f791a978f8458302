//! The `sim` sandbox channel: simulated phones inside Relais. A phone keeps what it
//! received (`GET /v1/sim/phones/{number}/messages`), reports `delivered` and `read` after
//! configurable delays on the injected clock, and can reply.

use crate::dispatch::{ChannelAdapter, OutboundMessage, ProviderAck, Receipt, SendError};
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use relais_core::channel::ChannelKind;
use relais_core::content::{Body, Content};
use relais_core::status::MessageStatus;
use relais_store::{SimEntry, Store, StoreError, StoreResult};
use std::sync::{Arc, Mutex};

/// How simulated phones behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// Delay before the `delivered` receipt; `None` sends none.
    pub delivered_after: Option<SignedDuration>,
    /// Delay (after sending) before the `read` receipt; `None` sends none.
    pub read_after: Option<SignedDuration>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            delivered_after: Some(SignedDuration::from_secs(1)),
            read_after: None,
        }
    }
}

/// Direction of a simulated phone's message, seen from the phone.
pub const RECEIVED: &str = "received";
pub const SENT: &str = "sent";

pub struct SimAdapter {
    store: Arc<dyn Store>,
    config: SimConfig,
    pending: Mutex<Vec<Receipt>>,
}

impl SimAdapter {
    pub fn new(store: Arc<dyn Store>, config: SimConfig) -> Self {
        SimAdapter {
            store,
            config,
            pending: Mutex::new(Vec::new()),
        }
    }
}

/// What a phone shows for a content: its text, or a short description of rich content.
pub fn display_text(content: &Content) -> String {
    match &content.body {
        Body::Text(text) => text.clone(),
        Body::Media(media) => media
            .caption
            .clone()
            .unwrap_or_else(|| format!("[media] {}", media.url)),
        Body::Card(card) => match &card.text {
            Some(text) => format!("{}\n{text}", card.title),
            None => card.title.clone(),
        },
        Body::Carousel(cards) => cards
            .iter()
            .map(|c| c.title.clone())
            .collect::<Vec<_>>()
            .join("\n"),
        Body::Location(l) => l
            .name
            .clone()
            .unwrap_or_else(|| format!("[location] {}, {}", l.lat, l.lon)),
        Body::Template(t) => format!("[template] {}", t.name),
    }
}

#[async_trait]
impl ChannelAdapter for SimAdapter {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sim
    }

    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError> {
        let entry = SimEntry {
            id: relais_core::ids::new_id(),
            number: message.to.clone(),
            direction: RECEIVED.into(),
            message_id: Some(message.message_id.clone()),
            text: display_text(&message.content),
            at: message.now,
        };
        self.store
            .sim_record(&message.tenant_id, &entry)
            .await
            .map_err(|e| SendError::transient("sim_unavailable", e.to_string()))?;
        let later = |d: SignedDuration| message.now.checked_add(d).unwrap_or(Timestamp::MAX);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = self.config.delivered_after {
            pending.push(Receipt {
                message_id: message.message_id.clone(),
                status: MessageStatus::Delivered,
                at: later(d),
                detail: Some("the simulated phone received the message".into()),
            });
        }
        if let Some(d) = self.config.read_after {
            pending.push(Receipt {
                message_id: message.message_id.clone(),
                status: MessageStatus::Read,
                at: later(d),
                detail: Some("the simulated phone's user read the message".into()),
            });
        }
        Ok(ProviderAck {
            provider_id: format!("sim-{}", entry.id),
        })
    }

    async fn poll_receipts(&self, now: Timestamp) -> Vec<Receipt> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let (due, later): (Vec<Receipt>, Vec<Receipt>) =
            pending.drain(..).partition(|r| r.at <= now);
        *pending = later;
        due
    }
}

/// A simulated phone writes to the tenant: the reply is stored as an inbound message.
pub async fn reply(
    store: &dyn Store,
    tenant: &str,
    number: &str,
    text: &str,
    now: Timestamp,
) -> StoreResult<SimEntry> {
    if text.trim().is_empty() {
        return Err(StoreError::Invalid("`text` must not be empty".into()));
    }
    let entry = SimEntry {
        id: relais_core::ids::new_id(),
        number: number.to_owned(),
        direction: SENT.into(),
        message_id: None,
        text: text.to_owned(),
        at: now,
    };
    store.sim_record(tenant, &entry).await?;
    Ok(entry)
}
