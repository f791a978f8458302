//! SMSC simulator: an [`SmppServer`] whose handler answers every `submit_sm` at once and sends
//! a delivery receipt after a delay, with configurable failure and throttling (a random share
//! and a TPS limit per `system_id`), plus MO injection (function and `POST /mo`). Receipts and
//! MO are delivered at least once, like a real SMSC: until an ESME answers `ESME_ROK`
//! (`deliveries.rs`). It can drop its binds and stop and restart listening on the same port,
//! keeping what it owes, as a restarted SMSC would. `relais smsc-sim` runs it.
//!
//! Speed: the server gives one task per session and batched writes; the handler here does no
//! I/O and takes one lock only with a TPS limit; deliveries are one task for all.

mod deliveries;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;
use rusmpp::CommandStatus;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::concat::{Concatenation, build_parts};
use crate::pdu::{BindRequest, ESM_UDHI, ShortMessage, receipt_message, wire_address};
use crate::receipt::{ReceiptState, receipt_date};
use crate::server::{
    Authenticator, ServerConfig, ServerHandle, SmppServer, SubmitContext, SubmitHandler,
};
use deliveries::{Kind, Owed};

/// Simulator settings. Every field has a default (see `Default`), so a config file or CLI
/// only names what it changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// SMPP listen address. Default `127.0.0.1:2775`.
    pub listen: SocketAddr,
    /// HTTP address for `POST /mo`. Default `None` (no HTTP listener).
    pub http_listen: Option<SocketAddr>,
    /// Accepted `system_id`; `None` (default) accepts any.
    pub system_id: Option<String>,
    /// Accepted password when `system_id` is set. Default `None` (any).
    pub password: Option<String>,
    /// Delay between `submit_sm_resp` and the receipt, in milliseconds. Default 100.
    pub receipt_delay_ms: u64,
    /// Fraction (0..=1) of messages that get an `UNDELIV` receipt. Default 0.
    pub failure_rate: f64,
    /// Fraction (0..=1) of `submit_sm` answered `ESME_RTHROTTLED` at random. Default 0.
    pub throttle_rate: f64,
    /// `submit_sm` accepted per second and `system_id` (a token bucket holding a tenth of a
    /// second's worth, at least one); the others are answered `ESME_RTHROTTLED`, as a real
    /// SMSC enforces an account's TPS. Default `None` (no limit).
    pub max_tps: Option<f64>,
    /// Wait before delivering again a receipt or MO whose `deliver_sm` failed (error
    /// answer, no answer in time, bind lost, nobody bound), in milliseconds. Default 1000.
    pub redelivery_delay_ms: u64,
    /// How long a `deliver_sm` waits for its `deliver_sm_resp`, in milliseconds. Default
    /// 30000.
    pub deliver_timeout_ms: u64,
    /// Send receipts even when `registered_delivery` did not ask. Default false.
    pub always_receipt: bool,
    /// `system_id` announced in bind responses. Default `relais-sim`.
    pub server_system_id: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 2775)),
            http_listen: None,
            system_id: None,
            password: None,
            receipt_delay_ms: 100,
            failure_rate: 0.0,
            throttle_rate: 0.0,
            max_tps: None,
            redelivery_delay_ms: 1000,
            deliver_timeout_ms: 30_000,
            always_receipt: false,
            server_system_id: "relais-sim".into(),
        }
    }
}

/// Errors starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no ESME is bound to receive")]
    NotBound,
    #[error("invalid MO: {0}")]
    Invalid(String),
}

/// Counters, readable while the simulator runs ([`SimStats::snapshot`] reads them all).
#[derive(Debug, Default)]
pub struct SimStats {
    /// `submit_sm` received.
    pub submits: AtomicU64,
    /// `submit_sm` answered `ESME_ROK`.
    pub accepted: AtomicU64,
    /// `submit_sm` answered `ESME_RTHROTTLED` (random share or over `max_tps`).
    pub throttled: AtomicU64,
    /// Receipts owed (one per accepted message that asked for one).
    pub receipts_created: AtomicU64,
    /// Receipt `deliver_sm` handed to a session, redeliveries included.
    pub receipts_sent: AtomicU64,
    /// Of `receipts_sent`, those delivering a receipt again.
    pub receipts_redelivered: AtomicU64,
    /// Receipts an ESME answered `ESME_ROK` (each counted once).
    pub receipts_acked: AtomicU64,
    /// MO `deliver_sm` owed (one per part).
    pub mo_created: AtomicU64,
    pub mo_sent: AtomicU64,
    pub mo_redelivered: AtomicU64,
    pub mo_acked: AtomicU64,
    /// Accepted submits per client reference (`reference#part` for a part of a long
    /// message): what a test reads to count messages an ESME sent twice.
    pub references: Mutex<HashMap<String, u32>>,
    /// What became of the answer to each accepted submit with a client reference, by
    /// reference (the keys of `references`), in the order the submits were accepted:
    /// [`SimStats::repeats`] reads it to tell a resend the ESME could not avoid from one
    /// it should not have made.
    pub answers: Mutex<HashMap<String, Vec<AnswerFate>>>,
}

/// What became of the `submit_sm_resp` of an accepted submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerFate {
    /// Queued, not written yet (its session still runs).
    Pending,
    /// Handed to the ESME's connection: the ESME was told the message was accepted.
    Written,
    /// Its session ended first (the SMSC restarted, the link dropped): the ESME never
    /// learnt that the message was accepted.
    Unwritten,
}

/// Submits of one reference accepted more than once, by what the ESME knew when it sent
/// the message again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Repeats {
    /// Accepted again although an earlier submit's answer had been written (or was still
    /// on its way): the ESME sent again a message it was told the SMSC had. A bug.
    pub after_answer: u64,
    /// Accepted again when the answers of every earlier submit were lost with their
    /// sessions: the ESME could not know the SMSC had the message, and sending it again is
    /// the price of losing none (at least once).
    pub unanswered: u64,
}

impl Repeats {
    /// Every repeat, whatever the ESME knew.
    pub fn total(&self) -> u64 {
        self.after_answer + self.unanswered
    }
}

/// The counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SimCounters {
    pub submits: u64,
    pub accepted: u64,
    pub throttled: u64,
    pub receipts_created: u64,
    pub receipts_sent: u64,
    pub receipts_redelivered: u64,
    pub receipts_acked: u64,
    pub mo_created: u64,
    pub mo_sent: u64,
    pub mo_redelivered: u64,
    pub mo_acked: u64,
}

impl SimStats {
    /// The submits accepted more than once per reference so far, split by whether the
    /// ESME had been answered (see [`Repeats`]).
    pub fn repeats(&self) -> Repeats {
        let mut repeats = Repeats::default();
        let Ok(answers) = self.answers.lock() else {
            return repeats;
        };
        for fates in answers.values() {
            for (i, _) in fates.iter().enumerate().skip(1) {
                if fates[..i].iter().all(|f| *f == AnswerFate::Unwritten) {
                    repeats.unanswered += 1;
                } else {
                    repeats.after_answer += 1;
                }
            }
        }
        repeats
    }

    pub fn snapshot(&self) -> SimCounters {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SimCounters {
            submits: r(&self.submits),
            accepted: r(&self.accepted),
            throttled: r(&self.throttled),
            receipts_created: r(&self.receipts_created),
            receipts_sent: r(&self.receipts_sent),
            receipts_redelivered: r(&self.receipts_redelivered),
            receipts_acked: r(&self.receipts_acked),
            mo_created: r(&self.mo_created),
            mo_sent: r(&self.mo_sent),
            mo_redelivered: r(&self.mo_redelivered),
            mo_acked: r(&self.mo_acked),
        }
    }
}

impl std::fmt::Display for SimCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "submits {} (accepted {}, throttled {}); receipts owed {}, sent {}, redelivered {}, acknowledged {}; MO owed {}, sent {}, redelivered {}, acknowledged {}",
            self.submits,
            self.accepted,
            self.throttled,
            self.receipts_created,
            self.receipts_sent,
            self.receipts_redelivered,
            self.receipts_acked,
            self.mo_created,
            self.mo_sent,
            self.mo_redelivered,
            self.mo_acked
        )
    }
}

#[derive(Clone)]
struct SimAuth {
    system_id: Option<String>,
    password: Option<String>,
    /// Every system_id that bound, for MO sent to "any" ESME.
    seen: Arc<Mutex<Vec<String>>>,
}

impl Authenticator for SimAuth {
    type Principal = String;

    async fn authenticate(
        &self,
        req: &BindRequest,
        _peer: SocketAddr,
    ) -> Result<String, CommandStatus> {
        if let Some(sid) = &self.system_id {
            if &req.system_id != sid {
                return Err(CommandStatus::EsmeRinvsysid);
            }
            if self.password.as_ref().is_some_and(|p| &req.password != p) {
                return Err(CommandStatus::EsmeRinvpaswd);
            }
        }
        if let Ok(mut seen) = self.seen.lock()
            && !seen.contains(&req.system_id)
        {
            seen.push(req.system_id.clone());
        }
        Ok(req.system_id.clone())
    }
}

/// A token bucket: `rate` per second, `capacity` at most.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Clone)]
struct SimHandler {
    next_id: Arc<AtomicU64>,
    failure_rate: f64,
    throttle_rate: f64,
    max_tps: Option<f64>,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
    always_receipt: bool,
    delay: Duration,
    owed: mpsc::UnboundedSender<(tokio::time::Instant, Owed)>,
    stats: Arc<SimStats>,
    /// Accepted submits with a client reference whose answer is not written yet: message
    /// id → the reference's key and the submit's place in `stats.answers`.
    unanswered: Arc<Mutex<HashMap<String, (String, usize)>>>,
}

impl SimHandler {
    /// Whether this submit of `principal` is over its TPS.
    fn over_tps(&self, principal: &str) -> bool {
        let Some(tps) = self.max_tps else {
            return false;
        };
        let capacity = (tps / 10.0).max(1.0);
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return false;
        };
        let b = buckets.entry(principal.to_string()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * tps).min(capacity);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            false
        } else {
            true
        }
    }
}

impl SubmitHandler<String> for SimHandler {
    async fn submit(
        &self,
        ctx: SubmitContext<'_, String>,
        message: ShortMessage,
    ) -> Result<String, CommandStatus> {
        self.stats.submits.fetch_add(1, Ordering::Relaxed);
        let random =
            self.throttle_rate > 0.0 && rand::thread_rng().r#gen::<f64>() < self.throttle_rate;
        if random || self.over_tps(ctx.principal) {
            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(CommandStatus::EsmeRthrottled);
        }
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        // Decimal ids: Kannel's default msg-id-type reads both resp and receipt ids as decimal.
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        if let Some((_, reference)) = &message.client_reference {
            let key = match message.concat_part() {
                Some(part) => format!("{reference}#{}", part.seq),
                None => reference.clone(),
            };
            if let Ok(mut seen) = self.stats.references.lock() {
                *seen.entry(key.clone()).or_default() += 1;
            }
            if let Ok(mut answers) = self.stats.answers.lock() {
                let fates = answers.entry(key.clone()).or_default();
                fates.push(AnswerFate::Pending);
                let place = fates.len() - 1;
                if let Ok(mut unanswered) = self.unanswered.lock() {
                    unanswered.insert(id.clone(), (key, place));
                }
            }
        }
        if self.always_receipt || message.registered_delivery & 0x03 != 0 {
            let failed =
                self.failure_rate > 0.0 && rand::thread_rng().r#gen::<f64>() < self.failure_rate;
            let (state, err) = if failed {
                (ReceiptState::Undeliverable, 1)
            } else {
                (ReceiptState::Delivered, 0)
            };
            let now = receipt_date(SystemTime::now());
            let text = message.text();
            let receipt = receipt_message(
                &message.source,
                &message.destination,
                &id,
                state,
                err,
                &now,
                &now,
                &text,
            );
            self.stats.receipts_created.fetch_add(1, Ordering::Relaxed);
            let _ = self.owed.send((
                tokio::time::Instant::now() + self.delay,
                Owed {
                    principal: ctx.principal.clone(),
                    message: receipt,
                    kind: Kind::Receipt,
                    sent: 0,
                },
            ));
        }
        Ok(id)
    }

    fn answered(&self, _session_id: u64, message_id: &str, written: bool) {
        let Some((key, place)) = self
            .unanswered
            .lock()
            .ok()
            .and_then(|mut u| u.remove(message_id))
        else {
            return;
        };
        if let Ok(mut answers) = self.stats.answers.lock()
            && let Some(fate) = answers.get_mut(&key).and_then(|f| f.get_mut(place))
        {
            *fate = if written {
                AnswerFate::Written
            } else {
                AnswerFate::Unwritten
            };
        }
    }
}

/// What it takes to listen again after a stop.
struct Control {
    addr: SocketAddr,
    server_config: ServerConfig,
    auth: SimAuth,
    handler: SimHandler,
    server: ServerHandle<String>,
    listening: tokio::sync::Mutex<Option<Listening>>,
}

struct Listening {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Control {
    async fn listen(&self) -> Result<(), SimError> {
        let mut slot = self.listening.lock().await;
        if slot.is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr)
            .await
            .map_err(|source| SimError::Listen {
                addr: self.addr,
                source,
            })?;
        *slot = Some(self.serve(listener));
        Ok(())
    }

    fn serve(&self, listener: TcpListener) -> Listening {
        let server = SmppServer::with_handle(
            self.server_config.clone(),
            self.auth.clone(),
            self.handler.clone(),
            self.server.clone(),
        );
        let (stop, mut stop_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let _ = server
                .serve(listener, async move {
                    let _ = stop_rx.changed().await;
                })
                .await;
        });
        Listening { stop, task }
    }

    async fn unlisten(&self) {
        let taken = self.listening.lock().await.take();
        if let Some(l) = taken {
            let _ = l.stop.send(true);
            let _ = l.task.await;
        }
    }
}

/// A running simulator.
#[derive(Clone)]
pub struct SimHandle {
    pub smpp_addr: SocketAddr,
    pub http_addr: Option<SocketAddr>,
    pub stats: Arc<SimStats>,
    server: ServerHandle<String>,
    next_ref: Arc<AtomicU64>,
    control: Arc<Control>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("smpp_addr", &self.smpp_addr)
            .field("http_addr", &self.http_addr)
            .finish()
    }
}

impl SimHandle {
    /// Sends a mobile-originated message to a bound receiver (of `system_id`, or of any
    /// system_id that is bound now), delivered again until acknowledged. Long texts go as
    /// UDH-concatenated parts. Returns the number of parts.
    pub async fn inject_mo(
        &self,
        system_id: Option<&str>,
        from: &str,
        to: &str,
        text: &str,
    ) -> Result<usize, SimError> {
        let principal = match system_id {
            Some(s) if self.server.bound(&s.to_string()) > 0 => s.to_string(),
            Some(_) => return Err(SimError::NotBound),
            None => self
                .control
                .auth
                .seen
                .lock()
                .ok()
                .and_then(|seen| seen.iter().find(|p| self.server.bound(p) > 0).cloned())
                .ok_or(SimError::NotBound)?,
        };
        let coding = relais_core::sms::detect_encoding(text).data_coding();
        let reference = (self.next_ref.fetch_add(1, Ordering::Relaxed) & 0xFF) as u16;
        let parts = build_parts(text, coding, Concatenation::Udh8, reference)
            .map_err(|e| SimError::Invalid(e.to_string()))?;
        let n = parts.len();
        let now = tokio::time::Instant::now();
        for part in parts {
            let mut m = ShortMessage::new(wire_address(from), wire_address(to));
            m.data_coding = coding.code();
            m.short_message = part.short_message;
            if part.udhi {
                m.esm_class |= ESM_UDHI;
            }
            m.payload = part.payload;
            self.stats.mo_created.fetch_add(1, Ordering::Relaxed);
            let _ = self.control.handler.owed.send((
                now,
                Owed {
                    principal: principal.clone(),
                    message: m,
                    kind: Kind::Mo,
                    sent: 0,
                },
            ));
        }
        Ok(n)
    }

    /// All counters now.
    pub fn counters(&self) -> SimCounters {
        self.stats.snapshot()
    }

    /// Sessions bound with `system_id` now.
    pub fn bound(&self, system_id: &str) -> usize {
        self.server.bound(&system_id.to_string())
    }

    /// Stops listening and unbinds every session (what an SMSC going down does). What is
    /// owed stays owed and is delivered once an ESME binds again.
    pub async fn stop_listening(&self) {
        self.control.unlisten().await;
    }

    /// Listens again on the same address.
    pub async fn start_listening(&self) -> Result<(), SimError> {
        self.control.listen().await
    }

    /// An SMSC restart: stop listening, wait `down`, listen again on the same port.
    pub async fn restart(&self, down: Duration) -> Result<(), SimError> {
        self.stop_listening().await;
        tokio::time::sleep(down).await;
        self.start_listening().await
    }

    /// Drops every bind and takes new ones at once.
    pub async fn drop_binds(&self) -> Result<(), SimError> {
        self.restart(Duration::ZERO).await
    }
}

/// Starts the simulator in the background and returns once it listens.
pub async fn start(
    config: SimConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<SimHandle, SimError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| SimError::Listen {
            addr: config.listen,
            source,
        })?;
    // Port 0 becomes the port that restarts listen on again.
    let smpp_addr = listener.local_addr().map_err(|source| SimError::Listen {
        addr: config.listen,
        source,
    })?;
    let stats = Arc::new(SimStats::default());
    let server_handle = ServerHandle::<String>::new();
    let (owed_tx, owed_rx) = mpsc::unbounded_channel();
    let handler = SimHandler {
        next_id: Arc::new(AtomicU64::new(1)),
        failure_rate: config.failure_rate.clamp(0.0, 1.0),
        throttle_rate: config.throttle_rate.clamp(0.0, 1.0),
        max_tps: config.max_tps.filter(|t| t.is_finite() && *t > 0.0),
        buckets: Arc::new(Mutex::new(HashMap::new())),
        always_receipt: config.always_receipt,
        delay: Duration::from_millis(config.receipt_delay_ms),
        owed: owed_tx,
        stats: stats.clone(),
        unanswered: Arc::new(Mutex::new(HashMap::new())),
    };
    let control = Arc::new(Control {
        addr: smpp_addr,
        server_config: ServerConfig {
            system_id: config.server_system_id.clone(),
            max_in_flight: 4096,
            deliver_window: 1024,
            deliver_queue: 16 * 1024,
            response_timeout: Duration::from_millis(config.deliver_timeout_ms.max(1)),
            ..ServerConfig::default()
        },
        auth: SimAuth {
            system_id: config.system_id.clone(),
            password: config.password.clone(),
            seen: Arc::new(Mutex::new(Vec::new())),
        },
        handler,
        server: server_handle.clone(),
        listening: tokio::sync::Mutex::new(None),
    });
    *control.listening.lock().await = Some(control.serve(listener));
    let mut handle = SimHandle {
        smpp_addr,
        http_addr: None,
        stats: stats.clone(),
        server: server_handle.clone(),
        next_ref: Arc::new(AtomicU64::new(1)),
        control: control.clone(),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(deliveries::run(
        owed_rx,
        server_handle,
        stats,
        Duration::from_millis(config.redelivery_delay_ms),
        stop_rx.clone(),
    ));
    if let Some(addr) = config.http_listen {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Listen { addr, source })?;
        handle.http_addr = l.local_addr().ok();
        let app = crate::sim_http::router(handle.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _ = axum::serve(l, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                })
                .await;
        });
    }
    tokio::spawn(async move {
        shutdown.await;
        control.unlisten().await;
        let _ = stop_tx.send(true);
    });
    Ok(handle)
}

/// Runs the simulator until `shutdown` resolves (what `relais smsc-sim` calls).
pub async fn run(
    config: SimConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), SimError> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = start(config, async move {
        let _ = rx.await;
    })
    .await?;
    tracing::info!(smpp = %handle.smpp_addr, http = ?handle.http_addr, "SMSC simulator listening");
    shutdown.await;
    let _ = tx.send(());
    // Let sessions send their unbind.
    tokio::time::sleep(Duration::from_millis(200)).await;
    tracing::info!(counters = %handle.counters(), "SMSC simulator stopped");
    Ok(())
}
