//! One bind of the client: connect and bind, run a session until the link is lost or the
//! client stops, wait (monotonic jittered backoff), again.
//!
//! A session is one `select!` loop that never waits on the application. It writes queued
//! submits while the window and the pace allow (a [`RateControl`] fed by the answers),
//! parks a throttled PDU until its own resend time while the others keep flowing, turns each
//! `deliver_sm` into an event with an [`Ack`], and answers that `deliver_sm` when the
//! application confirms or drops the acknowledgement, or `ESME_RX_T_APPN` when its deadline
//! passes. Requests the SMSC never got come back `NotConnected` when the bind drops; those
//! written but unanswered come back `Transient` (the SMSC may have them).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use super::{ConnectError, InboundMessage, Request, Shared, SmppEvent, SubmitError};
use crate::ack::{Ack, AckMsg, AckSink, PendingAcks};
use crate::backoff::Backoff;
use crate::codec::{Frame, generic_nack};
use crate::connection::{FrameReader, FrameWriter, WRITE_BATCH, split};
use crate::correlate::Receipt;
use crate::pace::RateControl;
use crate::pdu::{BindMode, ShortMessage, bind_pdu, deliver_sm_resp, error_resp, text_of};
use crate::receipt::{ReceiptState, parse_receipt_text};
use crate::status::ErrorKind;

/// Longest wait before a throttled PDU is resent.
const MAX_THROTTLE_DELAY: Duration = Duration::from_secs(5);
/// A session that lasted this long ends an outage: the next one's backoff starts over.
const STABLE_SESSION: Duration = Duration::from_secs(30);
/// An acknowledgement deadline shorter than this would make the SMSC deliver everything
/// again while the application is storing it.
pub(super) const MIN_ACK_TIMEOUT_MS: u64 = 1000;
/// Pacing credit: at most 10 ms worth of messages may go out at once, so timer granularity
/// (1 ms) does not cap the rate.
const BURST: Duration = Duration::from_millis(10);

pub(super) struct BindTask {
    pub index: usize,
    pub mode: BindMode,
    pub shared: Arc<Shared>,
    pub connected: Arc<AtomicBool>,
    /// This bind's share of `max_rate`.
    pub ceiling: Option<f64>,
    /// Where the acknowledgements of this bind's `deliver_sm` go.
    pub acks: Arc<AckSink>,
}

struct InFlight {
    req: Request,
    sent_at: Instant,
}

enum SessionEnd {
    Stop,
    Lost(String),
}

/// Requests of this bind the SMSC has not got: queued, or throttled and waiting to be resent.
#[derive(Default)]
struct Held {
    queue: VecDeque<Request>,
    /// By resend time; the counter keeps equal times apart.
    delayed: BTreeMap<(Instant, u64), Request>,
    counter: u64,
}

impl Held {
    fn len(&self) -> usize {
        self.queue.len() + self.delayed.len()
    }

    fn delay(&mut self, req: Request, until: Instant) {
        self.counter += 1;
        self.delayed.insert((until, self.counter), req);
    }

    /// Resends that are due go first, before new requests.
    fn release_due(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        for req in due.into_iter().rev() {
            self.queue.push_front(req);
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.delayed.keys().next().map(|(at, _)| *at)
    }

    /// The bind cannot send them: they never reached the SMSC (or it refused them).
    fn fail_all(&mut self, reason: &str) {
        let delayed = std::mem::take(&mut self.delayed).into_values();
        for r in self.queue.drain(..).chain(delayed) {
            let _ = r.reply.send(Err(SubmitError::not_connected(reason)));
        }
    }
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Wait before the `attempt`-th resend (1-based) of a throttled PDU.
fn throttle_delay(pause_ms: u64, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    millis(pause_ms.max(1))
        .saturating_mul(1 << doublings)
        .min(MAX_THROTTLE_DELAY)
}

impl BindTask {
    pub(super) async fn run(
        self,
        mut rx: mpsc::Receiver<Request>,
        mut acks: mpsc::UnboundedReceiver<AckMsg>,
        mut stop: watch::Receiver<bool>,
        first: oneshot::Sender<Result<(), ConnectError>>,
    ) {
        let cfg = &self.shared.config;
        let mut first = Some(first);
        let mut backoff = Backoff::new(
            millis(cfg.reconnect_min_ms.max(10)),
            millis(cfg.reconnect_max_ms.max(cfg.reconnect_min_ms)),
        );
        let mut held = Held::default();
        let mut epoch = 0u64;
        'outer: loop {
            if *stop.borrow() {
                break;
            }
            match self.open().await {
                Ok((reader, writer)) => {
                    epoch += 1;
                    // Answers to PDUs of earlier sessions: those binds are gone.
                    while acks.try_recv().is_ok() {}
                    // Mark the bind usable before `connect` returns, or the first submits
                    // would find no connected bind.
                    self.set_connected(true);
                    if let Some(f) = first.take() {
                        let _ = f.send(Ok(()));
                    }
                    self.shared.offer(SmppEvent::Bind {
                        bind: self.index,
                        connected: true,
                    });
                    let started = Instant::now();
                    let end = Session::new(&self, writer, epoch)
                        .run(reader, &mut rx, &mut acks, &mut held, &mut stop)
                        .await;
                    self.set_connected(false);
                    self.shared.offer(SmppEvent::Bind {
                        bind: self.index,
                        connected: false,
                    });
                    // Unsent requests can go elsewhere: give them back now rather than hold
                    // them through the backoff.
                    held.fail_all("bind lost before sending");
                    match end {
                        SessionEnd::Stop => break,
                        SessionEnd::Lost(why) => {
                            tracing::warn!(bind = self.index, reason = %why, "SMPP bind lost");
                            if started.elapsed() > STABLE_SESSION {
                                backoff.reset();
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
            let until = tokio::time::Instant::now() + backoff.next_delay(rand::random::<f64>());
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    _ = stop.changed() => break 'outer,
                    // Routed here while `connected` flipped: another bind may take it.
                    Some(r) = rx.recv() => {
                        let _ = r.reply.send(Err(SubmitError::not_connected("bind not connected")));
                    }
                    Some(_) = acks.recv() => {}
                }
            }
        }
        held.fail_all("client closed");
        rx.close();
        while let Ok(r) = rx.try_recv() {
            let _ = r
                .reply
                .send(Err(SubmitError::not_connected("client closed")));
        }
    }

    fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
        if self.mode.can_submit() {
            self.shared.ready.send_modify(|n| {
                *n = if up { *n + 1 } else { n.saturating_sub(1) };
            });
        }
    }

    /// Connects and binds.
    async fn open(&self) -> Result<(FrameReader, FrameWriter), ConnectError> {
        let cfg = &self.shared.config;
        let addr = format!("{}:{}", cfg.host, cfg.port);
        let timeout = millis(cfg.connect_timeout_ms.max(100));
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
        let deadline = tokio::time::Instant::now() + millis(cfg.response_timeout_ms.max(100));
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

    /// A `deliver_sm` (receipt or MO) becomes an event carrying `ack`. Dropping `ack` here
    /// (a poisoned lock, a full buffer) makes the SMSC deliver it again.
    fn deliver(&self, m: ShortMessage, ack: Ack, now: Instant) {
        let shared = &self.shared;
        if m.is_receipt() {
            let text = String::from_utf8_lossy(&m.short_message).into_owned();
            let parsed = parse_receipt_text(&text);
            let id = m
                .receipted_message_id
                .clone()
                .or_else(|| parsed.as_ref().and_then(|p| p.id.clone()));
            let Some(id) = id else {
                // Nothing to correlate, nothing to lose: do not make the SMSC retry forever.
                tracing::warn!(text = %text, "receipt without message id");
                ack.confirm();
                return;
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
            let out = shared
                .correlator
                .lock()
                .map(|mut c| c.on_receipt(receipt, ack, now))
                .unwrap_or_default();
            shared.offer_receipts(out);
            return;
        }
        let text = m.text();
        let inbound = |text: String| InboundMessage {
            source: m.source.clone(),
            destination: m.destination.clone(),
            text,
            data_coding: m.data_coding,
        };
        match m.concat_part() {
            // Each part's deliver_sm is answered when the whole message is confirmed: a part
            // held only in memory is not safe.
            Some(u) => {
                let whole = shared
                    .reassembler
                    .lock()
                    .ok()
                    .and_then(|mut r| r.push(&m.source, &m.destination, u, text, ack));
                if let Some((text, acks)) = whole {
                    shared.offer(SmppEvent::Inbound(inbound(text), Ack::none().join(acks)));
                }
            }
            None => shared.offer(SmppEvent::Inbound(inbound(text), ack)),
        }
    }
}

/// The state of one bound connection.
struct Session<'a> {
    task: &'a BindTask,
    writer: FrameWriter,
    inflight: HashMap<u32, InFlight>,
    pending: PendingAcks,
    pace: RateControl,
    next_seq: u32,
    next_slot: Instant,
    enquire_outstanding: Option<(u32, Instant)>,
    /// Unbinding: new `deliver_sm` are refused for later, no new submits go out.
    closing: bool,
}

impl<'a> Session<'a> {
    fn new(task: &'a BindTask, writer: FrameWriter, epoch: u64) -> Self {
        let cfg = &task.shared.config;
        let now = Instant::now();
        Session {
            task,
            writer,
            inflight: HashMap::with_capacity(cfg.window.max(1)),
            pending: PendingAcks::new(
                epoch,
                cfg.max_pending_acks,
                millis(cfg.ack_timeout_ms.max(MIN_ACK_TIMEOUT_MS)),
            ),
            pace: RateControl::new(task.ceiling, now),
            next_seq: 2,
            next_slot: now,
            enquire_outstanding: None,
            closing: false,
        }
    }

    fn seq(&mut self) -> u32 {
        let s = self.next_seq;
        self.next_seq = if s >= 0x7FFF_FFFF { 1 } else { s + 1 };
        s
    }

    async fn run(
        mut self,
        mut reader: FrameReader,
        rx: &mut mpsc::Receiver<Request>,
        acks: &mut mpsc::UnboundedReceiver<AckMsg>,
        held: &mut Held,
        stop: &mut watch::Receiver<bool>,
    ) -> SessionEnd {
        let task = self.task;
        let cfg = &task.shared.config;
        let window = cfg.window.max(1);
        let response_timeout = millis(cfg.response_timeout_ms.max(100));
        let mut enquire = tokio::time::interval(Duration::from_secs(cfg.enquire_link_secs.max(1)));
        enquire.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        enquire.tick().await;
        let mut sweep = tokio::time::interval(millis(500));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        let end = loop {
            let wake = self.pump(held, Instant::now(), window);
            let can_take =
                self.task.mode.can_submit() && held.len() < 2 * window && !rx.is_closed();
            let wake_at = wake.map(tokio::time::Instant::from_std);

            tokio::select! {
                biased;
                _ = stop.changed() => break SessionEnd::Stop,
                Some(msg) = acks.recv() => {
                    self.settle(msg);
                    while let Ok(m) = acks.try_recv() {
                        self.settle(m);
                    }
                }
                frame = reader.read_frame(), if self.writer.pending() < WRITE_BATCH => {
                    let mut frame = frame;
                    let mut lost = None;
                    loop {
                        match frame {
                            Ok(Some(f)) => {
                                if let Some(why) = self.on_frame(f, held).await {
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
                    held.queue.push_back(req);
                    // Take what else is waiting without another trip through select.
                    while held.len() < 2 * window {
                        match rx.try_recv() { Ok(r) => held.queue.push_back(r), Err(_) => break }
                    }
                }
                _ = async { if let Some(w) = wake_at { tokio::time::sleep_until(w).await } }, if wake_at.is_some() => {}
                _ = enquire.tick() => {
                    if let Some((_, at)) = self.enquire_outstanding {
                        if at.elapsed() > response_timeout {
                            break SessionEnd::Lost("enquire_link unanswered".into());
                        }
                    } else {
                        let s = self.seq();
                        self.writer.queue(&Command::new(CommandStatus::EsmeRok, s, Pdu::EnquireLink));
                        self.enquire_outstanding = Some((s, Instant::now()));
                    }
                }
                _ = sweep.tick() => {
                    let now = Instant::now();
                    let expired: Vec<u32> = self.inflight.iter().filter(|(_, f)| now.duration_since(f.sent_at) > response_timeout).map(|(s, _)| *s).collect();
                    for s in expired {
                        if let Some(f) = self.inflight.remove(&s) {
                            let _ = f.req.reply.send(Err(SubmitError::transient("no submit_sm_resp within the response timeout")));
                        }
                    }
                    let late = self.pending.expire(now);
                    if !late.is_empty() {
                        tracing::debug!(bind = self.task.index, count = late.len(), "deliver_sm not confirmed in time; the SMSC will deliver them again");
                    }
                    for s in late {
                        self.answer(s, CommandStatus::EsmeRxTAppn);
                    }
                    if let Some((_, at)) = self.enquire_outstanding
                        && at.elapsed() > response_timeout {
                            break SessionEnd::Lost("enquire_link unanswered".into());
                        }
                }
                // Last: what is ready to read or to submit joins this write.
                r = self.writer.write_some(), if self.writer.has_pending() => {
                    if let Err(e) = r { break SessionEnd::Lost(format!("write: {e}")); }
                }
            }
        };
        if let SessionEnd::Stop = end {
            self.closing = true;
            // What the application confirmed is answered; the rest it will not confirm now:
            // the SMSC delivers it again on the next bind.
            while let Ok(m) = acks.try_recv() {
                self.settle(m);
            }
            for s in self.pending.drain() {
                self.answer(s, CommandStatus::EsmeRxTAppn);
            }
            let s = self.seq();
            self.writer
                .queue(&Command::new(CommandStatus::EsmeRok, s, Pdu::Unbind));
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                let _ = self.writer.flush().await;
                // Wait for unbind_resp (and the last submit_sm_resps) briefly.
                while let Ok(Some(f)) = reader.read_frame().await {
                    if let Frame::Command(c) = &f
                        && c.id() == CommandId::UnbindResp
                    {
                        break;
                    }
                    let _ = self.on_frame(f, held).await;
                    let _ = self.writer.flush().await;
                }
            })
            .await;
            self.writer.shutdown().await;
        }
        // Sent but unanswered: the SMSC may or may not have them. Transient, the caller decides.
        if !self.inflight.is_empty() {
            let references: Vec<&str> = self
                .inflight
                .values()
                .filter_map(|f| f.req.part.as_ref().map(|p| &*p.reference))
                .collect();
            tracing::debug!(
                bind = self.task.index,
                count = self.inflight.len(),
                ?references,
                "bind ended with submits unanswered; the SMSC may have them"
            );
        }
        for (_, f) in self.inflight.drain() {
            let _ = f.req.reply.send(Err(SubmitError::transient(
                "bind lost before submit_sm_resp",
            )));
        }
        end
    }

    /// Writes queued submits while the window and the pace allow. Returns when to look
    /// again (next pacing slot or resend time).
    fn pump(&mut self, held: &mut Held, now: Instant, window: usize) -> Option<Instant> {
        held.release_due(now);
        let mut wake = held.next_due();
        if self.closing {
            return wake;
        }
        let interval = self.pace.rate().map(|r| Duration::from_secs_f64(1.0 / r));
        while self.inflight.len() < window && !held.queue.is_empty() {
            if let Some(iv) = interval {
                if self.next_slot > now {
                    wake = Some(wake.map_or(self.next_slot, |w| w.min(self.next_slot)));
                    break;
                }
                self.next_slot = self.next_slot.max(now.checked_sub(BURST).unwrap_or(now)) + iv;
            }
            let Some(req) = held.queue.pop_front() else {
                break;
            };
            let s = self.seq();
            self.writer.queue(&Command::new(
                CommandStatus::EsmeRok,
                s,
                Pdu::SubmitSm(req.sm.clone()),
            ));
            self.inflight.insert(s, InFlight { req, sent_at: now });
        }
        wake
    }

    /// Answers one `deliver_sm`.
    fn answer(&mut self, seq: u32, status: CommandStatus) {
        if status == CommandStatus::EsmeRok {
            self.writer.queue(&Command::new(
                CommandStatus::EsmeRok,
                seq,
                deliver_sm_resp(),
            ));
        } else {
            self.writer
                .queue(&error_resp(CommandId::DeliverSm.into(), seq, status));
        }
    }

    fn settle(&mut self, msg: AckMsg) {
        if let Some(status) = self.pending.settle(msg) {
            self.answer(msg.seq, status);
        }
    }

    /// Handles one PDU from the SMSC. Returns `Some(reason)` when the session must end.
    async fn on_frame(&mut self, frame: Frame, held: &mut Held) -> Option<String> {
        let task = self.task;
        let cfg = &task.shared.config;
        let now = Instant::now();
        let cmd = match frame {
            Frame::Command(c) => c,
            Frame::Malformed {
                command_id,
                sequence_number,
                status,
            } => {
                // A deliver_sm we cannot read: say so, the SMSC will retry or drop it.
                if command_id == u32::from(CommandId::DeliverSm) {
                    self.writer.queue(&error_resp(
                        command_id,
                        sequence_number,
                        CommandStatus::EsmeRxRAppn,
                    ));
                } else if command_id & 0x8000_0000 == 0 {
                    self.writer.queue(&generic_nack(sequence_number, status));
                } else if let Some(f) = self.inflight.remove(&sequence_number) {
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
                let f = self.inflight.remove(&seq)?; // late answer to a timed-out request
                let throttled = status == CommandStatus::EsmeRthrottled
                    || status == CommandStatus::EsmeRmsgqful;
                self.pace.on_answer(throttled, now);
                if status == CommandStatus::EsmeRok {
                    let id = match cmd.pdu() {
                        Some(Pdu::SubmitSmResp(r)) => text_of(r.message_id()),
                        _ => String::new(),
                    };
                    if let Some(part) = f.req.part.clone() {
                        let released = self
                            .task
                            .shared
                            .correlator
                            .lock()
                            .map(|mut c| c.on_submitted(&id, part))
                            .unwrap_or_default();
                        self.task.shared.offer_receipts(released);
                    }
                    let _ = f.req.reply.send(Ok(id));
                } else if throttled {
                    // The pace slows the bind; this PDU alone waits before going again.
                    let mut req = f.req;
                    req.attempts += 1;
                    if req.attempts > cfg.max_throttle_retries {
                        let _ = req.reply.send(Err(SubmitError {
                            kind: ErrorKind::Transient,
                            status: Some(u32::from(status)),
                            reason: format!(
                                "{status:?}: still throttled after {} resends",
                                cfg.max_throttle_retries
                            ),
                            accepted_part_ids: Vec::new(),
                        }));
                    } else {
                        let wait = throttle_delay(cfg.throttle_pause_ms, req.attempts);
                        held.delay(req, now + wait);
                    }
                } else {
                    let _ = f.req.reply.send(Err(SubmitError::from_status(status)));
                }
            }
            CommandId::DeliverSm => match cmd.pdu() {
                Some(Pdu::DeliverSm(d)) => {
                    let m = ShortMessage::from_deliver_sm(d);
                    self.on_deliver(seq, m, now);
                }
                _ => self.answer(seq, CommandStatus::EsmeRxTAppn),
            },
            CommandId::EnquireLink => {
                self.writer.queue(&Command::new(
                    CommandStatus::EsmeRok,
                    seq,
                    Pdu::EnquireLinkResp,
                ));
            }
            CommandId::EnquireLinkResp => {
                if self.enquire_outstanding.is_some_and(|(s, _)| s == seq) {
                    self.enquire_outstanding = None;
                }
            }
            CommandId::Unbind => {
                self.writer
                    .queue(&Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp));
                let _ = self.writer.flush().await;
                return Some("SMSC unbound".into());
            }
            CommandId::UnbindResp => return Some("unbound".into()),
            CommandId::DataSm => {
                self.writer.queue(&error_resp(
                    CommandId::DataSm.into(),
                    seq,
                    CommandStatus::EsmeRinvcmdid,
                ));
            }
            id if id.is_response() => {}
            _ => self
                .writer
                .queue(&generic_nack(seq, CommandStatus::EsmeRinvcmdid)),
        }
        // Any traffic proves the link is alive.
        if let Some((_, at)) = &mut self.enquire_outstanding {
            *at = now;
        }
        None
    }

    /// A `deliver_sm`: waits for the application's acknowledgement, or is refused for later
    /// when the application cannot take it now.
    fn on_deliver(&mut self, seq: u32, m: ShortMessage, now: Instant) {
        if self.closing || self.task.shared.events.is_closed() || self.pending.is_full() {
            // Nobody listens, or too much is waiting already: the SMSC keeps it for later.
            self.answer(seq, CommandStatus::EsmeRxTAppn);
            return;
        }
        self.pending.open(seq, now);
        let ack = Ack::new(self.task.acks.clone(), self.pending.epoch(), seq);
        self.task.deliver(m, ack, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_pdu_waits_longer_at_each_throttle_up_to_five_seconds() {
        assert_eq!(throttle_delay(200, 1), millis(200));
        assert_eq!(throttle_delay(200, 2), millis(400));
        assert_eq!(throttle_delay(200, 5), millis(3200));
        assert_eq!(throttle_delay(200, 6), MAX_THROTTLE_DELAY);
        assert_eq!(throttle_delay(200, 40), MAX_THROTTLE_DELAY);
    }
}
