//! The `sim` sandbox channel: simulated phones inside Relais. A phone keeps what it
//! received (`GET /v1/sim/phones/{number}/messages`), reports `delivered` and `read` after
//! configurable delays on the injected clock, and can reply.

use crate::adapter::{ChannelAdapter, OutboundMessage, ProviderAck, Receipt, SendError};
use crate::event::NewInbound;
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use relais_core::channel::ChannelKind;
use relais_core::content::{Body, Content};
use relais_core::status::MessageStatus;
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

/// One line of a simulated phone's log: a message it received or sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneEntry {
    pub id: String,
    pub number: String,
    /// [`RECEIVED`] or [`SENT`].
    pub direction: String,
    /// The Relais message a received entry is.
    pub message_id: Option<String>,
    pub text: String,
    pub at: Timestamp,
}

/// Where the phones' log is kept (the engine keeps it in the store).
#[async_trait]
pub trait PhoneLog: Send + Sync {
    /// Appends entries to a tenant's phones' log. The log is a sandbox view: a failure is
    /// reported by the implementation and never fails the sends.
    async fn record(&self, tenant: &str, entries: Vec<PhoneEntry>);
}

pub struct SimAdapter {
    log: Arc<dyn PhoneLog>,
    config: SimConfig,
    pending: Mutex<Vec<Receipt>>,
    /// What the phones received since the last flush, by tenant.
    received: Mutex<Vec<(String, PhoneEntry)>>,
    sink: Option<Sink>,
}

/// A development aid: an HTTP endpoint that sees every simulated send, so that a test
/// outside the process can count what was sent.
struct Sink {
    url: String,
    client: reqwest::Client,
}

impl SimAdapter {
    pub fn new(log: Arc<dyn PhoneLog>, config: SimConfig) -> Self {
        SimAdapter {
            log,
            config,
            pending: Mutex::new(Vec::new()),
            received: Mutex::new(Vec::new()),
            sink: None,
        }
    }

    /// Also POSTs every send, as `{"message_id", "to", "text"}` with the message id in the
    /// `Idempotency-Key` header, to `url` before acknowledging it; a send the sink does not
    /// answer with 2xx is a transient error (retried). The sink plays the provider: the
    /// message id is the client reference a real provider dedupes on, because a crash
    /// between its acknowledgement and the settling transaction sends the message again.
    pub fn with_sink(mut self, url: impl Into<String>) -> Result<Self, String> {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .user_agent("Relais-Sim-Sink/1")
            .build()
            .map_err(|e| e.to_string())?;
        self.sink = Some(Sink {
            url: url.into(),
            client,
        });
        Ok(self)
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
        Body::Form(form) => form.as_text(),
        Body::Template(t) => format!("[template] {}", t.name),
    }
}

#[async_trait]
impl ChannelAdapter for SimAdapter {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sim
    }

    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError> {
        let entry = PhoneEntry {
            id: relais_core::ids::new_id(),
            number: message.to.clone(),
            direction: RECEIVED.into(),
            message_id: Some(message.message_id.clone()),
            text: display_text(&message.content),
            at: message.now,
        };
        if let Some(sink) = &self.sink {
            let body = serde_json::json!({
                "message_id": message.message_id,
                "to": entry.number,
                "text": entry.text,
            });
            let response = sink
                .client
                .post(&sink.url)
                .header("idempotency-key", message.message_id.as_str())
                .json(&body)
                .send()
                .await
                .map_err(|e| SendError::transient("sink_unreachable", e.to_string()))?;
            if !response.status().is_success() {
                return Err(SendError::transient(
                    "sink_refused",
                    format!("the sim sink answered {}", response.status()),
                ));
            }
        }
        let provider_id = format!("sim-{}", entry.id);
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((message.tenant_id.clone(), entry));
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
        Ok(ProviderAck { provider_id })
    }

    async fn flush(&self) {
        let received =
            std::mem::take(&mut *self.received.lock().unwrap_or_else(|p| p.into_inner()));
        let mut by_tenant: std::collections::BTreeMap<String, Vec<PhoneEntry>> = Default::default();
        for (tenant, entry) in received {
            by_tenant.entry(tenant).or_default().push(entry);
        }
        for (tenant, entries) in by_tenant {
            self.log.record(&tenant, entries).await;
        }
    }

    async fn poll_receipts(&self, now: Timestamp) -> Vec<Receipt> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let (due, later): (Vec<Receipt>, Vec<Receipt>) =
            pending.drain(..).partition(|r| r.at <= now);
        *pending = later;
        due
    }
}

/// A simulated phone's message to the tenant: the line for its log and the message for
/// the inbound pipeline. Without a `provider_id` every reply is a new message; with one,
/// a test can play a provider that delivers the same message twice.
pub fn phone_reply(
    tenant: &str,
    number: &str,
    text: &str,
    provider_id: Option<String>,
    now: Timestamp,
) -> (PhoneEntry, NewInbound) {
    let entry = PhoneEntry {
        id: relais_core::ids::new_id(),
        number: number.to_owned(),
        direction: SENT.into(),
        message_id: None,
        text: text.to_owned(),
        at: now,
    };
    let message = NewInbound {
        answers: Vec::new(),
        tenant_id: tenant.to_owned(),
        channel: ChannelKind::Sim,
        channel_id: None,
        from: number.to_owned(),
        to: "sim".into(),
        text: text.to_owned(),
        payload: None,
        media: None,
        provider_id: Some(provider_id.unwrap_or_else(|| format!("sim-{}", entry.id))),
    };
    (entry, message)
}
