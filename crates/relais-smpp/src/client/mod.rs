//! ESME client: Relais sending SMS through an SMSC.
//!
//! `SmppClient::connect` starts one task per bind (`bind.rs`). `submit` splits and encodes
//! the text, hands the parts to one connected bind and awaits their `submit_sm_resp`; each
//! bind keeps up to `window` submits in flight (pipelined), paces itself to `max_rate` and
//! slows down adaptively when the SMSC throttles (`pace.rs`), sends `enquire_link` on a
//! timer and reconnects with monotonic jittered backoff (`backoff.rs`). Receipts and MO
//! messages come out of [`ClientEvents`], each with an [`Ack`] the application confirms once
//! it has stored them: only then does the SMSC get its `deliver_sm_resp` (`ack.rs`).

mod bind;

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusmpp::CommandStatus;
use rusmpp::pdus::SubmitSm;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use crate::ack::{Ack, AckSink};
use crate::codec::DEFAULT_MAX_PDU_LEN;
use crate::concat::{Concatenation, Reassembler, build_parts};
use crate::correlate::ReceiptIdBase;
use crate::correlate::{Correlator, PartRef, Receipt};
use crate::pdu::{BindMode, ESM_UDHI, ShortMessage, wire_address};
use crate::status::{ErrorKind, classify};

use bind::BindTask;

/// Which alphabet to send texts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CodingPolicy {
    /// GSM-7 (data_coding 0) when every character fits, UCS-2 (8) otherwise.
    #[default]
    Auto,
    /// Always data_coding 0; texts that do not fit fall back to UCS-2.
    Gsm7,
    /// data_coding 3 (Latin-1); texts that do not fit fall back to UCS-2.
    Latin1,
    /// Always data_coding 8.
    Ucs2,
}

/// How the binds are opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BindStyle {
    /// `binds` transceiver binds.
    #[default]
    Transceiver,
    /// `binds` transmitter binds plus `binds` receiver binds.
    TransmitterReceiver,
}

/// Client configuration: the `config` of an `smpp` channel. Unknown keys are ignored and
/// every key but `host`, `system_id` and `password` has a default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientConfig {
    pub host: String,
    pub port: u16,
    pub system_id: String,
    pub password: String,
    pub system_type: String,
    /// Sender used when a request names none.
    pub source_addr: String,
    /// Submits in flight per bind.
    pub window: usize,
    /// Number of binds (of each kind with `transmitter_receiver`).
    pub binds: usize,
    pub bind_style: BindStyle,
    /// Messages (PDUs) per second over the whole client; `None` = as fast as the window
    /// allows. A throttling SMSC makes the binds go slower than this, never faster.
    pub max_rate: Option<f64>,
    pub concatenation: Concatenation,
    pub data_coding: CodingPolicy,
    /// Replace look-alike characters to stay in GSM-7 (see `relais_core::sms::smart_encode`).
    pub smart_encoding: bool,
    /// Ask for delivery receipts (registered_delivery = 1).
    pub registered_delivery: bool,
    pub enquire_link_secs: u64,
    pub response_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// Delay before a PDU answered `ESME_RTHROTTLED` (or `ESME_RMSGQFUL`) is resent,
    /// doubled at each further throttle of that PDU (5 s at most). Other PDUs keep flowing.
    pub throttle_pause_ms: u64,
    /// Resends of one PDU after `ESME_RTHROTTLED` before giving up (transient error with
    /// the throttling status).
    pub max_throttle_retries: u32,
    pub max_pdu_len: usize,
    /// How long a receipt whose submit_sm_resp is not yet seen is held (at most half of
    /// `ack_timeout_ms`, so that it reaches the application before its deadline).
    pub receipt_hold_secs: u64,
    /// Message ids remembered for receipt correlation.
    pub correlation_capacity: usize,
    /// Receipts held waiting for their id.
    pub early_receipt_capacity: usize,
    /// How receipt ids relate to `submit_sm_resp` ids (Kannel's `msg-id-type`).
    pub receipt_id_base: ReceiptIdBase,
    /// Events buffered for the application; when they are all unread, a new `deliver_sm` is
    /// answered `ESME_RX_T_APPN` (the SMSC delivers it again later) and binds keep reading.
    pub events_capacity: usize,
    /// How long a `deliver_sm` waits for the application's confirmation (1 s at least);
    /// past it the bind answers `ESME_RX_T_APPN` (the SMSC delivers it again) before the
    /// SMSC gives up.
    pub ack_timeout_ms: u64,
    /// `deliver_sm` awaiting confirmation per bind; beyond it they are answered
    /// `ESME_RX_T_APPN` at once.
    pub max_pending_acks: usize,
    /// The vendor-specific TLV (0x1400–0x3FFF) each submit carries its request's
    /// `reference` in (the Relais message id), so that an SMSC that keeps it can
    /// deduplicate a message sent again after a crash; `None` sends none.
    pub reference_tlv: Option<u16>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 2775,
            system_id: String::new(),
            password: String::new(),
            system_type: String::new(),
            source_addr: String::new(),
            window: 50,
            binds: 1,
            bind_style: BindStyle::Transceiver,
            max_rate: None,
            concatenation: Concatenation::Udh8,
            data_coding: CodingPolicy::Auto,
            smart_encoding: false,
            registered_delivery: true,
            enquire_link_secs: 30,
            response_timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            reconnect_min_ms: 500,
            reconnect_max_ms: 30_000,
            throttle_pause_ms: 200,
            max_throttle_retries: 20,
            max_pdu_len: DEFAULT_MAX_PDU_LEN,
            receipt_hold_secs: 30,
            correlation_capacity: 1_000_000,
            early_receipt_capacity: 100_000,
            receipt_id_base: ReceiptIdBase::Same,
            events_capacity: 10_000,
            ack_timeout_ms: 20_000,
            max_pending_acks: 2048,
            reference_tlv: Some(crate::pdu::DEFAULT_REFERENCE_TLV),
        }
    }
}

/// One message to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitRequest {
    /// E.164 (`+` optional) or a short code.
    pub destination: String,
    pub text: String,
    /// Sender; `None` = `source_addr` of the config.
    pub source: Option<String>,
    /// Echoed in the receipts of this message (e.g. the engine's message id).
    pub reference: Option<String>,
    /// Override of `registered_delivery`.
    pub registered_delivery: Option<bool>,
}

/// The SMSC accepted every part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitOutcome {
    /// SMSC message id of each part, in part order.
    pub part_ids: Vec<String>,
}

/// The SMSC (or the link) refused the message. `kind` says what to do: `NotConnected` (the
/// SMSC never saw it: hold it, spend no attempt, wait for [`SmppClient::ready`]),
/// `Transient` (retry later; after a lost link or a missing resp the SMSC may have it),
/// `Permanent` (give up).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} submit error{}: {reason}", status.map(|s| format!(" (command_status {s:#010x})")).unwrap_or_default())]
pub struct SubmitError {
    pub kind: ErrorKind,
    /// `command_status` when the SMSC answered.
    pub status: Option<u32>,
    pub reason: String,
    /// Parts of a multi-part message the SMSC accepted before another failed (they may still
    /// be delivered; their receipts will come).
    pub accepted_part_ids: Vec<String>,
}

impl SubmitError {
    fn transient(reason: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Transient,
            status: None,
            reason: reason.into(),
            accepted_part_ids: Vec::new(),
        }
    }
    fn not_connected(reason: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::NotConnected,
            status: None,
            reason: reason.into(),
            accepted_part_ids: Vec::new(),
        }
    }
    fn permanent(reason: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Permanent,
            status: None,
            reason: reason.into(),
            accepted_part_ids: Vec::new(),
        }
    }
    fn from_status(status: CommandStatus) -> Self {
        Self {
            kind: classify(status),
            status: Some(u32::from(status)),
            reason: format!("{status:?}"),
            accepted_part_ids: Vec::new(),
        }
    }
    /// Worth trying again later: `Transient` or `NotConnected`.
    pub fn is_transient(&self) -> bool {
        self.kind != ErrorKind::Permanent
    }
    /// The SMSC never saw the message (no bind, or the bind dropped before writing it).
    pub fn is_not_connected(&self) -> bool {
        self.kind == ErrorKind::NotConnected
    }
}

/// A message from a handset (MO), concatenated parts already joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub source: String,
    pub destination: String,
    pub text: String,
    pub data_coding: u8,
}

/// What the application receives from the SMSC. A receipt or an MO message comes with the
/// [`Ack`] of the `deliver_sm` it was made of: confirm it once the event is stored; drop it
/// and the SMSC delivers the event again.
#[derive(Debug)]
pub enum SmppEvent {
    Receipt(Receipt, Ack),
    Inbound(InboundMessage, Ack),
    /// A bind went up or down (for health and metrics; dropped when the application lags,
    /// [`SmppClient::is_ready`] is the state).
    Bind {
        bind: usize,
        connected: bool,
    },
}

/// The event stream of a client.
#[derive(Debug)]
pub struct ClientEvents {
    rx: mpsc::Receiver<SmppEvent>,
}

impl ClientEvents {
    /// The next event; `None` once the client is closed and all events were read.
    pub async fn recv(&mut self) -> Option<SmppEvent> {
        self.rx.recv().await
    }
    pub fn try_recv(&mut self) -> Option<SmppEvent> {
        self.rx.try_recv().ok()
    }
}

/// Errors of `connect`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot reach {0}")]
    Unreachable(String),
    #[error("bind refused with command_status {0:#010x}")]
    BindRefused(u32),
}

struct Request {
    sm: SubmitSm,
    part: Option<PartRef>,
    /// `ESME_RTHROTTLED` answers so far.
    attempts: u32,
    reply: oneshot::Sender<Result<String, SubmitError>>,
}

struct BindSlot {
    tx: mpsc::Sender<Request>,
    connected: Arc<AtomicBool>,
}

struct Shared {
    config: ClientConfig,
    correlator: Mutex<Correlator<Ack>>,
    reassembler: Mutex<Reassembler<Ack>>,
    events: mpsc::Sender<SmppEvent>,
    /// Sending binds bound now.
    ready: watch::Sender<usize>,
}

impl Shared {
    /// Hands an event to the application without waiting, so that a slow application never
    /// stalls a bind. When the buffer is full the event is dropped with its acknowledgement,
    /// which answers `ESME_RX_T_APPN`: the SMSC delivers it again later.
    fn offer(&self, e: SmppEvent) {
        if let Err(mpsc::error::TrySendError::Full(e)) = self.events.try_send(e) {
            tracing::debug!(event = ?e, "events buffer full; the SMSC will deliver it again");
        }
    }
    fn offer_receipts(&self, v: Vec<(Receipt, Ack)>) {
        for (r, a) in v {
            self.offer(SmppEvent::Receipt(r, a));
        }
    }
}

/// Handle to a running client. Cheap to clone; the binds stop when `close` is called or the
/// last clone is dropped.
#[derive(Clone)]
pub struct SmppClient {
    shared: Arc<Shared>,
    slots: Arc<Vec<BindSlot>>,
    rr: Arc<AtomicUsize>,
    udh_ref: Arc<AtomicU16>,
    stop: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for SmppClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmppClient")
            .field("host", &self.shared.config.host)
            .field("port", &self.shared.config.port)
            .field("binds", &self.slots.len())
            .finish()
    }
}

impl SmppClient {
    /// Opens the binds and returns once each has tried once: `Ok` if at least one is bound
    /// (the others keep retrying in the background), the first error otherwise.
    pub async fn connect(config: ClientConfig) -> Result<(SmppClient, ClientEvents), ConnectError> {
        let (client, events, firsts) = Self::launch(config)?;
        let mut first_err = None;
        let mut any_ok = false;
        for f in firsts {
            match f.await {
                Ok(Ok(())) => any_ok = true,
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {}
            }
        }
        if !any_ok {
            client.close();
            return Err(first_err.unwrap_or_else(|| ConnectError::Unreachable("no bind".into())));
        }
        Ok((client, events))
    }

    /// Starts the binds in the background and returns at once: only a bad configuration is
    /// an error. Until a bind is up, `submit` fails with `NotConnected`; [`SmppClient::ready`]
    /// says when one is.
    pub fn start(config: ClientConfig) -> Result<(SmppClient, ClientEvents), ConnectError> {
        let (client, events, _firsts) = Self::launch(config)?;
        Ok((client, events))
    }

    #[allow(clippy::type_complexity)]
    fn launch(
        config: ClientConfig,
    ) -> Result<
        (
            SmppClient,
            ClientEvents,
            Vec<oneshot::Receiver<Result<(), ConnectError>>>,
        ),
        ConnectError,
    > {
        if config.host.is_empty() || config.system_id.is_empty() {
            return Err(ConnectError::Config(
                "host and system_id are required".into(),
            ));
        }
        if config.system_id.len() > 15 || config.password.len() > 8 {
            return Err(ConnectError::Config(
                "system_id is at most 15 characters and password at most 8 (SMPP 3.4)".into(),
            ));
        }
        let binds = config.binds.clamp(1, 64);
        let (etx, erx) = mpsc::channel(config.events_capacity.max(16));
        // A held receipt must reach the application with time left to confirm it.
        let hold = Duration::from_secs(config.receipt_hold_secs)
            .min(Duration::from_millis(config.ack_timeout_ms.max(bind::MIN_ACK_TIMEOUT_MS)) / 2);
        let shared = Arc::new(Shared {
            correlator: Mutex::new(Correlator::with_receipt_ids(
                config.correlation_capacity,
                config.early_receipt_capacity,
                hold,
                config.receipt_id_base,
            )),
            reassembler: Mutex::new(Reassembler::new(10_000, Duration::from_secs(300))),
            events: etx,
            ready: watch::Sender::new(0),
            config,
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut modes = Vec::new();
        match shared.config.bind_style {
            BindStyle::Transceiver => {
                modes.extend(std::iter::repeat_n(BindMode::Transceiver, binds))
            }
            BindStyle::TransmitterReceiver => {
                modes.extend(std::iter::repeat_n(BindMode::Transmitter, binds));
                modes.extend(std::iter::repeat_n(BindMode::Receiver, binds));
            }
        }
        let senders = modes.iter().filter(|m| m.can_submit()).count().max(1);
        let rate_per_bind = shared
            .config
            .max_rate
            .map(|r| (r / senders as f64).max(0.001));
        let mut slots = Vec::new();
        let mut firsts = Vec::new();
        for (i, mode) in modes.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel(shared.config.window.max(1));
            let connected = Arc::new(AtomicBool::new(false));
            let (ftx, frx) = oneshot::channel();
            firsts.push(frx);
            let (acks, ack_rx) = AckSink::new();
            let task = BindTask {
                index: i,
                mode,
                shared: shared.clone(),
                connected: connected.clone(),
                ceiling: rate_per_bind,
                acks,
            };
            tokio::spawn(task.run(rx, ack_rx, stop_rx.clone(), ftx));
            if mode.can_submit() {
                slots.push(BindSlot { tx, connected });
            }
        }
        tokio::spawn(housekeeping(shared.clone(), stop_rx));
        let client = SmppClient {
            shared,
            slots: Arc::new(slots),
            rr: Arc::new(AtomicUsize::new(0)),
            udh_ref: Arc::new(AtomicU16::new(rand::random())),
            stop: Arc::new(stop_tx),
        };
        Ok((client, ClientEvents { rx: erx }, firsts))
    }

    /// Number of binds currently bound (transmitting ones).
    pub fn connected_binds(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.connected.load(Ordering::Relaxed))
            .count()
    }

    /// Whether a `submit` now would find a bound bind.
    pub fn is_ready(&self) -> bool {
        self.connected_binds() > 0
    }

    /// Waits until a bind that can submit is bound: `true` then, `false` once the client is
    /// closed.
    pub async fn ready(&self) -> bool {
        let mut bound = self.shared.ready.subscribe();
        let mut stop = self.stop.subscribe();
        loop {
            if *stop.borrow_and_update() {
                return false;
            }
            if *bound.borrow_and_update() > 0 {
                return true;
            }
            tokio::select! {
                r = bound.changed() => if r.is_err() { return false },
                r = stop.changed() => if r.is_err() { return false },
            }
        }
    }

    /// Unbinds every bind.
    pub fn close(&self) {
        let _ = self.stop.send(true);
    }

    /// Sends one message (all its parts) and waits for the SMSC's answers.
    pub async fn submit(&self, req: SubmitRequest) -> Result<SubmitOutcome, SubmitError> {
        let cfg = &self.shared.config;
        let text = if cfg.smart_encoding {
            relais_core::sms::smart_encode(&req.text).into_owned()
        } else {
            req.text.clone()
        };
        let coding = choose_coding(&text, cfg.data_coding);
        let reference = self.udh_ref.fetch_add(1, Ordering::Relaxed);
        let parts = build_parts(&text, coding, cfg.concatenation, reference)
            .map_err(|e| SubmitError::permanent(e.to_string()))?;
        let source = req.source.as_deref().unwrap_or(&cfg.source_addr);
        let total = parts.len() as u8;
        let app_ref: Arc<str> = Arc::from(req.reference.as_deref().unwrap_or(""));
        let mut sms = Vec::with_capacity(parts.len());
        for (i, p) in parts.into_iter().enumerate() {
            let mut m = ShortMessage::new(wire_address(source), wire_address(&req.destination));
            m.data_coding = coding.code();
            m.registered_delivery =
                u8::from(req.registered_delivery.unwrap_or(cfg.registered_delivery));
            if p.udhi {
                m.esm_class |= ESM_UDHI;
            }
            m.short_message = p.short_message;
            m.payload = p.payload;
            m.sar = p.sar;
            m.client_reference = cfg.reference_tlv.zip(req.reference.clone());
            let sm = m
                .to_submit_sm()
                .map_err(|e| SubmitError::permanent(e.to_string()))?;
            let part = req.reference.as_ref().map(|_| PartRef {
                reference: app_ref.clone(),
                index: (i + 1) as u8,
                total,
            });
            sms.push((sm, part));
        }
        let slot = self
            .pick()
            .ok_or_else(|| SubmitError::not_connected("no bind is connected"))?;
        let mut replies = Vec::with_capacity(sms.len());
        for (sm, part) in sms {
            let (reply, rx) = oneshot::channel();
            slot.tx
                .send(Request {
                    sm,
                    part,
                    attempts: 0,
                    reply,
                })
                .await
                .map_err(|_| SubmitError::not_connected("client closed"))?;
            replies.push(rx);
        }
        let mut ids = Vec::with_capacity(replies.len());
        let mut failure: Option<SubmitError> = None;
        for rx in replies {
            match rx.await {
                Ok(Ok(id)) => ids.push(id),
                Ok(Err(e)) => {
                    // The part that says the most decides: permanent, then "may have been
                    // accepted", then "never left".
                    if failure
                        .as_ref()
                        .is_none_or(|f| severity(e.kind) > severity(f.kind))
                    {
                        failure = Some(e);
                    }
                }
                Err(_) => {
                    // Dropped unanswered: whether it was written is unknown.
                    let e = SubmitError::transient("bind stopped");
                    if failure
                        .as_ref()
                        .is_none_or(|f| severity(e.kind) > severity(f.kind))
                    {
                        failure = Some(e);
                    }
                }
            }
        }
        match failure {
            None => Ok(SubmitOutcome { part_ids: ids }),
            Some(mut e) => {
                e.accepted_part_ids = ids;
                Err(e)
            }
        }
    }

    fn pick(&self) -> Option<&BindSlot> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.slots[(start + i) % n])
            .find(|s| s.connected.load(Ordering::Relaxed))
    }
}

impl Drop for SmppClient {
    fn drop(&mut self) {
        // The last handle going away stops the binds.
        if Arc::strong_count(&self.stop) == 1 {
            let _ = self.stop.send(true);
        }
    }
}

fn severity(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::NotConnected => 0,
        ErrorKind::Transient => 1,
        ErrorKind::Permanent => 2,
    }
}

fn choose_coding(text: &str, policy: CodingPolicy) -> relais_core::sms::DataCoding {
    use relais_core::sms::{DataCoding, Encoding, detect_encoding};
    let fits = |dc: DataCoding| text.chars().all(|c| dc.cost(c).is_some());
    match policy {
        CodingPolicy::Auto => match detect_encoding(text) {
            Encoding::Gsm7 => DataCoding::Gsm7,
            Encoding::Ucs2 => DataCoding::Ucs2,
        },
        CodingPolicy::Gsm7 if fits(DataCoding::Gsm7) => DataCoding::Gsm7,
        CodingPolicy::Latin1 if fits(DataCoding::Latin1) => DataCoding::Latin1,
        _ => DataCoding::Ucs2,
    }
}

/// Releases held receipts whose hold expired and incomplete MO messages that timed out.
async fn housekeeping(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = Instant::now();
        let receipts = shared
            .correlator
            .lock()
            .map(|mut c| c.expire(now))
            .unwrap_or_default();
        shared.offer_receipts(receipts);
        let partial = shared
            .reassembler
            .lock()
            .map(|mut r| r.expire(now))
            .unwrap_or_default();
        for m in partial {
            shared.offer(SmppEvent::Inbound(
                InboundMessage {
                    source: m.source,
                    destination: m.destination,
                    text: m.text,
                    data_coding: 0,
                },
                Ack::none().join(m.acks),
            ));
        }
    }
}
