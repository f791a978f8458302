//! Messages handed from the accept path straight to the running dispatcher.
//!
//! A message due now is stored with its outbox row already leased to the dispatcher, and the
//! accept path gives the dispatcher the message it just built: the dispatcher neither claims
//! the row nor reads the message back. The row is in the store all along, so nothing is lost
//! if the process stops: the lease runs out and the message is claimed like any other.
//!
//! The queue is bounded, in room and in time: when it is full, or when its oldest message
//! has waited a quarter of its lease (the dispatcher is slower than the accepts), messages
//! are stored unleased and reach the dispatcher through its claims. The dispatcher claims
//! what is due before the queue's oldest message first, so messages still go out in the
//! order they are due.

use jiff::{SignedDuration, Timestamp};
use relais_store::{Lease, NewMessage, OutboxItem};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

/// The hand-off queue of one process; cheap to clone (the clones share it).
#[derive(Clone, Default)]
pub struct Handoff {
    state: Arc<Mutex<State>>,
    pushed: Arc<tokio::sync::Notify>,
}

#[derive(Default)]
struct State {
    /// The dispatcher taking hand-offs, if one runs.
    taker: Option<Taker>,
    /// Hand-offs in the queue, oldest first, and the room reserved by accepts whose
    /// messages are not stored yet.
    queued: VecDeque<OutboxItem>,
    reserved: usize,
}

struct Taker {
    owner: String,
    lease_for: SignedDuration,
    capacity: usize,
}

/// Room in the queue for the messages of one accept, held until they are stored.
pub struct Reservation {
    handoff: Handoff,
    lease: Lease,
    count: usize,
}

impl Handoff {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Room for `count` messages due by `now`, or `None` when no dispatcher takes
    /// hand-offs, the queue is full or its oldest message has waited too long.
    pub fn reserve(&self, count: usize, now: Timestamp) -> Option<Reservation> {
        if count == 0 {
            return None;
        }
        let mut state = self.lock();
        let State {
            taker,
            queued,
            reserved,
        } = &mut *state;
        let taker = taker.as_ref()?;
        if queued.len() + *reserved + count > taker.capacity {
            return None;
        }
        let fresh = taker.lease_for * 3 / 4;
        if queued
            .front()
            .is_some_and(|head| head.lease_until.duration_since(now) < fresh)
        {
            return None;
        }
        *reserved += count;
        Some(Reservation {
            handoff: self.clone(),
            lease: Lease {
                owner: taker.owner.clone(),
                until: now.checked_add(taker.lease_for).unwrap_or(Timestamp::MAX),
                due_by: now,
            },
            count,
        })
    }

    /// Starts taking hand-offs for `owner`, up to `capacity` at a time.
    pub(crate) fn open(&self, owner: &str, lease_for: SignedDuration, capacity: usize) {
        let mut state = self.lock();
        state.taker = Some(Taker {
            owner: owner.to_owned(),
            lease_for,
            capacity: capacity.max(1),
        });
    }

    /// Stops taking hand-offs; what was queued and not taken, whose leases the caller
    /// gives up.
    pub(crate) fn close(&self) -> Vec<OutboxItem> {
        let mut state = self.lock();
        state.taker = None;
        state.queued.drain(..).collect()
    }

    /// Up to `max` queued messages, oldest first. A message whose lease has less than half
    /// its time left is dropped instead: its lease runs out soon and a claim takes it then,
    /// so it is never sent under a lease about to pass to another node.
    pub(crate) fn take(&self, max: usize, now: Timestamp) -> Vec<OutboxItem> {
        let mut state = self.lock();
        let Some(half) = state.taker.as_ref().map(|t| t.lease_for / 2) else {
            return Vec::new();
        };
        let n = max.min(state.queued.len());
        state
            .queued
            .drain(..n)
            .filter(|item| item.lease_until.duration_since(now) >= half)
            .collect()
    }

    /// When the oldest queued message was due: what is due before it in the store goes
    /// first.
    pub(crate) fn head_due(&self) -> Option<Timestamp> {
        self.lock().queued.front().map(|item| item.due_at)
    }

    /// Resolves when messages were handed off since the last call.
    pub(crate) async fn pushed(&self) {
        self.pushed.notified().await;
    }
}

impl Reservation {
    /// The lease to store the messages with.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Queues the stored messages the lease covers. When the dispatcher stopped meanwhile,
    /// their ids come back: the caller gives up their leases.
    pub fn deliver(self, messages: &[NewMessage]) -> Result<(), Vec<String>> {
        let items: Vec<OutboxItem> = messages
            .iter()
            .filter(|m| self.lease.covers(m.due_at))
            .filter_map(|m| m.to_outbox_item(&self.lease))
            .collect();
        let mut state = self.handoff.lock();
        let open = state
            .taker
            .as_ref()
            .is_some_and(|t| t.owner == self.lease.owner);
        if !open {
            return Err(items.into_iter().map(|i| i.message.id).collect());
        }
        state.queued.extend(items);
        drop(state);
        self.handoff.pushed.notify_one();
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut state = self.handoff.lock();
        state.reserved = state.reserved.saturating_sub(self.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::{
        ChannelAdapter, Dispatcher, DispatcherConfig, OutboundMessage, ProviderAck, SendError,
    };
    use async_trait::async_trait;
    use relais_core::channel::ChannelKind;
    use relais_core::clock::ManualClock;
    use relais_core::status::MessageStatus;
    use relais_store::{MessageEvent, SqliteStore, Store};

    fn t(secs: i64) -> Timestamp {
        let start: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        start.checked_add(SignedDuration::from_secs(secs)).unwrap()
    }

    fn message(tenant: &str, due: i64) -> NewMessage {
        NewMessage {
            id: relais_core::ids::new_id(),
            tenant_id: tenant.to_owned(),
            contact_id: None,
            to_address: "+33612345678".into(),
            channel: "sim".into(),
            step: 0,
            chain: serde_json::json!(["sim"]),
            content: serde_json::json!({"text": "Bonjour"}),
            purpose: "transactional".into(),
            sender: None,
            status: MessageStatus::Queued,
            segments: Some(1),
            idempotency_key: None,
            request_hash: None,
            send_at: None,
            expires_at: None,
            created_at: t(due),
            events: vec![MessageEvent::new(MessageStatus::Queued, t(due))],
            due_at: Some(t(due)),
        }
    }

    const LEASE: SignedDuration = SignedDuration::from_secs(60);

    #[test]
    fn room_is_reserved_only_for_an_open_queue_with_space_and_a_fresh_head() {
        let handoff = Handoff::default();
        assert!(
            handoff.reserve(1, t(0)).is_none(),
            "no dispatcher takes hand-offs"
        );
        handoff.open("node-a", LEASE, 3);
        let first = handoff.reserve(2, t(0)).expect("room for two");
        assert_eq!(first.lease().owner, "node-a");
        assert_eq!(first.lease().until, t(60));
        assert!(handoff.reserve(2, t(0)).is_none(), "two reserved of three");
        assert!(handoff.reserve(0, t(0)).is_none(), "nothing to hand off");
        drop(first);
        let first = handoff
            .reserve(3, t(0))
            .expect("an unused reservation is given back");
        first.deliver(&[message("acme", 0)]).unwrap();
        assert_eq!(handoff.head_due(), Some(t(0)));
        assert!(
            handoff.reserve(1, t(14)).is_some(),
            "the head waited 14s of 60"
        );
        assert!(
            handoff.reserve(1, t(16)).is_none(),
            "the head waited over a quarter of its lease: the dispatcher is behind"
        );
    }

    #[test]
    fn a_hand_off_whose_lease_is_half_gone_is_left_to_a_later_claim() {
        let handoff = Handoff::default();
        handoff.open("node-a", LEASE, 10);
        let early = handoff.reserve(1, t(0)).unwrap();
        early.deliver(&[message("acme", 0)]).unwrap();
        let late = handoff.reserve(1, t(10)).unwrap();
        let kept = message("acme", 10);
        late.deliver(std::slice::from_ref(&kept)).unwrap();
        let taken = handoff.take(10, t(31));
        let ids: Vec<&str> = taken.iter().map(|i| i.message.id.as_str()).collect();
        assert_eq!(ids, [kept.id.as_str()]);
        assert_eq!(handoff.head_due(), None);
    }

    #[test]
    fn a_closed_queue_gives_back_what_it_held_and_refuses_deliveries() {
        let handoff = Handoff::default();
        handoff.open("node-a", LEASE, 10);
        let queued = message("acme", 0);
        handoff
            .reserve(1, t(0))
            .unwrap()
            .deliver(std::slice::from_ref(&queued))
            .unwrap();
        let pending = handoff.reserve(1, t(0)).unwrap();
        let left = handoff.close();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].message.id, queued.id);
        let late = message("acme", 0);
        assert_eq!(
            pending.deliver(std::slice::from_ref(&late)),
            Err(vec![late.id.clone()])
        );
        assert!(handoff.take(10, t(0)).is_empty());
    }

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
        registry: crate::dispatch::ChannelRegistry,
        dispatcher: Dispatcher,
    }

    async fn rig(batch: u32) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
        let tenant = store.create_tenant("acme", t(0)).await.unwrap().id;
        let clock = Arc::new(ManualClock::new(t(10)));
        let recorder = Arc::new(Recorder::default());
        let registry = crate::dispatch::ChannelRegistry::default();
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
        // The outbox is empty: the first round's claim finds nothing.
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
}
