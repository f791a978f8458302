//! Messages handed from the accept path straight to the running dispatcher.
//!
//! A message due now is stored with its outbox row already leased to the dispatcher, and the
//! accept path gives the dispatcher the message it just built: the dispatcher neither claims
//! the row nor reads the message back. The row is in the store all along, so nothing is lost
//! if the process stops: the lease runs out and the message is claimed like any other.
//!
//! The queue is bounded, in room and in time: when it is full, or when its oldest message
//! has waited a quarter of its lease (the dispatcher is slower than the accepts), messages
//! are stored unleased and reach the dispatcher through its claims. Lanes the dispatcher
//! closed (a channel with no live connection) get no hand-offs: their messages wait in the
//! outbox. Each lane's hand-offs are kept apart, so the dispatcher can claim what was due in
//! the outbox before a lane's oldest hand-off first.

use jiff::{SignedDuration, Timestamp};
use relais_store::{Lease, NewMessage, OutboxItem};
use std::collections::{BTreeSet, HashMap, VecDeque};
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
    /// Hand-offs by lane, oldest first.
    queued: HashMap<String, VecDeque<OutboxItem>>,
    /// Hand-offs queued in all lanes, and the room reserved by accepts whose messages are
    /// not stored yet.
    count: usize,
    reserved: usize,
    /// Lanes that take no hand-offs now.
    closed: BTreeSet<String>,
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
            count: queued_count,
            reserved,
            closed,
        } = &mut *state;
        let taker = taker.as_ref()?;
        if *queued_count + *reserved + count > taker.capacity {
            return None;
        }
        let fresh = taker.lease_for * 3 / 4;
        if queued
            .values()
            .filter_map(VecDeque::front)
            .any(|head| head.lease_until.duration_since(now) < fresh)
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
                closed: closed.iter().cloned().collect(),
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

    /// Opens or closes one lane to hand-offs (a channel whose connection came or went).
    pub(crate) fn set_lane_open(&self, lane: &str, open: bool) {
        let mut state = self.lock();
        if open {
            state.closed.remove(lane);
        } else if !state.closed.contains(lane) {
            state.closed.insert(lane.to_owned());
        }
    }

    /// Stops taking hand-offs; what was queued and not taken, whose leases the caller
    /// gives up.
    pub(crate) fn close(&self) -> Vec<OutboxItem> {
        let mut state = self.lock();
        state.taker = None;
        state.count = 0;
        state.queued.drain().flat_map(|(_, q)| q).collect()
    }

    /// Up to `max` of `lane`'s queued messages, oldest first.
    pub(crate) fn take(&self, lane: &str, max: usize) -> Vec<OutboxItem> {
        let mut state = self.lock();
        let Some(queue) = state.queued.get_mut(lane) else {
            return Vec::new();
        };
        let n = max.min(queue.len());
        let taken: Vec<OutboxItem> = queue.drain(..n).collect();
        if queue.is_empty() {
            state.queued.remove(lane);
        }
        state.count = state.count.saturating_sub(taken.len());
        taken
    }

    /// When `lane`'s oldest queued message was due: what is due before it in the store
    /// goes first.
    pub(crate) fn head_due(&self, lane: &str) -> Option<Timestamp> {
        self.lock()
            .queued
            .get(lane)
            .and_then(VecDeque::front)
            .map(|item| item.due_at)
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
        state.count += items.len();
        for item in items {
            state
                .queued
                .entry(item.lane().to_owned())
                .or_default()
                .push_back(item);
        }
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

    fn t(secs: i64) -> Timestamp {
        let start: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        start.checked_add(SignedDuration::from_secs(secs)).unwrap()
    }

    fn message(tenant: &str, channel: &str, due: i64) -> NewMessage {
        relais_store::conformance::queued_message(tenant, channel, "+33612345678", t(due))
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
        first.deliver(&[message("acme", "sim", 0)]).unwrap();
        assert_eq!(handoff.head_due("sim"), Some(t(0)));
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
    fn a_closed_lane_gets_no_hand_offs_and_the_others_still_do() {
        let handoff = Handoff::default();
        handoff.open("node-a", LEASE, 10);
        handoff.set_lane_open("chan-down", false);
        let reservation = handoff.reserve(2, t(0)).unwrap();
        assert_eq!(reservation.lease().closed, ["chan-down"]);
        let down = message("acme", "chan-down", 0);
        let up = message("acme", "sim", 0);
        reservation.deliver(&[down.clone(), up.clone()]).unwrap();
        assert!(handoff.take("chan-down", 10).is_empty());
        let taken = handoff.take("sim", 10);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].message.id, up.id);
        handoff.set_lane_open("chan-down", true);
        assert!(handoff.reserve(1, t(0)).unwrap().lease().closed.is_empty());
    }

    #[test]
    fn a_closed_queue_gives_back_what_it_held_and_refuses_deliveries() {
        let handoff = Handoff::default();
        handoff.open("node-a", LEASE, 10);
        let queued = message("acme", "sim", 0);
        handoff
            .reserve(1, t(0))
            .unwrap()
            .deliver(std::slice::from_ref(&queued))
            .unwrap();
        let pending = handoff.reserve(1, t(0)).unwrap();
        let left = handoff.close();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].message.id, queued.id);
        let late = message("acme", "sim", 0);
        assert_eq!(
            pending.deliver(std::slice::from_ref(&late)),
            Err(vec![late.id.clone()])
        );
        assert!(handoff.take("sim", 10).is_empty());
    }
}
