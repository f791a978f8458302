//! SMPP server: ESMEs (customers, or Kannel/Jasmin in front of them) bind to Relais.
//!
//! One task per session. Binds are checked by an [`Authenticator`]; `submit_sm` goes to a
//! [`SubmitHandler`] (several in flight per session, answered as they complete); the
//! application pushes `deliver_sm` (receipts, MO) to a principal's receiving sessions through
//! a [`ServerHandle`]. A session that sends garbage gets `generic_nack` and, if it keeps
//! doing so, is closed; no other session notices.
//!
//! Every refused bind is logged (source, `system_id`, reason; never the password), and a
//! source or `system_id` that keeps failing waits longer and longer before its next bind is
//! checked ([`crate::bind_throttle`]).

use std::collections::{HashMap, VecDeque};
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::bind_throttle::{Admission, BindThrottle, BindThrottleConfig};
use crate::codec::{CodecError, DEFAULT_MAX_PDU_LEN, Frame, generic_nack};
use crate::connection::{FrameReader, FrameWriter, WRITE_BATCH, split};
use crate::pdu::{
    BindMode, BindRequest, ShortMessage, bind_request, bind_resp_pdu, error_resp, submit_sm_resp,
};

/// How long a session we unbind waits for the ESME's `unbind_resp` (or the end of its
/// stream) before closing: a graceful close, see `Session::unbind_gracefully`. Within the
/// 5 s [`SmppServer::serve`] gives its sessions to end.
const UNBIND_GRACE: Duration = Duration::from_secs(2);

/// Checks bind credentials.
pub trait Authenticator: Send + Sync + 'static {
    /// Who the session acts for (a tenant, an API key id...). Receipts and MO are pushed to
    /// a principal, not to a connection.
    type Principal: Clone + Eq + Hash + Debug + Send + Sync + 'static;

    /// `Err(status)` refuses the bind with that status (typically `ESME_RINVPASWD` or
    /// `ESME_RINVSYSID`).
    fn authenticate(
        &self,
        request: &BindRequest,
        peer: SocketAddr,
    ) -> impl Future<Output = Result<Self::Principal, CommandStatus>> + Send;
}

/// What a submit handler knows about where a `submit_sm` came from.
#[derive(Debug)]
pub struct SubmitContext<'a, P: Clone + Eq + Hash + Debug + Send + Sync + 'static> {
    pub principal: &'a P,
    pub system_id: &'a str,
    pub session_id: u64,
    pub peer: SocketAddr,
    /// To push receipts / MO later (clone it to keep it).
    pub handle: &'a ServerHandle<P>,
}

/// Accepts (or refuses) submitted messages.
pub trait SubmitHandler<P: Clone + Eq + Hash + Debug + Send + Sync + 'static>:
    Send + Sync + 'static
{
    /// Returns the message id to put in `submit_sm_resp`, or the error status to answer.
    fn submit(
        &self,
        ctx: SubmitContext<'_, P>,
        message: ShortMessage,
    ) -> impl Future<Output = Result<String, CommandStatus>> + Send;

    /// What became of the answer to a submit this handler accepted (`message_id` is what
    /// [`SubmitHandler::submit`] returned for it): `written` once its `submit_sm_resp` was
    /// handed to the connection, not `written` when the session ended before that (the
    /// ESME never learnt that the message was accepted, so it is right to send it again).
    /// What an SMSC that keeps count needs to tell a resend the ESME could not avoid from
    /// one it should not have made (the simulator does). Called on the session's task, once
    /// per accepted submit: keep it short.
    fn answered(&self, session_id: u64, message_id: &str, written: bool) {
        let _ = (session_id, message_id, written);
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `system_id` we announce in bind responses.
    pub system_id: String,
    /// Submits being handled at once per session; beyond it we stop reading that socket.
    pub max_in_flight: usize,
    /// `deliver_sm` awaiting `deliver_sm_resp` per session.
    pub deliver_window: usize,
    /// Queued `deliver_sm` per session before `send` waits.
    pub deliver_queue: usize,
    /// Send `enquire_link` after this much silence.
    pub enquire_link_interval: Duration,
    /// Close after this much silence (no PDU at all, including our enquire_link answered).
    pub idle_timeout: Duration,
    /// A `deliver_sm` not answered within this is failed back to the application.
    pub response_timeout: Duration,
    /// Time a connection has to bind.
    pub bind_timeout: Duration,
    pub max_pdu_len: usize,
    /// Consecutive undecodable PDUs tolerated before closing the session.
    pub max_malformed: u32,
    /// How binds are slowed down after failed ones.
    pub bind_throttle: BindThrottleConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            system_id: "relais".into(),
            max_in_flight: 512,
            deliver_window: 64,
            deliver_queue: 4096,
            enquire_link_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            response_timeout: Duration::from_secs(30),
            bind_timeout: Duration::from_secs(30),
            max_pdu_len: DEFAULT_MAX_PDU_LEN,
            max_malformed: 10,
            bind_throttle: BindThrottleConfig::default(),
        }
    }
}

/// Why a `deliver_sm` did not reach the ESME.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliverError {
    #[error("no receiving session is bound for this principal")]
    NotBound,
    #[error("the session closed before answering")]
    SessionClosed,
    #[error("no deliver_sm_resp within the response timeout")]
    Timeout,
    #[error("the ESME answered with status {0:#010x}")]
    Rejected(u32),
    #[error("message does not fit a deliver_sm: {0}")]
    Invalid(String),
}

/// Where the answer to one pushed `deliver_sm` goes.
type Ack = oneshot::Sender<Result<(), DeliverError>>;

struct Outbound {
    message: ShortMessage,
    ack: Option<Ack>,
}

struct SessionEntry {
    id: u64,
    mode: BindMode,
    tx: mpsc::Sender<Outbound>,
}

struct Registry<P> {
    sessions: Mutex<HashMap<P, Vec<SessionEntry>>>,
    rr: AtomicUsize,
    next_id: AtomicU64,
}

/// Cloneable handle to push `deliver_sm` to bound sessions.
pub struct ServerHandle<P> {
    registry: Arc<Registry<P>>,
}

impl<P> Clone for ServerHandle<P> {
    fn clone(&self) -> Self {
        Self {
            registry: self.registry.clone(),
        }
    }
}

impl<P> Debug for ServerHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerHandle")
    }
}

impl<P: Clone + Eq + Hash + Debug + Send + Sync + 'static> Default for ServerHandle<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Clone + Eq + Hash + Debug + Send + Sync + 'static> ServerHandle<P> {
    pub fn new() -> Self {
        Self {
            registry: Arc::new(Registry {
                sessions: Mutex::new(HashMap::new()),
                rr: AtomicUsize::new(0),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    fn pick(&self, principal: Option<&P>) -> Option<mpsc::Sender<Outbound>> {
        let map = self.registry.sessions.lock().ok()?;
        let n = self.registry.rr.fetch_add(1, Ordering::Relaxed);
        // Round robin over receiving sessions without allocating: count, then take the nth.
        let nth = |it: &mut dyn Iterator<Item = &SessionEntry>, count: usize| {
            (count > 0)
                .then(|| it.nth(n % count).map(|e| e.tx.clone()))
                .flatten()
        };
        match principal {
            Some(p) => {
                let list = map.get(p)?;
                let count = list.iter().filter(|e| e.mode.can_receive()).count();
                nth(&mut list.iter().filter(|e| e.mode.can_receive()), count)
            }
            None => {
                let count = map
                    .values()
                    .flatten()
                    .filter(|e| e.mode.can_receive())
                    .count();
                nth(
                    &mut map.values().flatten().filter(|e| e.mode.can_receive()),
                    count,
                )
            }
        }
    }

    /// Number of bound sessions of `principal`.
    pub fn bound(&self, principal: &P) -> usize {
        self.registry
            .sessions
            .lock()
            .map(|m| m.get(principal).map_or(0, Vec::len))
            .unwrap_or(0)
    }

    /// Delivers `message` to one receiving session of `principal` and waits for its
    /// `deliver_sm_resp`. On `Err` the application keeps the message and tries again later.
    pub async fn deliver(&self, principal: &P, message: ShortMessage) -> Result<(), DeliverError> {
        let tx = self.pick(Some(principal)).ok_or(DeliverError::NotBound)?;
        let (ack, rx) = oneshot::channel();
        tx.send(Outbound {
            message,
            ack: Some(ack),
        })
        .await
        .map_err(|_| DeliverError::SessionClosed)?;
        rx.await.unwrap_or(Err(DeliverError::SessionClosed))
    }

    /// Queues `message` for one receiving session of `principal` (or of anyone if `None`)
    /// without waiting for the answer: at-most-once, for simulators and best-effort traffic.
    pub async fn send(
        &self,
        principal: Option<&P>,
        message: ShortMessage,
    ) -> Result<(), DeliverError> {
        let tx = self.pick(principal).ok_or(DeliverError::NotBound)?;
        tx.send(Outbound { message, ack: None })
            .await
            .map_err(|_| DeliverError::SessionClosed)
    }

    /// Queues `message` for one receiving session of `principal` and returns once it is
    /// queued, with where its answer will come (what [`ServerHandle::deliver`] waits for):
    /// a caller with many deliveries in flight awaits the answers together instead of
    /// holding one future per delivery.
    pub async fn deliver_queued(
        &self,
        principal: &P,
        message: ShortMessage,
    ) -> Result<oneshot::Receiver<Result<(), DeliverError>>, DeliverError> {
        let tx = self.pick(Some(principal)).ok_or(DeliverError::NotBound)?;
        let (ack, rx) = oneshot::channel();
        tx.send(Outbound {
            message,
            ack: Some(ack),
        })
        .await
        .map_err(|_| DeliverError::SessionClosed)?;
        Ok(rx)
    }

    fn register(&self, principal: &P, entry: SessionEntry) {
        if let Ok(mut m) = self.registry.sessions.lock() {
            m.entry(principal.clone()).or_default().push(entry);
        }
    }

    fn unregister(&self, principal: &P, id: u64) {
        if let Ok(mut m) = self.registry.sessions.lock()
            && let Some(list) = m.get_mut(principal)
        {
            list.retain(|e| e.id != id);
            if list.is_empty() {
                m.remove(principal);
            }
        }
    }
}

/// Why a bind was refused, for the log.
fn refusal_reason(status: CommandStatus) -> &'static str {
    match status {
        CommandStatus::EsmeRinvpaswd => "wrong password",
        CommandStatus::EsmeRinvsysid => "unknown system_id",
        CommandStatus::EsmeRinvsystyp => "invalid system_type",
        _ => "refused by the authenticator",
    }
}

/// The server: accept loop plus shared state.
pub struct SmppServer<A: Authenticator, H> {
    config: ServerConfig,
    auth: Arc<A>,
    handler: Arc<H>,
    handle: ServerHandle<A::Principal>,
    throttle: Mutex<BindThrottle>,
}

impl<A, H> SmppServer<A, H>
where
    A: Authenticator,
    H: SubmitHandler<A::Principal>,
{
    pub fn new(config: ServerConfig, auth: A, handler: H) -> Self {
        Self::with_handle(config, auth, handler, ServerHandle::new())
    }

    /// Uses an existing handle (so the handler can be built holding it).
    pub fn with_handle(
        config: ServerConfig,
        auth: A,
        handler: H,
        handle: ServerHandle<A::Principal>,
    ) -> Self {
        Self {
            throttle: Mutex::new(BindThrottle::new(config.bind_throttle.clone())),
            config,
            auth: Arc::new(auth),
            handler: Arc::new(handler),
            handle,
        }
    }

    pub fn handle(&self) -> ServerHandle<A::Principal> {
        self.handle.clone()
    }

    fn throttle(&self) -> std::sync::MutexGuard<'_, BindThrottle> {
        self.throttle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Accepts connections until `shutdown` resolves; then asks every session to unbind and
    /// waits (at most 5 s) for them to finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(self);
        let mut tasks = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let shared = shared.clone();
                        let stop = stop_rx.clone();
                        tasks.spawn(async move {
                            shared.run_session(stream, peer, stop).await;
                        });
                    }
                    Err(e) => {
                        // EMFILE and friends: wait instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        Ok(())
    }

    async fn run_session(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        stop: watch::Receiver<bool>,
    ) {
        let id = self.handle.registry.next_id.fetch_add(1, Ordering::Relaxed);
        let (reader, writer) = split(stream, self.config.max_pdu_len);
        let mut session = Session {
            server: &self,
            id,
            peer,
            reader,
            writer,
            bound: None,
            next_seq: 1,
            malformed: 0,
            last_rx: Instant::now(),
            enquire_sent: false,
            answers: VecDeque::new(),
        };
        let result = session.run(stop).await;
        if let Some((principal, _, _)) = &session.bound {
            self.handle.unregister(principal, id);
        }
        session.writer.shutdown().await;
        match result {
            Ok(()) => tracing::debug!(session = id, %peer, "session closed"),
            Err(e) => tracing::info!(session = id, %peer, error = %e, "session ended"),
        }
    }
}

struct Session<'a, A: Authenticator, H> {
    server: &'a SmppServer<A, H>,
    id: u64,
    peer: SocketAddr,
    reader: FrameReader,
    writer: FrameWriter,
    bound: Option<(A::Principal, BindMode, String)>,
    next_seq: u32,
    malformed: u32,
    last_rx: Instant,
    enquire_sent: bool,
    /// Accepted submits whose `submit_sm_resp` is queued and not yet written: where the
    /// answer ends in the writer's stream, and the message id.
    answers: VecDeque<(u64, String)>,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(&'static str),
}

enum Next {
    Continue,
    Close,
}

impl<A, H> Session<'_, A, H>
where
    A: Authenticator,
    H: SubmitHandler<A::Principal>,
{
    fn seq(&mut self) -> u32 {
        let s = self.next_seq;
        self.next_seq = if s >= 0x7FFF_FFFF { 1 } else { s + 1 };
        s
    }

    async fn run(&mut self, mut stop: watch::Receiver<bool>) -> Result<(), SessionError> {
        // Bind phase: nothing else is allowed until a bind succeeds.
        let deadline = tokio::time::Instant::now() + self.server.config.bind_timeout;
        while self.bound.is_none() {
            let frame = tokio::select! {
                f = self.reader.read_frame() => f,
                _ = tokio::time::sleep_until(deadline) => return Err(SessionError::Protocol("no bind in time")),
                _ = stop.changed() => return Ok(()),
            };
            let frame = match frame {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => return self.fatal(e).await,
            };
            if let Next::Close = self.before_bind(frame).await {
                self.writer.flush().await?;
                return Ok(());
            }
            self.writer.flush().await?;
        }
        let Some((principal, mode, system_id)) = self.bound.clone() else {
            return Ok(());
        };
        let (tx, mut rx) = mpsc::channel::<Outbound>(self.server.config.deliver_queue.max(1));
        self.server.handle.register(
            &principal,
            SessionEntry {
                id: self.id,
                mode,
                tx,
            },
        );

        let handler = self.server.handler.clone();
        let handle = self.server.handle.clone();
        let (peer, session_id) = (self.peer, self.id);
        let cfg = &self.server.config;
        let mut submits = FuturesUnordered::new();
        let mut waiting: HashMap<u32, (Option<Ack>, Instant)> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut closing = false;
        let mut unbinding = false;

        let result: Result<(), SessionError> = loop {
            let can_read = !closing
                && submits.len() < cfg.max_in_flight
                && self.writer.pending() < WRITE_BATCH;
            let can_push = !closing && mode.can_receive() && waiting.len() < cfg.deliver_window;
            // Input is taken before output is written, so the answers to everything that
            // is ready go out in one write; reading pauses once a write's worth waits.
            tokio::select! {
                biased;
                Some((seq, res)) = submits.next(), if !submits.is_empty() => {
                    self.answer_submit(seq, res);
                    while let Some(Some((seq, res))) = submits.next().now_or_never() {
                        self.answer_submit(seq, res);
                    }
                }
                Some(out) = rx.recv(), if can_push => {
                    let mut next = out;
                    loop {
                        match next.message.to_deliver_sm() {
                            Ok(pdu) => {
                                let seq = self.seq();
                                self.writer.queue(&Command::new(CommandStatus::EsmeRok, seq, Pdu::DeliverSm(pdu)));
                                waiting.insert(seq, (next.ack, Instant::now()));
                            }
                            Err(e) => {
                                if let Some(ack) = next.ack { let _ = ack.send(Err(DeliverError::Invalid(e.to_string()))); }
                            }
                        }
                        if waiting.len() >= cfg.deliver_window || self.writer.pending() >= WRITE_BATCH {
                            break;
                        }
                        match rx.try_recv() {
                            Ok(more) => next = more,
                            Err(_) => break,
                        }
                    }
                }
                frame = self.reader.read_frame(), if can_read => {
                    let mut frame = frame;
                    loop {
                        let f = match frame {
                            Ok(Some(f)) => f,
                            Ok(None) => { closing = true; break; }
                            Err(e) => {
                                let _ = self.fatal(e).await;
                                closing = true;
                                break;
                            }
                        };
                        self.last_rx = Instant::now();
                        self.enquire_sent = false;
                        match f {
                            Frame::Malformed { command_id, sequence_number, status } => {
                                self.malformed += 1;
                                tracing::debug!(session = session_id, command_id, "malformed PDU");
                                self.writer.queue(&generic_nack(sequence_number, status));
                                if self.malformed >= cfg.max_malformed {
                                    closing = true;
                                    break;
                                }
                            }
                            Frame::Command(cmd) => {
                                self.malformed = 0;
                                let seq = cmd.sequence_number();
                                let status = cmd.status();
                                let id = cmd.id();
                                match (id, cmd.pdu()) {
                                    (CommandId::SubmitSm, Some(Pdu::SubmitSm(sm))) if mode.can_submit() => {
                                        let message = ShortMessage::from_submit_sm(sm);
                                        let handler = handler.clone();
                                        let principal = principal.clone();
                                        let handle = handle.clone();
                                        let system_id = system_id.clone();
                                        submits.push(async move {
                                            let ctx = SubmitContext {
                                                principal: &principal,
                                                system_id: &system_id,
                                                session_id,
                                                peer,
                                                handle: &handle,
                                            };
                                            (seq, handler.submit(ctx, message).await)
                                        });
                                    }
                                    (CommandId::SubmitSm, _) => {
                                        self.writer.queue(&error_resp(id.into(), seq, CommandStatus::EsmeRinvbndsts));
                                    }
                                    (CommandId::DeliverSmResp, _) | (CommandId::GenericNack, _) => {
                                        if let Some((ack, _)) = waiting.remove(&seq) {
                                            let r = if status == CommandStatus::EsmeRok { Ok(()) } else { Err(DeliverError::Rejected(u32::from(status))) };
                                            if let Some(ack) = ack { let _ = ack.send(r); }
                                        }
                                    }
                                    (CommandId::EnquireLink, _) => {
                                        self.writer.queue(&Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLinkResp));
                                    }
                                    (CommandId::EnquireLinkResp, _) => {}
                                    (CommandId::Unbind, _) => {
                                        self.writer.queue(&Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp));
                                        closing = true;
                                        break;
                                    }
                                    (CommandId::UnbindResp, _) => { closing = true; break; }
                                    (CommandId::BindTransmitter | CommandId::BindReceiver | CommandId::BindTransceiver, _) => {
                                        self.writer.queue(&error_resp(id.into(), seq, CommandStatus::EsmeRalybnd));
                                    }
                                    (id, _) if id.is_response() => {} // a response we do not track
                                    (id, _) => {
                                        tracing::debug!(session = session_id, ?id, "unsupported operation");
                                        self.writer.queue(&generic_nack(seq, CommandStatus::EsmeRinvcmdid));
                                    }
                                }
                            }
                        }
                        if submits.len() >= cfg.max_in_flight || self.writer.pending() >= WRITE_BATCH {
                            break;
                        }
                        frame = match self.reader.try_frame() {
                            Ok(Some(f)) => Ok(Some(f)),
                            Ok(None) => break,
                            Err(e) => Err(e),
                        };
                    }
                    if closing {
                        // Answer what is being handled, then go.
                        while let Some((seq, res)) = submits.next().await {
                            self.answer_submit(seq, res);
                        }
                        break Ok(());
                    }
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    let idle = now.duration_since(self.last_rx);
                    if idle >= cfg.idle_timeout {
                        break Err(SessionError::Protocol("idle timeout"));
                    }
                    if idle >= cfg.enquire_link_interval && !self.enquire_sent {
                        let seq = self.seq();
                        self.writer.queue(&Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLink));
                        self.enquire_sent = true;
                    }
                    waiting.retain(|_, (ack, at)| {
                        if now.duration_since(*at) >= cfg.response_timeout {
                            if let Some(ack) = ack.take() { let _ = ack.send(Err(DeliverError::Timeout)); }
                            false
                        } else { true }
                    });
                }
                _ = stop.changed() => {
                    let seq = self.seq();
                    self.writer.queue(&Command::new(CommandStatus::EsmeRok, seq, Pdu::Unbind));
                    unbinding = true;
                    break Ok(());
                }
                r = self.writer.write_some(), if self.writer.has_pending() => {
                    if let Err(e) = r { break Err(e.into()); }
                    self.report_written();
                }
            }
        };
        if unbinding {
            self.unbind_gracefully().await;
        }
        // Fail what cannot be delivered any more so the application retries elsewhere.
        for (_, (ack, _)) in waiting.drain() {
            if let Some(ack) = ack {
                let _ = ack.send(Err(DeliverError::SessionClosed));
            }
        }
        rx.close();
        while let Ok(out) = rx.try_recv() {
            if let Some(ack) = out.ack {
                let _ = ack.send(Err(DeliverError::SessionClosed));
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.writer.flush()).await;
        self.report_unwritten();
        result
    }

    /// Ends a session we unbind (the server stops): writes the answers and the `unbind`
    /// queued behind them, then reads until the ESME's `unbind_resp` or the end of its
    /// stream, at most [`UNBIND_GRACE`]. Closing at once, with PDUs the ESME sent meanwhile
    /// still unread, makes the kernel reset the connection (RFC 2525, 2.17), and a reset
    /// throws away what it has not delivered yet: `submit_sm_resp` the ESME would never
    /// read, for messages it would then rightly send again although we have them. What is
    /// read here is not handled: an unbinding session takes no new submit, and the ESME,
    /// never answered, sends it again on its next bind.
    async fn unbind_gracefully(&mut self) {
        let _ = tokio::time::timeout(UNBIND_GRACE, async {
            if self.writer.flush().await.is_err() {
                return;
            }
            self.report_written();
            loop {
                match self.reader.read_frame().await {
                    Ok(Some(Frame::Command(c))) if c.id() == CommandId::UnbindResp => return,
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => return,
                }
            }
        })
        .await;
    }

    /// Queues the `submit_sm_resp` for a handled submit.
    fn answer_submit(&mut self, seq: u32, res: Result<String, CommandStatus>) {
        let (cmd, accepted) = match res {
            Ok(id) => match submit_sm_resp(&id) {
                Ok(pdu) => (Command::new(CommandStatus::EsmeRok, seq, pdu), Some(id)),
                Err(e) => {
                    tracing::error!(error = %e, "handler returned an invalid message id");
                    let resp =
                        error_resp(CommandId::SubmitSm.into(), seq, CommandStatus::EsmeRsyserr);
                    // Refused after all: the handler hears that its answer never left.
                    self.server.handler.answered(self.id, &id, false);
                    (resp, None)
                }
            },
            Err(status) => (error_resp(CommandId::SubmitSm.into(), seq, status), None),
        };
        self.writer.queue(&cmd);
        if let Some(id) = accepted {
            self.answers.push_back((self.writer.queued(), id));
        }
    }

    /// Tells the handler which accepted submits' answers the connection has taken.
    fn report_written(&mut self) {
        let written = self.writer.written();
        while let Some((end, _)) = self.answers.front() {
            if *end > written {
                break;
            }
            if let Some((_, id)) = self.answers.pop_front() {
                self.server.handler.answered(self.id, &id, true);
            }
        }
    }

    /// The session is over: the answers not written by now never will be.
    fn report_unwritten(&mut self) {
        self.report_written();
        for (_, id) in self.answers.drain(..) {
            self.server.handler.answered(self.id, &id, false);
        }
    }

    /// Handles a PDU before the session is bound.
    async fn before_bind(&mut self, frame: Frame) -> Next {
        let cmd = match frame {
            Frame::Command(c) => c,
            Frame::Malformed {
                sequence_number,
                status,
                ..
            } => {
                self.malformed += 1;
                self.writer.queue(&generic_nack(sequence_number, status));
                return if self.malformed >= self.server.config.max_malformed {
                    Next::Close
                } else {
                    Next::Continue
                };
            }
        };
        let seq = cmd.sequence_number();
        let id = cmd.id();
        if let Some(req) = cmd.pdu().and_then(bind_request) {
            let ip = self.peer.ip();
            let admission =
                self.server
                    .throttle()
                    .admit(ip, &req.system_id, tokio::time::Instant::now());
            match admission {
                Admission::After(wait) if wait.is_zero() => {}
                Admission::After(wait) => tokio::time::sleep(wait).await,
                Admission::Refuse => {
                    tracing::warn!(peer = %self.peer, system_id = ?req.system_id, reason = "too many failed binds waiting from this source or for this system_id", "SMPP bind refused unchecked");
                    self.writer
                        .queue(&error_resp(id.into(), seq, CommandStatus::EsmeRbindfail));
                    return Next::Close;
                }
            }
            return match self.server.auth.authenticate(&req, self.peer).await {
                Ok(principal) => {
                    self.server.throttle().succeeded(ip, &req.system_id);
                    self.writer.queue(&Command::new(
                        CommandStatus::EsmeRok,
                        seq,
                        bind_resp_pdu(req.mode, &self.server.config.system_id),
                    ));
                    tracing::debug!(session = self.id, system_id = %req.system_id, ?principal, mode = ?req.mode, "bound");
                    self.bound = Some((principal, req.mode, req.system_id));
                    Next::Continue
                }
                Err(CommandStatus::EsmeRsyserr) => {
                    // The server could not check (its store is down): not the ESME's fault.
                    tracing::warn!(peer = %self.peer, system_id = ?req.system_id, "SMPP bind failed: the credentials could not be checked");
                    self.writer
                        .queue(&error_resp(id.into(), seq, CommandStatus::EsmeRsyserr));
                    Next::Close
                }
                Err(status) => {
                    let now = tokio::time::Instant::now();
                    let (failures, next_wait) = {
                        let mut throttle = self.server.throttle();
                        let failures = throttle.failed(ip, &req.system_id, now);
                        (failures, throttle.pending(ip, &req.system_id, now))
                    };
                    tracing::warn!(
                        peer = %self.peer,
                        system_id = ?req.system_id,
                        reason = refusal_reason(status),
                        status = format_args!("{:#010x}", u32::from(status)),
                        failures,
                        next_bind_waits_ms = next_wait.as_millis(),
                        "SMPP bind refused"
                    );
                    self.writer.queue(&error_resp(id.into(), seq, status));
                    Next::Close
                }
            };
        }
        match id {
            CommandId::EnquireLink => {
                self.writer.queue(&Command::new(
                    CommandStatus::EsmeRok,
                    seq,
                    Pdu::EnquireLinkResp,
                ));
                Next::Continue
            }
            CommandId::Unbind => {
                self.writer
                    .queue(&Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp));
                Next::Close
            }
            id if id.is_response() => Next::Continue,
            _ => {
                self.writer
                    .queue(&generic_nack(seq, CommandStatus::EsmeRinvbndsts));
                Next::Continue
            }
        }
    }

    /// The stream cannot be resynchronised: tell the peer why and close.
    async fn fatal(&mut self, e: CodecError) -> Result<(), SessionError> {
        if matches!(e, CodecError::TooShort(_) | CodecError::TooLong { .. }) {
            self.writer
                .queue(&generic_nack(0, CommandStatus::EsmeRinvcmdlen));
            let _ = self.writer.flush().await;
        }
        Err(e.into())
    }
}
