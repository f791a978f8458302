//! SMSC simulator: an [`SmppServer`] whose handler answers every `submit_sm` at once and sends
//! a delivery receipt after a delay, with configurable failure and throttling rates, plus MO
//! injection (function and `POST /mo`). `relais smsc-sim` runs it.
//!
//! Speed: the server gives one task per session and batched writes; the handler here does no
//! I/O and no locking besides one channel send; receipts are produced by a single scheduler
//! task fed in submit order (the delay is constant, so that order is also due order).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rand::Rng;
use rusmpp::CommandStatus;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::concat::{Concatenation, build_parts};
use crate::pdu::{BindRequest, ESM_UDHI, ShortMessage, receipt_message, wire_address};
use crate::receipt::{ReceiptState, receipt_date};
use crate::server::{
    Authenticator, ServerConfig, ServerHandle, SmppServer, SubmitContext, SubmitHandler,
};

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
    /// Fraction (0..=1) of `submit_sm` answered `ESME_RTHROTTLED`. Default 0.
    pub throttle_rate: f64,
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

/// Counters, readable while the simulator runs.
#[derive(Debug, Default)]
pub struct SimStats {
    pub submits: AtomicU64,
    pub throttled: AtomicU64,
    pub receipts_sent: AtomicU64,
    pub mo_sent: AtomicU64,
}

struct SimAuth {
    system_id: Option<String>,
    password: Option<String>,
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
        Ok(req.system_id.clone())
    }
}

struct Due {
    at: tokio::time::Instant,
    principal: String,
    receipt: ShortMessage,
}

struct SimHandler {
    next_id: AtomicU64,
    failure_rate: f64,
    throttle_rate: f64,
    always_receipt: bool,
    delay: Duration,
    receipts: mpsc::UnboundedSender<Due>,
    stats: Arc<SimStats>,
}

impl SubmitHandler<String> for SimHandler {
    async fn submit(
        &self,
        ctx: SubmitContext<'_, String>,
        message: ShortMessage,
    ) -> Result<String, CommandStatus> {
        self.stats.submits.fetch_add(1, Ordering::Relaxed);
        if self.throttle_rate > 0.0 && rand::thread_rng().r#gen::<f64>() < self.throttle_rate {
            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(CommandStatus::EsmeRthrottled);
        }
        // Decimal ids: Kannel's default msg-id-type reads both resp and receipt ids as decimal.
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
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
            let _ = self.receipts.send(Due {
                at: tokio::time::Instant::now() + self.delay,
                principal: ctx.principal.clone(),
                receipt,
            });
        }
        Ok(id)
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
    /// Sends a mobile-originated message to a bound receiver (of `system_id`, or any). Long
    /// texts go as UDH-concatenated parts. Returns the number of parts.
    pub async fn inject_mo(
        &self,
        system_id: Option<&str>,
        from: &str,
        to: &str,
        text: &str,
    ) -> Result<usize, SimError> {
        let coding = relais_core::sms::detect_encoding(text).data_coding();
        let reference = (self.next_ref.fetch_add(1, Ordering::Relaxed) & 0xFF) as u16;
        let parts = build_parts(text, coding, Concatenation::Udh8, reference)
            .map_err(|e| SimError::Invalid(e.to_string()))?;
        let n = parts.len();
        let principal = system_id.map(str::to_string);
        for part in parts {
            let mut m = ShortMessage::new(wire_address(from), wire_address(to));
            m.data_coding = coding.code();
            m.short_message = part.short_message;
            if part.udhi {
                m.esm_class |= ESM_UDHI;
            }
            m.payload = part.payload;
            self.server
                .send(principal.as_ref(), m)
                .await
                .map_err(|_| SimError::NotBound)?;
            self.stats.mo_sent.fetch_add(1, Ordering::Relaxed);
        }
        Ok(n)
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
    let smpp_addr = listener.local_addr().map_err(|source| SimError::Listen {
        addr: config.listen,
        source,
    })?;
    let stats = Arc::new(SimStats::default());
    let server_handle = ServerHandle::<String>::new();
    let (rtx, rrx) = mpsc::unbounded_channel();
    let handler = SimHandler {
        next_id: AtomicU64::new(1),
        failure_rate: config.failure_rate.clamp(0.0, 1.0),
        throttle_rate: config.throttle_rate.clamp(0.0, 1.0),
        always_receipt: config.always_receipt,
        delay: Duration::from_millis(config.receipt_delay_ms),
        receipts: rtx,
        stats: stats.clone(),
    };
    let server = SmppServer::with_handle(
        ServerConfig {
            system_id: config.server_system_id.clone(),
            max_in_flight: 4096,
            deliver_window: 1024,
            deliver_queue: 16 * 1024,
            ..ServerConfig::default()
        },
        SimAuth {
            system_id: config.system_id.clone(),
            password: config.password.clone(),
        },
        handler,
        server_handle.clone(),
    );
    let handle = SimHandle {
        smpp_addr,
        http_addr: None,
        stats: stats.clone(),
        server: server_handle.clone(),
        next_ref: Arc::new(AtomicU64::new(1)),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(schedule_receipts(rrx, server_handle, stats));
    let mut http_addr = None;
    if let Some(addr) = config.http_listen {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Listen { addr, source })?;
        http_addr = l.local_addr().ok();
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
    let mut stop = stop_rx;
    tokio::spawn(async move {
        let _ = server
            .serve(listener, async move {
                let _ = stop.changed().await;
            })
            .await;
    });
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    Ok(SimHandle {
        http_addr,
        ..handle
    })
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
    Ok(())
}

async fn schedule_receipts(
    mut rx: mpsc::UnboundedReceiver<Due>,
    server: ServerHandle<String>,
    stats: Arc<SimStats>,
) {
    while let Some(due) = rx.recv().await {
        tokio::time::sleep_until(due.at).await;
        // The submitting session may be gone: fall back to any session of the same system_id,
        // and drop the receipt if none (a real SMSC would retry; the simulator counts it).
        if server.send(Some(&due.principal), due.receipt).await.is_ok() {
            stats.receipts_sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}
