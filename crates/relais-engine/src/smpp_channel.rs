//! Configured `smpp` channels: one [`SmppClient`] per channel, behind [`ChannelAdapter`].
//!
//! `send` submits the message (the client splits long texts) with the Relais message id as
//! reference, and answers with the first part's SMSC id. A task per channel reads the
//! client's events: receipts are folded per message (a multi-part message is delivered only
//! when every part is) and applied to the message they reference; MO messages go to the
//! inbound pipeline.

use crate::dispatch::{
    ChannelAdapter, ChannelRegistry, OutboundMessage, ProviderAck, ReceiptInbox, SendError,
    apply_channel_receipt, apply_receipt_to,
};
use crate::inbound::{NewInbound, receive};
use crate::nlu::NluService;
use async_trait::async_trait;
use relais_core::channel::ChannelKind;
use relais_core::clock::Clock;
use relais_core::content::Body;
use relais_core::status::MessageStatus;
use relais_smpp::{
    ClientConfig, ClientEvents, ConnectError, ErrorKind, InboundMessage, MessageOutcome, Receipt,
    ReceiptState, SmppClient, SmppEvent, SubmitRequest, message_outcome,
};
use relais_store::{ChannelRecord, MessageEvent, Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The `kind` of a configured SMPP channel.
pub const KIND: &str = "smpp";

/// Messages whose parts' receipts are awaited at once, per channel; past it the oldest
/// half is forgotten (those messages stay `sent`) rather than growing without bound.
const MAX_PENDING_PARTS: usize = 200_000;

/// A bad `config` of an `smpp` channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pointer}: {detail}")]
pub struct ConfigError {
    /// JSON pointer into the channel's `config`, e.g. `/password`.
    pub pointer: String,
    pub detail: String,
}

fn config_error(pointer: &str, detail: impl Into<String>) -> ConfigError {
    ConfigError {
        pointer: pointer.to_owned(),
        detail: detail.into(),
    }
}

/// Reads and checks an `smpp` channel's config (keys and defaults in docs/smpp.md).
pub fn parse_config(value: &serde_json::Value) -> Result<ClientConfig, ConfigError> {
    let object = value
        .as_object()
        .ok_or_else(|| config_error("", "the config must be a JSON object"))?;
    // The client has defaults for every key; these three have no sensible one.
    for key in ["host", "system_id", "password"] {
        if !object.contains_key(key) {
            return Err(config_error(
                &format!("/{key}"),
                format!("`{key}` is required"),
            ));
        }
    }
    let config: ClientConfig = serde_path_to_error::deserialize(value).map_err(|e| {
        let pointer: String = e
            .path()
            .iter()
            .map(|segment| format!("/{segment}"))
            .collect();
        config_error(&pointer, e.into_inner().to_string())
    })?;
    if config.host.trim().is_empty() {
        return Err(config_error("/host", "`host` must not be empty"));
    }
    if config.port == 0 {
        return Err(config_error("/port", "`port` must be between 1 and 65535"));
    }
    if config.system_id.is_empty() || config.system_id.len() > 15 {
        return Err(config_error(
            "/system_id",
            "`system_id` must hold 1 to 15 characters (SMPP 3.4)",
        ));
    }
    if config.password.len() > 8 {
        return Err(config_error(
            "/password",
            "`password` is at most 8 characters (SMPP 3.4)",
        ));
    }
    if config.system_type.len() > 12 {
        return Err(config_error(
            "/system_type",
            "`system_type` is at most 12 characters (SMPP 3.4)",
        ));
    }
    if !(1..=10_000).contains(&config.window) {
        return Err(config_error(
            "/window",
            "`window` must be between 1 and 10000",
        ));
    }
    if !(1..=64).contains(&config.binds) {
        return Err(config_error("/binds", "`binds` must be between 1 and 64"));
    }
    if let Some(rate) = config.max_rate
        && !(rate.is_finite() && rate > 0.0)
    {
        return Err(config_error(
            "/max_rate",
            "`max_rate` must be a positive number of messages per second",
        ));
    }
    Ok(config)
}

/// What a channel's event task needs besides the client.
#[derive(Clone)]
struct Deps {
    store: Arc<dyn Store>,
    /// Where correlated successful receipts go, for the dispatcher to write.
    receipts: ReceiptInbox,
    clock: Arc<dyn Clock>,
    /// MO messages go to the inbound pipeline when set.
    nlu: Option<Arc<NluService>>,
}

/// One configured SMPP channel.
pub struct SmppChannel {
    record: ChannelRecord,
    config: ClientConfig,
    deps: Deps,
    client: tokio::sync::Mutex<Option<SmppClient>>,
}

impl SmppChannel {
    /// The connected client, connecting first if needed. Once connected the client rebinds
    /// on its own; only a first connection that failed is tried again here.
    async fn client(&self) -> Result<SmppClient, SendError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        match SmppClient::connect(self.config.clone()).await {
            Ok((client, events)) => {
                tracing::info!(channel = %self.record.id, name = %self.record.name, "SMPP channel bound");
                tokio::spawn(read_events(self.record.clone(), self.deps.clone(), events));
                *slot = Some(client.clone());
                Ok(client)
            }
            Err(ConnectError::Config(e)) => Err(SendError::permanent("smpp_config", e)),
            Err(e @ ConnectError::BindRefused(_)) => Err(SendError::transient(
                "smpp_bind_refused",
                format!("the SMSC refused the channel's credentials: {e}"),
            )),
            Err(e) => Err(SendError::transient("smsc_unreachable", e.to_string())),
        }
    }

    fn close(&self) {
        if let Ok(slot) = self.client.try_lock()
            && let Some(client) = slot.as_ref()
        {
            client.close();
        }
    }
}

#[async_trait]
impl ChannelAdapter for SmppChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError> {
        let text = match &message.content.body {
            Body::Text(text) => text.clone(),
            _ => {
                return Err(SendError::permanent(
                    "bad_content",
                    "SMS carries text only; the content did not degrade to text",
                ));
            }
        };
        let client = self.client().await?;
        let request = SubmitRequest {
            destination: message.to.clone(),
            text,
            source: message.from.clone(),
            reference: Some(message.message_id.clone()),
            registered_delivery: None,
        };
        match client.submit(request).await {
            Ok(outcome) => outcome
                .part_ids
                .into_iter()
                .next()
                .map(|provider_id| ProviderAck { provider_id })
                .ok_or_else(|| SendError::transient("smpp_no_id", "the SMSC answered no id")),
            Err(e) => {
                let code = match e.status {
                    Some(status) => format!("smpp_{status:#06x}"),
                    None => "smpp_link".to_owned(),
                };
                // Parts already accepted will be delivered anyway: resending them would
                // duplicate them on the handset, so a partial failure is final.
                if e.kind == ErrorKind::Permanent || !e.accepted_part_ids.is_empty() {
                    Err(SendError::permanent(code, e.reason))
                } else {
                    Err(SendError::transient(code, e.reason))
                }
            }
        }
    }
}

/// The engine status a part's final receipt state means (`None` for intermediate states).
fn status_of(state: ReceiptState) -> Option<MessageStatus> {
    match state {
        ReceiptState::Delivered => Some(MessageStatus::Delivered),
        ReceiptState::Undeliverable | ReceiptState::Unknown | ReceiptState::Deleted => {
            Some(MessageStatus::Undelivered)
        }
        ReceiptState::Expired => Some(MessageStatus::Expired),
        ReceiptState::Rejected => Some(MessageStatus::Rejected),
        ReceiptState::Accepted | ReceiptState::Enroute => None,
    }
}

/// The latest state of each part of the multi-part messages still waiting for receipts.
#[derive(Default)]
struct PartStates {
    pending: HashMap<Arc<str>, Vec<Option<ReceiptState>>>,
}

impl PartStates {
    /// Records a part's state; the message's outcome once it is decided.
    fn record(
        &mut self,
        reference: &Arc<str>,
        index: u8,
        total: u8,
        state: ReceiptState,
    ) -> MessageOutcome {
        let total = usize::from(total.max(1));
        if self.pending.len() >= MAX_PENDING_PARTS {
            let drop: Vec<Arc<str>> = self
                .pending
                .keys()
                .take(MAX_PENDING_PARTS / 2)
                .cloned()
                .collect();
            for key in drop {
                self.pending.remove(&key);
            }
        }
        let parts = self
            .pending
            .entry(reference.clone())
            .or_insert_with(|| vec![None; total]);
        if let Some(slot) = parts.get_mut(usize::from(index.saturating_sub(1))) {
            *slot = Some(state);
        }
        let known: Vec<ReceiptState> = parts.iter().flatten().copied().collect();
        let outcome = message_outcome(total, &known);
        if outcome != MessageOutcome::Pending {
            self.pending.remove(reference);
        }
        outcome
    }
}

/// Events read from the binds are handled this many at a time at most; the burst's
/// correlated successful receipts go to the dispatcher together.
const RECEIPT_BATCH: usize = 1000;

async fn read_events(record: ChannelRecord, deps: Deps, mut events: ClientEvents) {
    let mut parts = PartStates::default();
    while let Some(first) = events.recv().await {
        let mut burst = vec![first];
        while burst.len() < RECEIPT_BATCH
            && let Some(next) = events.try_recv()
        {
            burst.push(next);
        }
        let mut statuses = Vec::new();
        for event in burst {
            match event {
                SmppEvent::Receipt(receipt) => {
                    match on_receipt(&record, &deps, &mut parts, receipt).await {
                        Ok(Some(status)) => statuses.push(status),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::error!(channel = %record.id, error = %e, "cannot apply an SMPP receipt");
                        }
                    }
                }
                SmppEvent::Inbound(mo) => on_inbound(&record, &deps, mo).await,
                SmppEvent::Bind { bind, connected } => {
                    tracing::info!(channel = %record.id, bind, connected, "SMPP bind state");
                }
            }
        }
        deps.receipts.push(statuses);
    }
}

/// An SMPP address as E.164 when it is a long number (`33612345678` → `+33612345678`);
/// short codes and alphanumeric senders stay as they are.
pub(crate) fn e164_or_raw(address: &str) -> String {
    if !address.starts_with('+') && address.len() > 6 && address.bytes().all(|b| b.is_ascii_digit())
    {
        format!("+{address}")
    } else {
        address.to_owned()
    }
}

async fn on_inbound(record: &ChannelRecord, deps: &Deps, mo: InboundMessage) {
    let Some(nlu) = &deps.nlu else {
        tracing::warn!(channel = %record.id, "MO message dropped: no inbound pipeline");
        return;
    };
    let new = NewInbound {
        tenant_id: record.tenant_id.clone(),
        channel: ChannelKind::Sms,
        channel_id: Some(record.id.clone()),
        from: e164_or_raw(&mo.source),
        to: mo.destination,
        text: mo.text,
        // deliver_sm carries no message id for MO; the SMSC redelivers only on a lost resp.
        provider_id: None,
    };
    if let Err(e) = receive(&*deps.store, nlu, &*deps.clock, new).await {
        tracing::error!(channel = %record.id, error = %e, "MO message not stored");
    }
}

/// Applies a receipt that needs the message (a failure may move it to the next step of
/// its chain, an uncorrelated one is found by provider id); returns the status change of a
/// correlated success, for the caller to write with the others of its burst.
async fn on_receipt(
    record: &ChannelRecord,
    deps: &Deps,
    parts: &mut PartStates,
    receipt: Receipt,
) -> Result<Option<(String, MessageEvent)>, crate::dispatch::DispatchError> {
    let at = deps.clock.now();
    let detail = match &receipt.error {
        Some(err) => format!(
            "SMSC receipt {} stat {} err {err}",
            receipt.message_id,
            receipt.state.stat()
        ),
        None => format!(
            "SMSC receipt {} stat {}",
            receipt.message_id,
            receipt.state.stat()
        ),
    };
    let Some(part) = &receipt.part else {
        // Not correlated (sent before a restart, or held too long): the id is the first
        // part's only for single-part messages, which is the best that can be done.
        if let Some(status) = status_of(receipt.state) {
            apply_channel_receipt(
                &*deps.store,
                &record.id,
                &receipt.message_id,
                status,
                at,
                Some(detail),
            )
            .await?;
        }
        return Ok(None);
    };
    let outcome = if part.total <= 1 {
        message_outcome(1, &[receipt.state])
    } else {
        parts.record(&part.reference, part.index, part.total, receipt.state)
    };
    let status = match outcome {
        MessageOutcome::Pending => return Ok(None),
        MessageOutcome::Delivered => MessageStatus::Delivered,
        MessageOutcome::Failed(state) => status_of(state).unwrap_or(MessageStatus::Undelivered),
    };
    if !status.is_failure() {
        // The reference is the id of a message this channel submitted.
        let event = MessageEvent::new(status, at)
            .channel(record.id.as_str())
            .reason("receipt")
            .detail(detail);
        return Ok(Some((part.reference.to_string(), event)));
    }
    let Some(found) = deps
        .store
        .message(&record.tenant_id, &part.reference)
        .await?
    else {
        return Ok(None);
    };
    apply_receipt_to(&*deps.store, &found.message, status, at, Some(detail)).await?;
    Ok(None)
}

/// The running SMPP channels of a server, shared by the API (which starts a channel when it
/// is created) and the dispatcher (through the registry).
#[derive(Clone)]
pub struct SmppChannels {
    registry: ChannelRegistry,
    deps: Deps,
    running: Arc<Mutex<HashMap<String, Arc<SmppChannel>>>>,
}

impl SmppChannels {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let registry = ChannelRegistry::default();
        SmppChannels {
            deps: Deps {
                receipts: registry.receipts().clone(),
                store,
                clock,
                nlu: None,
            },
            registry,
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// MO messages of the channels started from now on go to the inbound pipeline.
    pub fn with_inbound(mut self, nlu: Arc<NluService>) -> Self {
        self.deps.nlu = Some(nlu);
        self
    }

    /// What the dispatcher routes configured channels' messages through.
    pub fn registry(&self) -> ChannelRegistry {
        self.registry.clone()
    }

    /// The hand-off queue of the dispatcher that runs with [`SmppChannels::registry`].
    pub fn handoff(&self) -> &crate::handoff::Handoff {
        self.registry.handoff()
    }

    /// Starts every tenant's stored `smpp` channel; the number started.
    pub async fn load(&self) -> Result<usize, StoreError> {
        let records = self.deps.store.channels_of_kind(KIND).await?;
        let mut started = 0;
        for record in records {
            match self.start(&record) {
                Ok(()) => started += 1,
                Err(e) => {
                    tracing::error!(channel = %record.id, name = %record.name, error = %e, "stored SMPP channel has a bad config; not started")
                }
            }
        }
        Ok(started)
    }

    /// Starts (or restarts) a channel: registers its adapter and binds in the background, so
    /// that MO messages flow before the first send.
    pub fn start(&self, record: &ChannelRecord) -> Result<(), ConfigError> {
        let config = parse_config(&record.config)?;
        let channel = Arc::new(SmppChannel {
            record: record.clone(),
            config,
            deps: self.deps.clone(),
            client: tokio::sync::Mutex::new(None),
        });
        let previous = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            running.insert(record.id.clone(), channel.clone())
        };
        if let Some(previous) = previous {
            previous.close();
        }
        self.registry.insert(&record.id, channel.clone());
        tokio::spawn(async move {
            if let Err(e) = channel.client().await {
                tracing::warn!(channel = %channel.record.id, error = %e, "SMPP channel not bound yet; the first send retries");
            }
        });
        Ok(())
    }

    /// Stops a channel (unbinds its client); messages still routed to it fail as
    /// unconfigured.
    pub fn stop(&self, channel_id: &str) {
        self.registry.remove(channel_id);
        let removed = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            running.remove(channel_id)
        };
        if let Some(channel) = removed {
            channel.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pointer(v: serde_json::Value) -> String {
        parse_config(&v)
            .err()
            .map(|e| e.pointer)
            .unwrap_or_default()
    }

    #[test]
    fn configs_are_checked_with_pointers() {
        let ok = json!({"host": "127.0.0.1", "port": 2775, "system_id": "acme", "password": "secret",
            "source_addr": "RELAIS", "window": 10, "binds": 2, "max_rate": 50});
        assert!(parse_config(&ok).is_ok());
        assert_eq!(pointer(json!({"system_id": "a", "password": "b"})), "/host");
        assert_eq!(pointer(json!({"host": "h", "system_id": "a"})), "/password");
        assert_eq!(
            pointer(json!({"host": "h", "system_id": "a", "password": "123456789"})),
            "/password"
        );
        assert_eq!(
            pointer(json!({"host": "h", "system_id": "a", "password": "p", "port": 70000})),
            "/port"
        );
        assert_eq!(
            pointer(
                json!({"host": "h", "system_id": "a", "password": "p", "data_coding": "ebcdic"})
            ),
            "/data_coding"
        );
        assert_eq!(
            pointer(json!({"host": "h", "system_id": "a", "password": "p", "window": 0})),
            "/window"
        );
    }

    #[test]
    fn a_long_message_is_delivered_only_when_every_part_is() {
        let mut parts = PartStates::default();
        let r: Arc<str> = Arc::from("m1");
        assert_eq!(
            parts.record(&r, 1, 2, ReceiptState::Delivered),
            MessageOutcome::Pending
        );
        assert_eq!(
            parts.record(&r, 2, 2, ReceiptState::Delivered),
            MessageOutcome::Delivered
        );
        let f: Arc<str> = Arc::from("m2");
        assert_eq!(
            parts.record(&f, 2, 3, ReceiptState::Undeliverable),
            MessageOutcome::Failed(ReceiptState::Undeliverable)
        );
        assert!(parts.pending.is_empty());
    }
}
