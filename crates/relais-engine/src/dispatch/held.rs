//! The leases this dispatcher holds on the work in its hands (claimed, queued in a lane,
//! being sent, waiting to be written), by message id. A heartbeat extends them; a lane
//! sends a message only while its lease has time left, so a message is never sent under a
//! lease that another node may be taking over.

use jiff::{SignedDuration, Timestamp};
use relais_store::OutboxItem;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

#[derive(Default)]
pub(super) struct Held {
    leases: Mutex<HashMap<String, Timestamp>>,
    /// Messages in hand that a claim took again (see [`Held::hold`]); locked after
    /// `leases`.
    reclaimed: Mutex<HashSet<String>>,
}

impl Held {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Timestamp>> {
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds the leases of claimed `items` and returns those that were not in hand yet.
    /// A claim takes any row whose lease ran out, and the lease of a message this
    /// dispatcher still has in hand (queued in a lane, being sent, its outcome not written
    /// yet) can run out when the heartbeat comes late (a busy store, a starved process):
    /// the claim then renewed that lease for us, and the message must not go to a lane a
    /// second time, or it is sent again while (or after) the provider acknowledges it.
    /// The row stays leased to us by that claim: see [`Held::release_settled`].
    pub(super) fn hold(&self, items: Vec<OutboxItem>) -> Vec<OutboxItem> {
        let mut leases = self.lock();
        items
            .into_iter()
            .filter(|item| {
                match leases.insert(item.message.id.clone(), item.lease_until) {
                    None => true,
                    Some(before) => {
                        self.reclaimed
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(item.message.id.clone());
                        tracing::warn!(message = %item.message.id, lease_was = %before, "claimed again while in hand (its lease ran out before the heartbeat extended it); not sent twice");
                        false
                    }
                }
            })
            .collect()
    }

    pub(super) fn release<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let _ = self.release_settled(ids);
    }

    /// Releases `ids` once their outcomes are written, and returns those a claim took again
    /// while they were in hand. That claim leased their rows to us, and it may even have
    /// come after the outcome was written (a retry or a fallback step due at once) and
    /// before this release: nobody works on those rows now, so the caller gives their
    /// leases back, or their next step would wait for the lease to run out.
    pub(super) fn release_settled<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Vec<String> {
        let mut leases = self.lock();
        let mut reclaimed = self.reclaimed.lock().unwrap_or_else(|p| p.into_inner());
        let mut orphans = Vec::new();
        for id in ids {
            leases.remove(id);
            if reclaimed.remove(id) {
                orphans.push(id.to_owned());
            }
        }
        orphans
    }

    /// The ids held, for the heartbeat.
    pub(super) fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Records a heartbeat: the leases of `kept` run until `until`; those of `asked` that
    /// were not kept are lost (another node took them, or they ran out and were taken):
    /// they must not be sent.
    pub(super) fn extended(&self, asked: &[String], kept: &[String], until: Timestamp) {
        let mut leases = self.lock();
        for id in asked {
            if let Some(lease) = leases.get_mut(id) {
                *lease = Timestamp::MIN;
            }
        }
        for id in kept {
            if let Some(lease) = leases.get_mut(id) {
                *lease = until;
            }
        }
    }

    /// Whether the lease on `id` still has `margin` left at `now`.
    pub(super) fn valid(&self, id: &str, now: Timestamp, margin: SignedDuration) -> bool {
        self.lock()
            .get(id)
            .is_some_and(|until| until.duration_since(now) >= margin)
    }
}
