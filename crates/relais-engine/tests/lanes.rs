//! The running dispatcher under a provider that is down, slow or stuck, and a store that
//! cannot write: messages wait without spending attempts, a lane never has more than its
//! window sent and unrecorded, a send that outlives its lease is not sent again by another
//! node, and a stop is bounded and gives back what was not sent.
//!
//! These run on the system clock (leases and the heartbeat are real); nothing here asserts a
//! duration, the time-outs only keep a broken build from hanging.

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use relais_core::channel::ChannelKind;
use relais_core::clock::{Clock, SystemClock};
use relais_core::status::MessageStatus;
use relais_engine::dispatch::{
    ChannelAdapter, Dispatcher, DispatcherConfig, OutboundMessage, ProviderAck, SendError,
};
use relais_store::{NewMessage, SqliteStore, Store};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A provider under the test's control: it is connected or not, holds every send until its
/// gate opens, answers "not sent" when told to, and records what it took.
struct Provider {
    connected: AtomicBool,
    gate: tokio::sync::watch::Sender<bool>,
    refuse_as_not_sent: AtomicBool,
    window: usize,
    waiting: AtomicUsize,
    taken: Mutex<Vec<String>>,
}

impl Provider {
    fn new(window: usize) -> Arc<Provider> {
        Arc::new(Provider {
            connected: AtomicBool::new(true),
            gate: tokio::sync::watch::channel(true).0,
            refuse_as_not_sent: AtomicBool::new(false),
            window,
            waiting: AtomicUsize::new(0),
            taken: Mutex::new(Vec::new()),
        })
    }
    fn taken(&self) -> Vec<String> {
        self.taken.lock().unwrap().clone()
    }
}

#[async_trait]
impl ChannelAdapter for Provider {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sim
    }
    fn is_ready(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }
    fn max_in_flight(&self) -> usize {
        self.window
    }
    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError> {
        if self.refuse_as_not_sent.load(Ordering::SeqCst) {
            return Err(SendError::not_sent("not_connected", "no bind is connected"));
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut gate = self.gate.subscribe();
        let _ = gate.wait_for(|open| *open).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        self.taken.lock().unwrap().push(message.message_id.clone());
        Ok(ProviderAck {
            provider_id: format!("p-{}", message.message_id),
        })
    }
}

struct World {
    store: Arc<dyn Store>,
    db: std::path::PathBuf,
    tenant: String,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).await.unwrap());
    let tenant = store
        .create_tenant("acme", SystemClock.now())
        .await
        .unwrap()
        .id;
    World {
        store,
        db,
        tenant,
        _dir: dir,
    }
}

fn message(tenant: &str, n: usize) -> NewMessage {
    let to = format!("+336{n:08}");
    relais_store::conformance::queued_message(tenant, "sim", &to, SystemClock.now())
}

impl World {
    async fn stored(&self, count: usize) -> Vec<String> {
        let batch: Vec<NewMessage> = (0..count).map(|n| message(&self.tenant, n)).collect();
        self.store.insert_messages(&batch).await.unwrap();
        batch.into_iter().map(|m| m.id).collect()
    }

    fn dispatcher(&self, provider: &Arc<Provider>, config: DispatcherConfig) -> Arc<Dispatcher> {
        Arc::new(
            Dispatcher::new(
                self.store.clone(),
                Arc::new(SystemClock),
                DispatcherConfig {
                    lease_owner: "node-a".into(),
                    default_rate: 1e9,
                    idle: Duration::from_millis(20),
                    ..config
                },
            )
            .with_adapter(provider.clone()),
        )
    }

    async fn status(&self, id: &str) -> MessageStatus {
        let m = self.store.message(&self.tenant, id).await.unwrap().unwrap();
        m.message.status
    }

    /// The attempts recorded on a message's outbox row (`None`: no row).
    async fn outbox_attempts(&self, id: &str) -> Option<i64> {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(&self.db)
                    .read_only(true),
            )
            .await
            .unwrap();
        let attempts: Option<i64> =
            sqlx::query_scalar("SELECT attempts FROM outbox WHERE message_id = $1")
                .bind(id)
                .fetch_optional(&pool)
                .await
                .unwrap();
        pool.close().await;
        attempts
    }
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_without_a_connection_keeps_its_messages_without_spending_attempts() {
    let w = world().await;
    let provider = Provider::new(10);
    provider.connected.store(false, Ordering::SeqCst);
    let ids = w.stored(5).await;
    let handle = w.dispatcher(&provider, DispatcherConfig::default()).spawn();
    // Several passes of the claimer go by while the channel is down.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(provider.taken().is_empty(), "nothing goes out");
    for id in &ids {
        assert_eq!(w.status(id).await, MessageStatus::Queued);
        assert_eq!(w.outbox_attempts(id).await, Some(0), "no attempt spent");
    }

    // A race: the channel says it is ready, then refuses the send as not sent.
    provider.refuse_as_not_sent.store(true, Ordering::SeqCst);
    provider.connected.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(provider.taken().is_empty());

    provider.refuse_as_not_sent.store(false, Ordering::SeqCst);
    until("the five are sent", async || provider.taken().len() == 5).await;
    handle.shutdown().await;
    let mut taken = provider.taken();
    taken.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(taken, expected, "each once");
    for id in &ids {
        let m = w.store.message(&w.tenant, id).await.unwrap().unwrap();
        assert_eq!(m.message.status, MessageStatus::Sent);
        let attempts: Vec<Option<i64>> = m
            .events
            .iter()
            .filter(|e| e.status == MessageStatus::Sending)
            .map(|e| e.attempt)
            .collect();
        assert_eq!(
            attempts,
            [Some(1)],
            "one attempt, the one that went: {:?}",
            m.events
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_never_has_more_than_its_window_sent_and_unrecorded() {
    let w = world().await;
    let window = 4;
    let provider = Provider::new(window);
    provider.gate.send_replace(false);
    let ids = w.stored(40).await;
    let handle = w
        .dispatcher(
            &provider,
            DispatcherConfig {
                batch: 40,
                ..Default::default()
            },
        )
        .spawn();
    until("the window is full", async || {
        provider.waiting.load(Ordering::SeqCst) == window
    })
    .await;

    // The store stops taking writes: another connection holds SQLite's write lock.
    let blocker = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&w.db))
        .await
        .unwrap();
    let mut lock = blocker.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("UPDATE tenants SET name = name")
        .execute(&mut *lock)
        .await
        .unwrap();
    provider.gate.send_replace(true);
    until("the window's sends are answered", async || {
        provider.taken().len() == window
    })
    .await;
    // Their outcomes cannot be written, so their window slots are not given back: the
    // lane sends nothing more, whatever it has queued.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        provider.taken().len(),
        window,
        "sent while the store could not record: at most the window"
    );
    lock.rollback().await.unwrap();
    blocker.close().await;

    until("all forty are sent", async || provider.taken().len() == 40).await;
    handle.shutdown().await;
    let mut taken = provider.taken();
    taken.sort();
    taken.dedup();
    assert_eq!(taken.len(), 40, "none twice");
    for id in &ids {
        assert_eq!(w.status(id).await, MessageStatus::Sent);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_that_outlives_its_lease_is_kept_by_the_heartbeat_and_not_sent_twice() {
    let w = world().await;
    let provider = Provider::new(10);
    provider.gate.send_replace(false);
    let ids = w.stored(3).await;
    let lease = SignedDuration::from_secs(2);
    let handle = w
        .dispatcher(
            &provider,
            DispatcherConfig {
                lease_for: lease,
                ..Default::default()
            },
        )
        .spawn();
    until("the three are with the provider", async || {
        provider.waiting.load(Ordering::SeqCst) == 3
    })
    .await;
    // Three leases' worth of time: another node tries to take the work all along.
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        let taken = w
            .store
            .claim_due(Timestamp::now(), 10, "node-b", lease)
            .await
            .unwrap();
        assert!(
            taken.is_empty(),
            "node-b took work node-a is still sending: {:?}",
            taken.iter().map(|i| &i.message.id).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    provider.gate.send_replace(true);
    until("the three are sent", async || provider.taken().len() == 3).await;
    handle.shutdown().await;
    for id in &ids {
        assert_eq!(w.status(id).await, MessageStatus::Sent);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_the_provider_hangs_is_bounded_and_gives_back_what_was_not_sent() {
    let w = world().await;
    let provider = Provider::new(2);
    provider.gate.send_replace(false);
    let ids = w.stored(6).await;
    let handle = w
        .dispatcher(
            &provider,
            DispatcherConfig {
                shutdown_grace: Duration::from_millis(200),
                ..Default::default()
            },
        )
        .spawn();
    until("the window is full", async || {
        provider.waiting.load(Ordering::SeqCst) == 2
    })
    .await;
    let stopped = tokio::time::timeout(Duration::from_secs(20), handle.shutdown()).await;
    assert!(
        stopped.is_ok(),
        "the stop waits for a provider that never answers"
    );
    // Everything comes back at once: another node claims all six now, not when the
    // leases run out (the two in flight may have reached the provider, as after a crash).
    let now = Timestamp::now();
    let mut retaken: Vec<String> = w
        .store
        .claim_due(now, 10, "node-b", SignedDuration::from_secs(60))
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.message.id)
        .collect();
    retaken.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(retaken, expected);
    for id in &ids {
        assert_eq!(w.outbox_attempts(id).await, Some(0));
    }
}
