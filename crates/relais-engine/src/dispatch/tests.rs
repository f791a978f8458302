//! The dispatcher's passes and lanes on a fresh SQLite store, with adapters that record
//! what they are given.

use super::*;
use async_trait::async_trait;
use relais_core::clock::ManualClock;
use relais_core::status::MessageStatus;
use relais_store::{NewMessage, SqliteStore};

fn t(secs: i64) -> Timestamp {
    let start: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
    start.checked_add(SignedDuration::from_secs(secs)).unwrap()
}

fn message(tenant: &str, due: i64) -> NewMessage {
    relais_store::conformance::queued_message(tenant, "sim", "+33612345678", t(due))
}

const LEASE: SignedDuration = SignedDuration::from_secs(60);

/// Records the ids it is given, in order.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

#[async_trait]
impl ChannelAdapter for Recorder {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sim
    }
    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError> {
        self.0.lock().unwrap().push(message.message_id.clone());
        Ok(ProviderAck {
            provider_id: format!("p-{}", message.message_id),
        })
    }
}

/// A dispatcher ("node-a", run by hand) on a fresh SQLite store at 10 s, recording
/// what it sends.
struct Rig {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    tenant: String,
    clock: Arc<ManualClock>,
    recorder: Arc<Recorder>,
    registry: ChannelRegistry,
    dispatcher: Dispatcher,
}

async fn rig(batch: u32) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let tenant = store.create_tenant("acme", t(0)).await.unwrap().id;
    let clock = Arc::new(ManualClock::new(t(10)));
    let recorder = Arc::new(Recorder::default());
    let registry = ChannelRegistry::default();
    let dispatcher = Dispatcher::new(
        store.clone(),
        clock.clone(),
        DispatcherConfig {
            lease_owner: "node-a".into(),
            lease_for: LEASE,
            batch,
            default_rate: 1e9,
            ..Default::default()
        },
    )
    .with_adapter(recorder.clone())
    .with_registry(registry.clone());
    Rig {
        _dir: dir,
        store,
        tenant,
        clock,
        recorder,
        registry,
        dispatcher,
    }
}

#[tokio::test]
async fn what_waits_in_the_outbox_since_before_the_hand_offs_goes_first() {
    let Rig {
        _dir,
        store,
        tenant,
        clock: _,
        recorder,
        registry,
        dispatcher,
    } = rig(2).await;
    // Stored before the dispatcher ran: due at 5s, unleased.
    let older = message(&tenant, 5);
    store
        .insert_messages(std::slice::from_ref(&older))
        .await
        .unwrap();
    let handoff = registry.handoff();
    handoff.open("node-a", LEASE, 10);
    let newer = [message(&tenant, 10), message(&tenant, 10)];
    let reservation = handoff.reserve(2, t(10)).unwrap();
    store
        .insert_messages_leased(&newer, Some(reservation.lease()))
        .await
        .unwrap();
    reservation.deliver(&newer).unwrap();

    let first = dispatcher.run_once().await.unwrap();
    assert_eq!(first.claimed, 2);
    let second = dispatcher.run_once().await.unwrap();
    assert_eq!(second.claimed, 1);
    assert_eq!(
        *recorder.0.lock().unwrap(),
        [older.id.clone(), newer[0].id.clone(), newer[1].id.clone()]
    );
    for id in [&older.id, &newer[0].id, &newer[1].id] {
        let m = store.message(&tenant, id).await.unwrap().unwrap();
        assert_eq!(m.message.status, MessageStatus::Sent, "{id}");
    }
    assert!(
        store
            .claim_due(t(100), 10, "node-b", LEASE)
            .await
            .unwrap()
            .is_empty(),
        "every outbox row is done"
    );
}

#[tokio::test]
async fn while_hand_offs_keep_coming_the_outbox_is_still_looked_at_every_100_ms() {
    let Rig {
        _dir,
        store,
        tenant,
        clock,
        recorder,
        registry,
        dispatcher,
    } = rig(10).await;
    let handoff = registry.handoff();
    handoff.open("node-a", LEASE, 100);
    let hand_off = |at: Timestamp| {
        let store = store.clone();
        let tenant = tenant.clone();
        let handoff = handoff.clone();
        async move {
            let mut m = message(&tenant, 0);
            m.created_at = at;
            m.due_at = Some(at);
            let reservation = handoff.reserve(1, at).unwrap();
            store
                .insert_messages_leased(std::slice::from_ref(&m), Some(reservation.lease()))
                .await
                .unwrap();
            reservation.deliver(std::slice::from_ref(&m)).unwrap();
            m.id
        }
    };
    let ms = |n: i64| t(10).checked_add(SignedDuration::from_millis(n)).unwrap();
    // The outbox is empty: the first pass's claim finds nothing.
    let first = hand_off(ms(0)).await;
    dispatcher.run_once().await.unwrap();
    // A retry comes due in the outbox meanwhile.
    let retry = message(&tenant, 10);
    store
        .insert_messages(std::slice::from_ref(&retry))
        .await
        .unwrap();
    clock.set(ms(50));
    let second = hand_off(ms(50)).await;
    dispatcher.run_once().await.unwrap();
    clock.set(ms(150));
    let third = hand_off(ms(150)).await;
    dispatcher.run_once().await.unwrap();
    assert_eq!(
        *recorder.0.lock().unwrap(),
        [first, second, retry.id.clone(), third],
        "50 ms after a claim found nothing the outbox waits; 150 ms after, it goes first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checks_never_give_more_places_than_the_limit() {
    let rig = rig(10).await;
    let dispatcher = Arc::new(rig.dispatcher);
    let limit = relais_channels::adapter::RecipientLimit {
        recipients: 5,
        window: SignedDuration::from_hours(24),
    };
    let template: relais_core::content::Content =
        serde_json::from_value(serde_json::json!({"template": "order_shipped"})).unwrap();
    let mut checks = Vec::new();
    for n in 0..20 {
        let new = relais_store::conformance::queued_message(
            &rig.tenant,
            "wa",
            &format!("+3361234{n:04}"),
            t(0),
        );
        rig.store
            .insert_messages(std::slice::from_ref(&new))
            .await
            .unwrap();
        let message = rig
            .store
            .message(&rig.tenant, &new.id)
            .await
            .unwrap()
            .unwrap()
            .message;
        let item = OutboxItem {
            message,
            due_at: t(0),
            attempts: 0,
            phase: relais_store::OutboxPhase::Send,
            lease_until: t(70),
        };
        let (dispatcher, template) = (dispatcher.clone(), template.clone());
        checks.push(tokio::spawn(async move {
            dispatcher
                .within_limit(&item, ChannelKind::Sms, &template, limit, t(10))
                .await
                .unwrap()
                .is_none()
        }));
    }
    let mut went = 0;
    for check in checks {
        went += usize::from(check.await.unwrap());
    }
    assert_eq!(went, 5);
    let reach = rig
        .store
        .reach_since(&rig.tenant, "wa", "+nobody", t(0))
        .await
        .unwrap();
    assert_eq!(reach.recipients, 5);
}

/// A message in hand (queued in its lane, being sent, or its outcome not written yet)
/// whose lease ran out because the heartbeat came late (a busy store, a starved process):
/// the next claim takes its row again, since the lease is over. That claim renews the
/// lease for this dispatcher, which must not give the message to its lane a second time:
/// it would be sent again while (or after) the provider acknowledges the first send.
#[tokio::test]
async fn a_claim_never_hands_out_again_a_message_in_hand_whose_lease_ran_out() {
    let Rig {
        _dir,
        store,
        tenant,
        clock: _,
        recorder: _,
        registry: _,
        dispatcher,
    } = rig(10).await;
    let m = message(&tenant, 5);
    store
        .insert_messages(std::slice::from_ref(&m))
        .await
        .unwrap();
    let nothing_found = Mutex::new(None);
    let first = dispatcher
        .claim_for("sim", 10, t(10), &nothing_found, true)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    // No heartbeat: at 10 s + the lease + 1 s, the row's lease is over.
    let late = t(11).checked_add(LEASE).unwrap();
    let again = dispatcher
        .claim_for("sim", 10, late, &nothing_found, true)
        .await
        .unwrap();
    assert!(
        again.is_empty(),
        "the message in hand went to its lane a second time: {:?}",
        again.iter().map(|i| &i.message.id).collect::<Vec<_>>()
    );
    // Still in hand, under the lease that claim renewed.
    let renewed = late.checked_add(LEASE).unwrap();
    let before_renewed_end = renewed.checked_sub(SignedDuration::from_secs(1)).unwrap();
    assert!(
        dispatcher
            .held
            .valid(&m.id, before_renewed_end, SignedDuration::ZERO)
    );
    // Once its outcome is written, the row that second claim leased is given back, so its
    // next step is not held up by that lease.
    assert_eq!(
        dispatcher.held.release_settled([m.id.as_str()]),
        vec![m.id.clone()]
    );
    assert!(dispatcher.held.release_settled([m.id.as_str()]).is_empty());
}
