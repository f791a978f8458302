//! Configured `smpp` channels: one [`SmppClient`] per channel, behind [`ChannelAdapter`].
//!
//! The client binds in the background from the moment the channel is started; while no
//! bind is up the channel says it is not ready, and its messages wait in the outbox without
//! spending attempts. `send` submits the message (the client splits long texts) with the
//! Relais message id as reference (also on the wire, in a vendor TLV), and answers with the
//! first part's SMSC id. A task per channel reads the client's events: receipts are folded
//! per message (a multi-part message is delivered only when every part is) and applied to
//! the message they reference; MO messages go to the inbound pipeline. A `deliver_sm` is
//! acknowledged to the SMSC only once what it carried is stored: a crash before that makes
//! the SMSC deliver it again, never loses it.

use crate::dispatch::{
    ChannelAdapter, ChannelRegistry, OutboundMessage, ProviderAck, ReceiptAck, ReceiptInbox,
    SendError, apply_channel_receipt, apply_receipt_to,
};
use crate::inbound::NewInbound;
use async_trait::async_trait;
use relais_core::channel::ChannelKind;
use relais_core::clock::Clock;
use relais_core::content::Body;
use relais_core::status::MessageStatus;
use relais_smpp::{
    Ack, ClientConfig, ClientEvents, ErrorKind, InboundMessage, MessageOutcome, Receipt,
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
    if let Some(tag) = config.reference_tlv
        && !relais_smpp::pdu::VENDOR_TLVS.contains(&tag)
    {
        return Err(config_error(
            "/reference_tlv",
            "`reference_tlv` must be a vendor-specific tag, 5120 to 16383 (0x1400 to 0x3FFF), or null",
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
    inbound: Option<Arc<crate::inbound::InboundPipeline>>,
}

/// One configured SMPP channel.
pub struct SmppChannel {
    record: ChannelRecord,
    config: ClientConfig,
    client: SmppClient,
}

#[async_trait]
impl ChannelAdapter for SmppChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    fn is_ready(&self) -> bool {
        self.client.is_ready()
    }

    /// The client's window on each bind that submits: a `kill -9` can send again at most
    /// what the SMSC had in flight.
    fn max_in_flight(&self) -> usize {
        self.config.window.max(1) * self.config.binds.max(1)
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
        let request = SubmitRequest {
            destination: message.to.clone(),
            text,
            source: message.from.clone(),
            reference: Some(message.message_id.clone()),
            registered_delivery: None,
        };
        match self.client.submit(request).await {
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
                } else if e.is_not_connected() {
                    Err(SendError::not_sent("smpp_not_connected", e.reason))
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

/// The latest state of each part of the multi-part messages still waiting for receipts,
/// with the acknowledgements of the parts' `deliver_sm`: they are confirmed only once the
/// message's outcome is stored (a part's state is not stored on its own, so a crash makes
/// the SMSC deliver those receipts again).
#[derive(Default)]
struct PartStates {
    pending: HashMap<Arc<str>, PendingParts>,
}

/// Each part's latest state (by index) and the acknowledgements held back for them.
type PendingParts = (Vec<Option<ReceiptState>>, Vec<Ack>);

impl PartStates {
    /// Records a part's state; the message's outcome once it is decided, with the
    /// acknowledgements of all its parts.
    fn record(
        &mut self,
        reference: &Arc<str>,
        index: u8,
        total: u8,
        state: ReceiptState,
        ack: Ack,
    ) -> (MessageOutcome, Vec<Ack>) {
        let total = usize::from(total.max(1));
        if self.pending.len() >= MAX_PENDING_PARTS {
            // Forgotten without being confirmed: the SMSC delivers them again.
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
        let (parts, acks) = self
            .pending
            .entry(reference.clone())
            .or_insert_with(|| (vec![None; total], Vec::new()));
        if let Some(slot) = parts.get_mut(usize::from(index.saturating_sub(1))) {
            *slot = Some(state);
        }
        acks.push(ack);
        let known: Vec<ReceiptState> = parts.iter().flatten().copied().collect();
        let outcome = message_outcome(total, &known);
        if outcome == MessageOutcome::Pending {
            return (outcome, Vec::new());
        }
        let acks = self
            .pending
            .remove(reference)
            .map(|(_, acks)| acks)
            .unwrap_or_default();
        (outcome, acks)
    }
}

/// Events read from the binds are handled this many at a time at most; the burst's
/// correlated successful receipts go to the dispatcher together.
const RECEIPT_BATCH: usize = 1000;

/// What became of a receipt.
enum Handled {
    /// Stored already (a failure that may move the message on, an uncorrelated receipt),
    /// or nothing to store: confirm now.
    Done(Vec<Ack>),
    /// A status for the dispatcher's writer to store; confirm once it is written.
    Queued((String, MessageEvent), Vec<Ack>),
    /// A part of a message still waiting for its other parts' receipts.
    Held,
}

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
        let mut written_with_them: Vec<Ack> = Vec::new();
        let mut inbound = Vec::new();
        for event in burst {
            match event {
                SmppEvent::Receipt(receipt, ack) => {
                    match on_receipt(&record, &deps, &mut parts, receipt, ack).await {
                        Ok(Handled::Done(acks)) => Ack::confirm_all(acks),
                        Ok(Handled::Queued(status, acks)) => {
                            statuses.push(status);
                            written_with_them.extend(acks);
                        }
                        Ok(Handled::Held) => {}
                        // The acknowledgement is dropped: the SMSC delivers it again.
                        Err(e) => {
                            tracing::error!(channel = %record.id, error = %e, "cannot apply an SMPP receipt; the SMSC will deliver it again");
                        }
                    }
                }
                SmppEvent::Inbound(mo, ack) => inbound.push((mo, ack)),
                SmppEvent::Bind { bind, connected } => {
                    tracing::info!(channel = %record.id, bind, connected, "SMPP bind state");
                }
            }
        }
        // The burst's MO messages are handed over together, in their order: the pipeline
        // takes them as one group instead of one at a time.
        let handed = inbound.into_iter().map(|(mo, ack)| {
            let (record, deps) = (&record, &deps);
            async move {
                if on_inbound(record, deps, mo).await {
                    ack.confirm();
                }
            }
        });
        futures::future::join_all(handed).await;
        let confirm: ReceiptAck = Box::new(move || Ack::confirm_all(written_with_them));
        deps.receipts.push(statuses, Some(confirm));
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

/// Stores an MO message through the inbound pipeline; whether it was stored (and may be
/// acknowledged to the SMSC).
async fn on_inbound(record: &ChannelRecord, deps: &Deps, mo: InboundMessage) -> bool {
    let Some(pipeline) = &deps.inbound else {
        tracing::warn!(channel = %record.id, "MO message refused: no inbound pipeline; the SMSC keeps it");
        return false;
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
    match pipeline.receive(new).await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(channel = %record.id, error = %e, "MO message not stored; the SMSC will deliver it again");
            false
        }
    }
}

/// Applies a receipt that needs the message (a failure may move it to the next step of
/// its chain, an uncorrelated one is found by provider id) and says when its `deliver_sm`
/// may be acknowledged; a correlated success is returned for the caller to write with the
/// others of its burst.
async fn on_receipt(
    record: &ChannelRecord,
    deps: &Deps,
    parts: &mut PartStates,
    receipt: Receipt,
    ack: Ack,
) -> Result<Handled, crate::dispatch::DispatchError> {
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
        return Ok(Handled::Done(vec![ack]));
    };
    let (outcome, acks) = if part.total <= 1 {
        (message_outcome(1, &[receipt.state]), vec![ack])
    } else {
        parts.record(&part.reference, part.index, part.total, receipt.state, ack)
    };
    let status = match outcome {
        MessageOutcome::Pending if part.total <= 1 => return Ok(Handled::Done(acks)),
        MessageOutcome::Pending => return Ok(Handled::Held),
        MessageOutcome::Delivered => MessageStatus::Delivered,
        MessageOutcome::Failed(state) => status_of(state).unwrap_or(MessageStatus::Undelivered),
    };
    if !status.is_failure() {
        // The reference is the id of a message this channel submitted.
        let event = MessageEvent::new(status, at)
            .channel(record.id.as_str())
            .reason("receipt")
            .detail(detail);
        return Ok(Handled::Queued((part.reference.to_string(), event), acks));
    }
    let Some(found) = deps
        .store
        .message(&record.tenant_id, &part.reference)
        .await?
    else {
        return Ok(Handled::Done(acks));
    };
    apply_receipt_to(&*deps.store, &found.message, status, at, Some(detail)).await?;
    Ok(Handled::Done(acks))
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
                inbound: None,
            },
            registry,
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// MO messages of the channels started from now on go to the inbound pipeline.
    pub fn with_inbound(mut self, pipeline: Arc<crate::inbound::InboundPipeline>) -> Self {
        self.deps.inbound = Some(pipeline);
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
    /// that MO messages flow before the first send. Its stored config has its secrets
    /// sealed ([`crate::secrets`]); a secret that does not open is a config error.
    pub fn start(&self, record: &ChannelRecord) -> Result<(), ConfigError> {
        let opened = crate::secrets::current()
            .open_config(&record.config)
            .map_err(|e| config_error(&format!("/{}", e.key), e.error.to_string()))?;
        let config = parse_config(&opened)?;
        // Binds in the background: until one is up the channel is not ready, and its
        // messages wait (a down SMSC at start costs no attempts).
        let (client, events) =
            SmppClient::start(config.clone()).map_err(|e| config_error("", e.to_string()))?;
        tokio::spawn(read_events(record.clone(), self.deps.clone(), events));
        let channel = Arc::new(SmppChannel {
            record: record.clone(),
            config,
            client,
        });
        let previous = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            running.insert(record.id.clone(), channel.clone())
        };
        if let Some(previous) = previous {
            previous.client.close();
        }
        self.registry.insert(&record.id, channel);
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
            tracing::info!(channel = %channel.record.id, "SMPP channel stopped");
            channel.client.close();
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
    fn a_long_message_is_delivered_only_when_every_part_is_and_its_parts_are_acknowledged_then() {
        let mut parts = PartStates::default();
        let r: Arc<str> = Arc::from("m1");
        let (outcome, acks) = parts.record(&r, 1, 2, ReceiptState::Delivered, Ack::none());
        assert_eq!(outcome, MessageOutcome::Pending);
        assert!(
            acks.is_empty(),
            "the first part's receipt waits for the second"
        );
        let (outcome, acks) = parts.record(&r, 2, 2, ReceiptState::Delivered, Ack::none());
        assert_eq!(outcome, MessageOutcome::Delivered);
        assert_eq!(
            acks.len(),
            2,
            "both parts' receipts are acknowledged with the outcome"
        );
        let f: Arc<str> = Arc::from("m2");
        let (outcome, _) = parts.record(&f, 2, 3, ReceiptState::Undeliverable, Ack::none());
        assert_eq!(outcome, MessageOutcome::Failed(ReceiptState::Undeliverable));
        assert!(parts.pending.is_empty());
    }

    #[test]
    fn a_reference_tlv_outside_the_vendor_range_is_refused() {
        let base = json!({"host": "h", "system_id": "a", "password": "p"});
        let with = |tlv: serde_json::Value| {
            let mut c = base.clone();
            c["reference_tlv"] = tlv;
            c
        };
        assert_eq!(pointer(with(json!(0x0204))), "/reference_tlv");
        assert!(parse_config(&with(json!(0x1401))).is_ok());
        let off = parse_config(&with(serde_json::Value::Null)).unwrap();
        assert_eq!(off.reference_tlv, None);
        assert_eq!(
            parse_config(&base).unwrap().reference_tlv,
            Some(relais_smpp::pdu::DEFAULT_REFERENCE_TLV)
        );
    }
}
