//! ESME client: Relais sending SMS through an SMSC.
//!
//! `SmppClient::connect` starts one task per bind. `submit` splits and encodes the text,
//! hands the parts to one connected bind and awaits their `submit_sm_resp`; each bind keeps
//! up to `window` submits in flight (pipelined), paces itself to `max_rate`, backs off on
//! `ESME_RTHROTTLED`, sends `enquire_link` on a timer and reconnects with exponential
//! backoff. Receipts and MO messages come out of [`ClientEvents`].

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusmpp::pdus::SubmitSm;
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::codec::{DEFAULT_MAX_PDU_LEN, Frame, generic_nack};
use crate::concat::{Concatenation, Reassembler, build_parts};
use crate::connection::{FrameReader, FrameWriter, WRITE_BATCH, split};
use crate::correlate::ReceiptIdBase;
use crate::correlate::{Correlator, PartRef, Receipt};
use crate::pdu::{
    BindMode, ESM_UDHI, ShortMessage, bind_pdu, deliver_sm_resp, error_resp, text_of, wire_address,
};
use crate::receipt::{ReceiptState, parse_receipt_text};
use crate::status::{ErrorKind, classify};

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
    /// Messages (PDUs) per second over the whole client; `None` = as fast as the window allows.
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
    /// First pause after `ESME_RTHROTTLED` (doubles up to 5 s while throttling goes on).
    pub throttle_pause_ms: u64,
    /// Resends of one PDU after `ESME_RTHROTTLED` before giving up (transient error).
    pub max_throttle_retries: u32,
    pub max_pdu_len: usize,
    /// How long a receipt whose submit_sm_resp is not yet seen is held.
    pub receipt_hold_secs: u64,
    /// Message ids remembered for receipt correlation.
    pub correlation_capacity: usize,
    /// Receipts held waiting for their id.
    pub early_receipt_capacity: usize,
    /// How receipt ids relate to `submit_sm_resp` ids (Kannel's `msg-id-type`).
    pub receipt_id_base: ReceiptIdBase,
    /// Events buffered for the application before binds stop reading.
    pub events_capacity: usize,
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

/// The SMSC (or the link) refused the message.
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
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
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

/// What the application receives from the SMSC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmppEvent {
    Receipt(Receipt),
    Inbound(InboundMessage),
    /// A bind went up or down (for health and metrics).
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
    attempts: u32,
    reply: oneshot::Sender<Result<String, SubmitError>>,
}

struct BindSlot {
    tx: mpsc::Sender<Request>,
    connected: Arc<AtomicBool>,
}

struct Shared {
    config: ClientConfig,
    correlator: Mutex<Correlator>,
    reassembler: Mutex<Reassembler>,
    events: mpsc::Sender<SmppEvent>,
}

impl Shared {
    async fn emit(&self, e: SmppEvent) {
        let _ = self.events.send(e).await;
    }
    async fn emit_all(&self, v: Vec<Receipt>) {
        for r in v {
            self.emit(SmppEvent::Receipt(r)).await;
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
        let shared = Arc::new(Shared {
            correlator: Mutex::new(Correlator::with_receipt_ids(
                config.correlation_capacity,
                config.early_receipt_capacity,
                Duration::from_secs(config.receipt_hold_secs),
                config.receipt_id_base,
            )),
            reassembler: Mutex::new(Reassembler::new(10_000, Duration::from_secs(300))),
            events: etx,
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
            let task = BindTask {
                index: i,
                mode,
                shared: shared.clone(),
                connected: connected.clone(),
                rate: rate_per_bind,
            };
            tokio::spawn(task.run(rx, stop_rx.clone(), ftx));
            if mode.can_submit() {
                slots.push(BindSlot { tx, connected });
            }
        }
        tokio::spawn(housekeeping(shared.clone(), stop_rx));
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
        let client = SmppClient {
            shared,
            slots: Arc::new(slots),
            rr: Arc::new(AtomicUsize::new(0)),
            udh_ref: Arc::new(AtomicU16::new(rand::random())),
            stop: Arc::new(stop_tx),
        };
        if !any_ok {
            let _ = client.stop.send(true);
            return Err(first_err.unwrap_or_else(|| ConnectError::Unreachable("no bind".into())));
        }
        Ok((client, ClientEvents { rx: erx }))
    }

    /// Number of binds currently bound (transmitting ones).
    pub fn connected_binds(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.connected.load(Ordering::Relaxed))
            .count()
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
            .ok_or_else(|| SubmitError::transient("no bind is connected"))?;
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
                .map_err(|_| SubmitError::transient("client closed"))?;
            replies.push(rx);
        }
        let mut ids = Vec::with_capacity(replies.len());
        let mut failure: Option<SubmitError> = None;
        for rx in replies {
            match rx.await {
                Ok(Ok(id)) => ids.push(id),
                Ok(Err(e)) => {
                    if failure
                        .as_ref()
                        .is_none_or(|f| f.kind == ErrorKind::Transient)
                    {
                        failure = Some(e);
                    }
                }
                Err(_) => {
                    failure.get_or_insert_with(|| SubmitError::transient("bind stopped"));
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
        shared.emit_all(receipts).await;
        let partial = shared
            .reassembler
            .lock()
            .map(|mut r| r.expire(now))
            .unwrap_or_default();
        for (source, destination, text) in partial {
            shared
                .emit(SmppEvent::Inbound(InboundMessage {
                    source,
                    destination,
                    text,
                    data_coding: 0,
                }))
                .await;
        }
    }
}

struct BindTask {
    index: usize,
    mode: BindMode,
    shared: Arc<Shared>,
    connected: Arc<AtomicBool>,
    rate: Option<f64>,
}

struct InFlight {
    req: Request,
    sent_at: Instant,
}

enum SessionEnd {
    Stop,
    Lost(String),
}

impl BindTask {
    async fn run(
        self,
        mut rx: mpsc::Receiver<Request>,
        mut stop: watch::Receiver<bool>,
        first: oneshot::Sender<Result<(), ConnectError>>,
    ) {
        let cfg = &self.shared.config;
        let mut first = Some(first);
        let mut backoff = Duration::from_millis(cfg.reconnect_min_ms.max(10));
        let max_backoff = Duration::from_millis(cfg.reconnect_max_ms.max(cfg.reconnect_min_ms));
        let mut queue = std::collections::VecDeque::new();
        loop {
            if *stop.borrow() {
                break;
            }
            match self.open().await {
                Ok((reader, writer)) => {
                    // Mark the bind usable before `connect` returns, or the first submits
                    // would find no connected bind.
                    self.connected.store(true, Ordering::Relaxed);
                    if let Some(f) = first.take() {
                        let _ = f.send(Ok(()));
                    }
                    self.shared
                        .emit(SmppEvent::Bind {
                            bind: self.index,
                            connected: true,
                        })
                        .await;
                    let started = Instant::now();
                    let end = self
                        .session(reader, writer, &mut rx, &mut queue, &mut stop)
                        .await;
                    self.connected.store(false, Ordering::Relaxed);
                    self.shared
                        .emit(SmppEvent::Bind {
                            bind: self.index,
                            connected: false,
                        })
                        .await;
                    // Unsent requests are safe to retry elsewhere: fail them now rather than
                    // hold them through the backoff.
                    for r in queue.drain(..) {
                        let r: Request = r;
                        let _ = r
                            .reply
                            .send(Err(SubmitError::transient("bind lost before sending")));
                    }
                    match end {
                        SessionEnd::Stop => break,
                        SessionEnd::Lost(why) => {
                            tracing::warn!(bind = self.index, reason = %why, "SMPP bind lost");
                            if started.elapsed() > Duration::from_secs(30) {
                                backoff = Duration::from_millis(cfg.reconnect_min_ms.max(10));
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(bind = self.index, error = %e, "SMPP bind failed");
                    if let Some(f) = first.take() {
                        let _ = f.send(Err(e));
                    }
                }
            }
            // While down, requests routed here anyway (race with `connected`) are failed.
            while let Ok(r) = rx.try_recv() {
                let _ = r
                    .reply
                    .send(Err(SubmitError::transient("bind not connected")));
            }
            let jitter =
                Duration::from_millis(rand::random::<u64>() % (backoff.as_millis() as u64 / 4 + 1));
            tokio::select! {
                _ = tokio::time::sleep(backoff + jitter) => {}
                _ = stop.changed() => break,
            }
            backoff = (backoff * 2).min(max_backoff);
        }
        while let Ok(r) = rx.try_recv() {
            let _ = r.reply.send(Err(SubmitError::transient("client closed")));
        }
    }

    /// Connects and binds.
    async fn open(&self) -> Result<(FrameReader, FrameWriter), ConnectError> {
        let cfg = &self.shared.config;
        let addr = format!("{}:{}", cfg.host, cfg.port);
        let timeout = Duration::from_millis(cfg.connect_timeout_ms.max(100));
        let stream = tokio::time::timeout(timeout, TcpStream::connect(&addr))
            .await
            .map_err(|_| ConnectError::Unreachable(format!("{addr}: connect timeout")))?
            .map_err(|e| ConnectError::Unreachable(format!("{addr}: {e}")))?;
        let (mut reader, mut writer) = split(stream, cfg.max_pdu_len);
        let pdu = bind_pdu(self.mode, &cfg.system_id, &cfg.password, &cfg.system_type)
            .map_err(|e| ConnectError::Config(e.to_string()))?;
        writer.queue(&Command::new(CommandStatus::EsmeRok, 1, pdu));
        writer
            .flush()
            .await
            .map_err(|e| ConnectError::Unreachable(format!("{addr}: {e}")))?;
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(cfg.response_timeout_ms.max(100));
        loop {
            let frame = tokio::time::timeout_at(deadline, reader.read_frame())
                .await
                .map_err(|_| ConnectError::Unreachable(format!("{addr}: no bind response")))?
                .map_err(|e| ConnectError::Unreachable(format!("{addr}: {e}")))?
                .ok_or_else(|| ConnectError::Unreachable(format!("{addr}: closed during bind")))?;
            match frame {
                Frame::Command(c) if c.sequence_number() == 1 && c.id().is_response() => {
                    if c.status() == CommandStatus::EsmeRok {
                        return Ok((reader, writer));
                    }
                    return Err(ConnectError::BindRefused(u32::from(c.status())));
                }
                Frame::Command(c) if c.id() == CommandId::EnquireLink => {
                    writer.queue(&Command::new(
                        CommandStatus::EsmeRok,
                        c.sequence_number(),
                        Pdu::EnquireLinkResp,
                    ));
                }
                _ => {}
            }
        }
    }

    async fn session(
        &self,
        mut reader: FrameReader,
        mut writer: FrameWriter,
        rx: &mut mpsc::Receiver<Request>,
        queue: &mut std::collections::VecDeque<Request>,
        stop: &mut watch::Receiver<bool>,
    ) -> SessionEnd {
        let cfg = &self.shared.config;
        let window = cfg.window.max(1);
        let response_timeout = Duration::from_millis(cfg.response_timeout_ms.max(100));
        let mut inflight: std::collections::HashMap<u32, InFlight> =
            std::collections::HashMap::with_capacity(window);
        let mut next_seq: u32 = 2;
        let mut seq = move || {
            let s = next_seq;
            next_seq = if s >= 0x7FFF_FFFF { 1 } else { s + 1 };
            s
        };
        let interval = self.rate.map(|r| Duration::from_secs_f64(1.0 / r));
        // Pacing credit: at most 10 ms worth of messages may go out at once, so timer
        // granularity (1 ms) does not cap the rate.
        let burst = Duration::from_millis(10);
        let mut next_slot = Instant::now();
        let mut paused_until: Option<Instant> = None;
        let mut throttle_pause = Duration::from_millis(cfg.throttle_pause_ms.max(1));
        let mut enquire = tokio::time::interval(Duration::from_secs(cfg.enquire_link_secs.max(1)));
        enquire.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        enquire.tick().await;
        let mut enquire_outstanding: Option<(u32, Instant)> = None;
        let mut sweep = tokio::time::interval(Duration::from_millis(500));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        let end = loop {
            // Pump: send queued requests while the window, the pause and the pace allow.
            let now = Instant::now();
            let mut wake: Option<Instant> = None;
            if let Some(p) = paused_until {
                if now >= p {
                    paused_until = None;
                } else {
                    wake = Some(p);
                }
            }
            if paused_until.is_none() {
                while inflight.len() < window && !queue.is_empty() {
                    if let Some(iv) = interval {
                        if next_slot > now {
                            wake = Some(next_slot);
                            break;
                        }
                        next_slot = next_slot.max(now.checked_sub(burst).unwrap_or(now)) + iv;
                    }
                    let Some(req) = queue.pop_front() else { break };
                    let s = seq();
                    writer.queue(&Command::new(
                        CommandStatus::EsmeRok,
                        s,
                        Pdu::SubmitSm(req.sm.clone()),
                    ));
                    inflight.insert(s, InFlight { req, sent_at: now });
                }
            }
            let can_take = self.mode.can_submit() && queue.len() < window && !rx.is_closed();
            let wake_at = wake.map(tokio::time::Instant::from_std);

            tokio::select! {
                biased;
                _ = stop.changed() => break SessionEnd::Stop,
                frame = reader.read_frame(), if writer.pending() < WRITE_BATCH => {
                    let mut frame = frame;
                    let mut lost = None;
                    loop {
                        match frame {
                            Ok(Some(f)) => {
                                if let Some(why) = self.on_frame(f, &mut writer, &mut inflight, queue, &mut paused_until, &mut throttle_pause, &mut enquire_outstanding).await {
                                    lost = Some(why);
                                    break;
                                }
                            }
                            Ok(None) => { lost = Some("closed by SMSC".to_string()); break; }
                            Err(e) => { lost = Some(format!("read: {e}")); break; }
                        }
                        frame = match reader.try_frame() {
                            Ok(Some(f)) => Ok(Some(f)),
                            Ok(None) => break,
                            Err(e) => Err(e),
                        };
                    }
                    if let Some(why) = lost { break SessionEnd::Lost(why); }
                }
                Some(req) = rx.recv(), if can_take => {
                    queue.push_back(req);
                    // Take what else is waiting without another trip through select.
                    while queue.len() < window {
                        match rx.try_recv() { Ok(r) => queue.push_back(r), Err(_) => break }
                    }
                }
                _ = async { if let Some(w) = wake_at { tokio::time::sleep_until(w).await } }, if wake_at.is_some() => {}
                _ = enquire.tick() => {
                    if let Some((_, at)) = enquire_outstanding {
                        if at.elapsed() > response_timeout {
                            break SessionEnd::Lost("enquire_link unanswered".into());
                        }
                    } else {
                        let s = seq();
                        writer.queue(&Command::new(CommandStatus::EsmeRok, s, Pdu::EnquireLink));
                        enquire_outstanding = Some((s, Instant::now()));
                    }
                }
                _ = sweep.tick() => {
                    let now = Instant::now();
                    let expired: Vec<u32> = inflight.iter().filter(|(_, f)| now.duration_since(f.sent_at) > response_timeout).map(|(s, _)| *s).collect();
                    for s in expired {
                        if let Some(f) = inflight.remove(&s) {
                            let _ = f.req.reply.send(Err(SubmitError::transient("no submit_sm_resp within the response timeout")));
                        }
                    }
                    if let Some((_, at)) = enquire_outstanding
                        && at.elapsed() > response_timeout {
                            break SessionEnd::Lost("enquire_link unanswered".into());
                        }
                }
                // Last: what is ready to read or to submit joins this write.
                r = writer.write_some(), if writer.has_pending() => {
                    if let Err(e) = r { break SessionEnd::Lost(format!("write: {e}")); }
                }
            }
        };
        if let SessionEnd::Stop = end {
            let s = seq();
            writer.queue(&Command::new(CommandStatus::EsmeRok, s, Pdu::Unbind));
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                let _ = writer.flush().await;
                // Wait for unbind_resp (and the last submit_sm_resps) briefly.
                while let Ok(Some(f)) = reader.read_frame().await {
                    if let Frame::Command(c) = &f
                        && c.id() == CommandId::UnbindResp
                    {
                        break;
                    }
                    let mut pu = None;
                    let mut tp = throttle_pause;
                    let mut eo = None;
                    let _ = self
                        .on_frame(
                            f,
                            &mut writer,
                            &mut inflight,
                            queue,
                            &mut pu,
                            &mut tp,
                            &mut eo,
                        )
                        .await;
                    let _ = writer.flush().await;
                }
            })
            .await;
            writer.shutdown().await;
        }
        // Sent but unanswered: the SMSC may or may not have them. Transient, the engine decides.
        for (_, f) in inflight.drain() {
            let _ = f.req.reply.send(Err(SubmitError::transient(
                "bind lost before submit_sm_resp",
            )));
        }
        end
    }

    /// Handles one PDU from the SMSC. Returns `Some(reason)` when the session must end.
    #[allow(clippy::too_many_arguments)]
    async fn on_frame(
        &self,
        frame: Frame,
        writer: &mut FrameWriter,
        inflight: &mut std::collections::HashMap<u32, InFlight>,
        queue: &mut std::collections::VecDeque<Request>,
        paused_until: &mut Option<Instant>,
        throttle_pause: &mut Duration,
        enquire_outstanding: &mut Option<(u32, Instant)>,
    ) -> Option<String> {
        let cfg = &self.shared.config;
        let cmd = match frame {
            Frame::Command(c) => c,
            Frame::Malformed {
                command_id,
                sequence_number,
                status,
            } => {
                // A deliver_sm we cannot read: say so, the SMSC will retry or drop it.
                if command_id == u32::from(CommandId::DeliverSm) {
                    writer.queue(&error_resp(
                        command_id,
                        sequence_number,
                        CommandStatus::EsmeRxRAppn,
                    ));
                } else if command_id & 0x8000_0000 == 0 {
                    writer.queue(&generic_nack(sequence_number, status));
                } else if let Some(f) = inflight.remove(&sequence_number) {
                    // An unreadable submit_sm_resp: we cannot know the id; report transient.
                    let _ = f
                        .req
                        .reply
                        .send(Err(SubmitError::transient("unreadable submit_sm_resp")));
                }
                return None;
            }
        };
        let seq = cmd.sequence_number();
        let status = cmd.status();
        match cmd.id() {
            CommandId::SubmitSmResp | CommandId::GenericNack => {
                let f = inflight.remove(&seq)?; // late answer to a timed-out request
                if status == CommandStatus::EsmeRok {
                    *throttle_pause = Duration::from_millis(cfg.throttle_pause_ms.max(1));
                    let id = match cmd.pdu() {
                        Some(Pdu::SubmitSmResp(r)) => text_of(r.message_id()),
                        _ => String::new(),
                    };
                    if let Some(part) = f.req.part.clone() {
                        let released = self
                            .shared
                            .correlator
                            .lock()
                            .map(|mut c| c.on_submitted(&id, part))
                            .unwrap_or_default();
                        self.shared.emit_all(released).await;
                    }
                    let _ = f.req.reply.send(Ok(id));
                } else if status == CommandStatus::EsmeRthrottled
                    || status == CommandStatus::EsmeRmsgqful
                {
                    // Slow down: pause this bind, then resend the same PDU first.
                    let mut req = f.req;
                    req.attempts += 1;
                    if req.attempts > cfg.max_throttle_retries {
                        let _ = req.reply.send(Err(SubmitError::from_status(status)));
                    } else {
                        queue.push_front(req);
                        *paused_until = Some(Instant::now() + *throttle_pause);
                        *throttle_pause = (*throttle_pause * 2).min(Duration::from_secs(5));
                    }
                } else {
                    let _ = f.req.reply.send(Err(SubmitError::from_status(status)));
                }
            }
            CommandId::DeliverSm => {
                let resp_status = match cmd.pdu() {
                    Some(Pdu::DeliverSm(d)) => {
                        self.on_deliver(ShortMessage::from_deliver_sm(d)).await
                    }
                    _ => CommandStatus::EsmeRxRAppn,
                };
                if resp_status == CommandStatus::EsmeRok {
                    writer.queue(&Command::new(
                        CommandStatus::EsmeRok,
                        seq,
                        deliver_sm_resp(),
                    ));
                } else {
                    writer.queue(&error_resp(CommandId::DeliverSm.into(), seq, resp_status));
                }
            }
            CommandId::EnquireLink => {
                writer.queue(&Command::new(
                    CommandStatus::EsmeRok,
                    seq,
                    Pdu::EnquireLinkResp,
                ));
            }
            CommandId::EnquireLinkResp => {
                if enquire_outstanding.is_some_and(|(s, _)| s == seq) {
                    *enquire_outstanding = None;
                }
            }
            CommandId::Unbind => {
                writer.queue(&Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp));
                let _ = writer.flush().await;
                return Some("SMSC unbound".into());
            }
            CommandId::UnbindResp => return Some("unbound".into()),
            CommandId::DataSm => {
                writer.queue(&error_resp(
                    CommandId::DataSm.into(),
                    seq,
                    CommandStatus::EsmeRinvcmdid,
                ));
            }
            id if id.is_response() => {}
            _ => writer.queue(&generic_nack(seq, CommandStatus::EsmeRinvcmdid)),
        }
        // Any traffic proves the link is alive.
        if let Some((_, at)) = enquire_outstanding {
            *at = Instant::now();
        }
        None
    }

    /// A `deliver_sm`: receipt or MO. Returns the status to answer with.
    async fn on_deliver(&self, m: ShortMessage) -> CommandStatus {
        if self.shared.events.is_closed() {
            // Nobody listens: make the SMSC keep the message for later.
            return CommandStatus::EsmeRxTAppn;
        }
        if m.is_receipt() {
            let text = String::from_utf8_lossy(&m.short_message).into_owned();
            let parsed = parse_receipt_text(&text);
            let id = m
                .receipted_message_id
                .clone()
                .or_else(|| parsed.as_ref().and_then(|p| p.id.clone()));
            let Some(id) = id else {
                tracing::warn!(text = %text, "receipt without message id");
                return CommandStatus::EsmeRok; // nothing to correlate; do not make the SMSC retry forever
            };
            let state = m
                .message_state
                .and_then(ReceiptState::from_message_state)
                .or_else(|| {
                    parsed
                        .as_ref()
                        .and_then(|p| p.stat.as_deref())
                        .map(ReceiptState::from_stat)
                })
                .unwrap_or(ReceiptState::Unknown);
            let receipt = Receipt {
                message_id: id,
                part: None,
                state,
                error: parsed.and_then(|p| p.err),
                source: m.source.clone(),
                destination: m.destination.clone(),
                text,
            };
            let out = self
                .shared
                .correlator
                .lock()
                .map(|mut c| c.on_receipt(receipt, Instant::now()))
                .unwrap_or_default();
            self.shared.emit_all(out).await;
            return CommandStatus::EsmeRok;
        }
        let text = m.text();
        let whole = match m.concat_part() {
            Some(u) => match self.shared.reassembler.lock() {
                Ok(mut r) => r.push(&m.source, &m.destination, u, text),
                Err(_) => return CommandStatus::EsmeRxTAppn,
            },
            None => Some(text),
        };
        if let Some(text) = whole {
            self.shared
                .emit(SmppEvent::Inbound(InboundMessage {
                    source: m.source,
                    destination: m.destination,
                    text,
                    data_coding: m.data_coding,
                }))
                .await;
        }
        CommandStatus::EsmeRok
    }
}
