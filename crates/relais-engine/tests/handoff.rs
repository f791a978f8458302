//! Messages due now go from the accept path straight to the running dispatcher: it is woken
//! at once, and when it stops, what it had not sent goes back to the outbox at once.
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use relais_core::channel::ChannelKind;
use relais_core::clock::{Clock, ManualClock};
use relais_core::contact::AddressRules;
use relais_core::status::MessageStatus;
use relais_engine::dispatch::{
    ChannelAdapter, ChannelRegistry, Dispatcher, DispatcherConfig, OutboundMessage, ProviderAck,
    SendError,
};
use relais_engine::send::{AcceptContext, BatchItem, SANDBOX_KINDS, accept_batch};
use relais_store::{SqliteStore, Store};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LEASE: SignedDuration = SignedDuration::from_secs(60);

/// Holds every send until opened, and records what it was given.
struct Gate {
    open: tokio::sync::watch::Sender<bool>,
    sent: Mutex<Vec<String>>,
}

impl Gate {
    fn new(open: bool) -> Arc<Self> {
        Arc::new(Gate {
            open: tokio::sync::watch::channel(open).0,
            sent: Mutex::new(Vec::new()),
        })
    }
    fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl ChannelAdapter for Gate {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sim
    }
    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError> {
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
        self.sent.lock().unwrap().push(message.message_id.clone());
        Ok(ProviderAck {
            provider_id: format!("p-{}", message.message_id),
        })
    }
}

struct World {
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    tenant: String,
    registry: ChannelRegistry,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let start: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
    let tenant = store.create_tenant("acme", start).await.unwrap().id;
    World {
        store,
        clock: Arc::new(ManualClock::new(start)),
        tenant,
        registry: ChannelRegistry::default(),
        _dir: dir,
    }
}

impl World {
    fn dispatcher(&self, gate: &Arc<Gate>, batch: u32) -> Arc<Dispatcher> {
        Arc::new(
            Dispatcher::new(
                self.store.clone(),
                self.clock.clone(),
                DispatcherConfig {
                    lease_owner: "node-a".into(),
                    lease_for: LEASE,
                    batch,
                    default_rate: 1e9,
                    // Resting this long would show: only a hand-off can wake it in time.
                    idle: Duration::from_secs(600),
                    ..Default::default()
                },
            )
            .with_adapter(gate.clone())
            .with_registry(self.registry.clone()),
        )
    }

    async fn accept(&self, count: usize) -> Vec<String> {
        let ctx = AcceptContext {
            store: &self.store,
            rules: AddressRules {
                default_country: None,
            },
            now: self.clock.now(),
            configured: SANDBOX_KINDS,
            built_in: SANDBOX_KINDS,
            handoff: Some(self.registry.handoff()),
            links: None,
        };
        let requests = (0..count)
            .map(|i| {
                serde_json::value::to_raw_value(&serde_json::json!({
                    "to": format!("+3361234{i:04}"),
                    "content": {"text": "Bonjour"},
                }))
                .unwrap()
            })
            .collect();
        accept_batch(ctx, &self.tenant, requests)
            .await
            .unwrap()
            .into_iter()
            .map(|item| match item {
                BatchItem::Accepted(a) => a.id,
                BatchItem::Refused(e) => panic!("refused: {e}"),
            })
            .collect()
    }

    async fn status(&self, id: &str) -> MessageStatus {
        let m = self.store.message(&self.tenant, id).await.unwrap().unwrap();
        m.message.status
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

#[tokio::test]
async fn a_message_due_now_wakes_the_resting_dispatcher() {
    let w = world().await;
    let gate = Gate::new(true);
    let handle = w.dispatcher(&gate, 100).spawn();
    // Its first round finds nothing: it rests for ten minutes unless woken.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let ids = w.accept(3).await;
    until("the three messages are sent", || gate.sent().len() == 3).await;
    handle.shutdown().await;
    let mut sent = gate.sent();
    sent.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(sent, expected);
    for id in &ids {
        assert_eq!(w.status(id).await, MessageStatus::Sent, "{id}");
    }
}

#[tokio::test]
async fn a_stopping_dispatcher_gives_back_what_it_did_not_send_at_once() {
    let w = world().await;
    let gate = Gate::new(false);
    let handle = w.dispatcher(&gate, 2).spawn();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The first two are taken in a round that waits at the gate; the rest are queued.
    let mut ids = w.accept(2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    ids.extend(w.accept(3).await);
    // While queued they are the dispatcher's: another node does not claim them.
    let now = w.clock.now();
    assert!(
        w.store
            .claim_due(now, 10, "node-b", LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    let stopping = tokio::spawn(handle.shutdown());
    tokio::time::sleep(Duration::from_millis(50)).await;
    gate.open.send_replace(true);
    stopping.await.unwrap();

    // Without waiting for the leases to run out (the clock has not moved), another node
    // claims what was not sent; nothing is lost and nothing is sent twice.
    let sent = gate.sent();
    assert!(
        sent.len() >= 2,
        "the round in progress was finished: {sent:?}"
    );
    let given_back: Vec<String> = w
        .store
        .claim_due(now, 10, "node-b", LEASE)
        .await
        .unwrap()
        .into_iter()
        .map(|item| item.message.id)
        .collect();
    let mut all: Vec<String> = sent.iter().chain(&given_back).cloned().collect();
    all.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(all, expected, "sent {sent:?}, given back {given_back:?}");
    for id in &sent {
        assert_eq!(w.status(id).await, MessageStatus::Sent, "{id}");
    }
    for id in &given_back {
        assert_eq!(w.status(id).await, MessageStatus::Queued, "{id}");
    }
}
