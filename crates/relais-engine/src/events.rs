//! Live events of a tenant (a message received or sent, a conversation's state changed…)
//! for the clients of `GET /v1/events/stream`: [`Events::publish`] appends to the store's
//! event log and wakes the tenant's readers; each reader ([`Subscription`]) reads the log
//! after the last event it handed out.
//!
//! Invariant: live delivery and resume are one path. A reader never receives an event
//! from memory, only from the log, after the last number it handed out; a wake-up (or
//! many, coalesced) only tells it to read again, and it reads anyway every
//! [`POLL_EVERY`], which brings the events other nodes of a shared PostgreSQL wrote. As
//! the log numbers a tenant's events without gaps (see `relais_store::events`), a client
//! that reconnects after the last number it received gets everything after it, once and in
//! order, and a gap it meets can only be events pruned by retention, which it is told of
//! ([`Delivery::Reset`]). Each reader reads at its own pace: a client that stops reading
//! holds up no other reader and no publisher.
//!
//! The readers of a tenant on this node share what they read ([`Tail`]): the latest
//! events, as one contiguous run of the log. A reader whose next events are in it takes
//! them from there; otherwise one reader reads the log for all while the others wait for
//! it. Fifty agents woken by one message cost one read of the log, not fifty; what they
//! get is still what the log holds, in order and without gaps.
//!
//! Typing indicators ([`Events::typing`]) are the exception: they are broadcast live to
//! the readers of this node only, never stored, and so never replayed on resume; a reader
//! that falls behind drops some of them.

use jiff::{SignedDuration, Timestamp};
use relais_core::clock::Clock;
use relais_store::{EventStore, NewEvent, StoreError, StreamEvent};
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

pub const MESSAGE_RECEIVED: &str = "message.received";
pub const MESSAGE_SENT: &str = "message.sent";
pub const CONVERSATION_STATE_CHANGED: &str = "conversation.state_changed";
pub const CONVERSATION_ASSIGNED: &str = "conversation.assigned";
pub const SLA_BREACHED: &str = "sla.breached";
pub const TYPING: &str = "typing";

/// How long events are kept for clients to resume from: a week covers an agent's console
/// left closed over a weekend; an older resume point gets [`Delivery::Reset`].
pub const DEFAULT_RETENTION: SignedDuration = SignedDuration::from_hours(7 * 24);

/// How often `relais serve` prunes the log: an hour's events past the retention are one
/// batch of deletes, a few milliseconds of the writer.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How often a reader reads the log without being woken: the latency of events written by
/// another node sharing the PostgreSQL database (one indexed read per reader per second).
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// Events read from the store at once by a reader.
const READ_BATCH: u32 = 500;

/// Typing indicators a reader may be behind by before it drops the oldest.
const TYPING_BUFFER: usize = 64;

/// Events of a tenant kept in its shared [`Tail`]: readers up to this far behind the
/// latest read from memory.
const TAIL_EVENTS: usize = 2048;

/// What a stream event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum EventKind {
    #[serde(rename = "message.received")]
    MessageReceived,
    #[serde(rename = "message.sent")]
    MessageSent,
    #[serde(rename = "conversation.state_changed")]
    ConversationStateChanged,
    #[serde(rename = "conversation.assigned")]
    ConversationAssigned,
    #[serde(rename = "sla.breached")]
    SlaBreached,
    /// Ephemeral: broadcast by [`Events::typing`], never stored.
    #[serde(rename = "typing")]
    Typing,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::MessageReceived,
        EventKind::MessageSent,
        EventKind::ConversationStateChanged,
        EventKind::ConversationAssigned,
        EventKind::SlaBreached,
        EventKind::Typing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::MessageReceived => MESSAGE_RECEIVED,
            EventKind::MessageSent => MESSAGE_SENT,
            EventKind::ConversationStateChanged => CONVERSATION_STATE_CHANGED,
            EventKind::ConversationAssigned => CONVERSATION_ASSIGNED,
            EventKind::SlaBreached => SLA_BREACHED,
            EventKind::Typing => TYPING,
        }
    }

    /// The kind a type name (`message.received`…) names, if any.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typing indicator: someone is writing in a conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Typing {
    pub conversation_id: String,
    /// Who is typing (`{"who": "customer"}`, an agent…), as the publisher says.
    pub data: serde_json::Value,
    pub at: Timestamp,
}

/// Why a reader skipped over part of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetReason {
    /// The events after the client's last one were pruned (older than the retention).
    Pruned,
    /// The client's last event is not in this log (a number above the latest).
    UnknownId,
}

/// The reader skipped events: what the client missed and where the stream goes on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reset {
    pub reason: ResetReason,
    /// The last event the client had (where it asked to resume from, or the last one read).
    pub missed_after: i64,
    /// The stream goes on after this number: the client's new "last event".
    pub resumes_after: i64,
    pub at: Timestamp,
}

/// What a reader hands out next.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// An event of the log, in order.
    Event(StreamEvent),
    /// Events were skipped (pruned, or an unknown resume point); the stream goes on.
    Reset(Reset),
    /// A typing indicator (live only, not in the log).
    Typing(Typing),
}

/// An event for [`Events::publish_all`]: what [`Events::publish_about`] takes.
#[derive(Debug, Clone)]
pub struct Publish {
    pub tenant: String,
    pub kind: EventKind,
    pub conversation_id: Option<String>,
    pub team: Option<String>,
    pub data: serde_json::Value,
    pub key: Option<String>,
}

/// The live events of every tenant of this server: cheap to clone.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

struct Inner {
    /// Cancelled when the server stops: connections close cleanly.
    closing: tokio_util::sync::CancellationToken,
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    poll_every: Duration,
    /// The tenants that have readers on this node; a tenant without any has no entry.
    tenants: Mutex<HashMap<String, TenantReaders>>,
}

struct TenantReaders {
    /// The highest number published on this node: a change wakes the readers.
    latest: watch::Sender<i64>,
    typing: broadcast::Sender<Typing>,
    tail: Arc<Tail>,
}

/// The latest events of a tenant's log that its readers on this node read, shared.
#[derive(Default)]
struct Tail {
    /// A contiguous run of the log (consecutive numbers), oldest first.
    events: Mutex<VecDeque<StreamEvent>>,
    /// Held by the one reader that reads the log for the others.
    reading: tokio::sync::Mutex<()>,
    /// Reads of the log made for the tail so far.
    reads: std::sync::atomic::AtomicU64,
}

impl Tail {
    /// The events after `after` (at most `limit`), if the tail holds the next one; or an
    /// empty answer when the tail already reaches `known` (nothing newer was published on
    /// this node) and `after` is its end. `None`: the log must be read.
    fn serve(&self, after: i64, known: i64, limit: usize) -> Option<Vec<StreamEvent>> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let (first, last) = (events.front()?.seq, events.back()?.seq);
        if after + 1 < first || after > last {
            return None;
        }
        if after == last {
            return (last >= known).then(Vec::new);
        }
        let skip = usize::try_from(after + 1 - first).ok()?;
        Some(events.iter().skip(skip).take(limit).cloned().collect())
    }

    /// Adds what a read of the log after `after` returned.
    fn remember(&self, after: i64, batch: &[StreamEvent]) {
        let Some(first) = batch.first() else {
            return;
        };
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let continues = events.back().is_some_and(|e| e.seq == after) && first.seq == after + 1;
        let overlaps = events
            .back()
            .is_some_and(|e| e.seq >= batch[batch.len() - 1].seq);
        if overlaps {
            return;
        }
        if !continues {
            // Not the continuation of what the tail holds (a reader ahead of it, or a gap
            // made by retention): start the run over from this batch.
            events.clear();
        }
        events.extend(batch.iter().cloned());
        while events.len() > TAIL_EVENTS {
            events.pop_front();
        }
    }
}

impl Events {
    pub fn new(store: Arc<dyn EventStore>, clock: Arc<dyn Clock>) -> Self {
        Events::with_poll(store, clock, POLL_EVERY)
    }

    /// [`Events::new`] with readers polling the log every `poll_every`.
    pub fn with_poll(
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        poll_every: Duration,
    ) -> Self {
        Events {
            inner: Arc::new(Inner {
                closing: tokio_util::sync::CancellationToken::new(),
                store,
                clock,
                poll_every,
                tenants: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Appends an event to the tenant's log, then wakes its readers. Call it once what the
    /// event tells of is stored. [`EventKind::Typing`] is refused (`Invalid`): typing
    /// indicators go through [`Events::typing`].
    pub async fn publish(
        &self,
        tenant: &str,
        kind: EventKind,
        conversation_id: Option<&str>,
        data: serde_json::Value,
    ) -> Result<StreamEvent, StoreError> {
        self.append(tenant, kind, conversation_id, None, data, None)
            .await
    }

    /// [`Events::publish`] (once per `key`, when given: a step that runs again after a
    /// crash gets the event of its first run back and appends nothing) about a
    /// conversation of `team`: agents who are not in the team do not see it (see
    /// [`Subscription::visible_to`]).
    pub async fn publish_about(
        &self,
        tenant: &str,
        kind: EventKind,
        conversation_id: Option<&str>,
        team: Option<&str>,
        data: serde_json::Value,
        key: Option<&str>,
    ) -> Result<StreamEvent, StoreError> {
        self.append(tenant, kind, conversation_id, team, data, key)
            .await
    }

    /// [`Events::publish_about`] for several events (each once per its key), appended
    /// together in their order, then their tenants' readers woken.
    pub async fn publish_all(&self, events: Vec<Publish>) -> Result<Vec<StreamEvent>, StoreError> {
        if events.iter().any(|e| e.kind == EventKind::Typing) {
            return Err(StoreError::Invalid(
                "typing indicators are not stored: use Events::typing".into(),
            ));
        }
        let at = self.inner.clock.now();
        let new: Vec<NewEvent> = events
            .into_iter()
            .map(|e| NewEvent {
                tenant_id: e.tenant,
                kind: e.kind.as_str().to_owned(),
                conversation_id: e.conversation_id,
                team: e.team,
                data: e.data,
                key: e.key,
                at,
            })
            .collect();
        let appended = self.inner.store.append_events(&new).await?;
        for event in &appended {
            self.wake(&event.tenant_id, event.seq);
        }
        Ok(appended)
    }

    async fn append(
        &self,
        tenant: &str,
        kind: EventKind,
        conversation_id: Option<&str>,
        team: Option<&str>,
        data: serde_json::Value,
        key: Option<&str>,
    ) -> Result<StreamEvent, StoreError> {
        if kind == EventKind::Typing {
            return Err(StoreError::Invalid(
                "typing indicators are not stored: use Events::typing".into(),
            ));
        }
        let event = self
            .inner
            .store
            .append_event(&NewEvent {
                tenant_id: tenant.to_owned(),
                kind: kind.as_str().to_owned(),
                conversation_id: conversation_id.map(str::to_owned),
                team: team.map(str::to_owned),
                data,
                key: key.map(str::to_owned),
                at: self.inner.clock.now(),
            })
            .await?;
        self.wake(tenant, event.seq);
        Ok(event)
    }

    fn wake(&self, tenant: &str, seq: i64) {
        let tenants = self.inner.tenants.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(readers) = tenants.get(tenant) {
            readers.latest.send_if_modified(|latest| {
                let newer = seq > *latest;
                if newer {
                    *latest = seq;
                }
                newer
            });
        }
    }

    /// Tells every reader the server is stopping ([`Subscription::closing`] resolves), so
    /// that its client is told to reconnect rather than cut off.
    pub fn shut_down(&self) {
        self.inner.closing.cancel();
    }

    /// Tells the tenant's readers on this node that someone is typing in a conversation.
    /// Not stored: a client that is not connected at that moment never sees it. `data`
    /// carries the conversation's `team` and `assignee_id`, so that an agent's stream
    /// knows whether they may see it.
    pub fn typing(&self, tenant: &str, conversation_id: &str, data: serde_json::Value) {
        let tenants = self.inner.tenants.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(readers) = tenants.get(tenant) {
            // No reader is no error: the indicator is for whoever is watching now.
            let _ = readers.typing.send(Typing {
                conversation_id: conversation_id.to_owned(),
                data,
                at: self.inner.clock.now(),
            });
        }
    }

    /// A reader of the tenant's events after `after` (a number the client received), or
    /// after the latest one when `None` (from now on). A resume point older than the
    /// retention, or above the latest number, starts with a [`Delivery::Reset`].
    pub async fn subscribe(
        &self,
        tenant: &str,
        after: Option<i64>,
    ) -> Result<Subscription, StoreError> {
        // Registered before the log is read: an event published meanwhile wakes it.
        let (latest_rx, typing_rx, tail) = {
            let mut tenants = self.inner.tenants.lock().unwrap_or_else(|p| p.into_inner());
            let readers = tenants
                .entry(tenant.to_owned())
                .or_insert_with(|| TenantReaders {
                    latest: watch::channel(0).0,
                    typing: broadcast::channel(TYPING_BUFFER).0,
                    tail: Arc::new(Tail::default()),
                });
            (
                readers.latest.subscribe(),
                readers.typing.subscribe(),
                readers.tail.clone(),
            )
        };
        let mut poll = tokio::time::interval(self.inner.poll_every);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut subscription = Subscription {
            events: self.clone(),
            tenant: tenant.to_owned(),
            after: 0,
            pending: VecDeque::new(),
            stale: true,
            latest: latest_rx,
            typing: typing_rx,
            tail,
            polling: true,
            typing_open: true,
            only: None,
            viewer: None,
            visible_conversations: HashSet::new(),
            poll,
        };
        let store = &*self.inner.store;
        let latest = store.latest_event_seq(tenant).await?;
        subscription.after = match after {
            None => latest,
            Some(asked) if asked > latest => {
                subscription.reset(ResetReason::UnknownId, asked, latest);
                latest
            }
            Some(asked) => {
                // Everything after it gone; a partial loss shows as a gap when read.
                let all_pruned =
                    asked < latest && store.events_after(tenant, asked, 1).await?.is_empty();
                if all_pruned {
                    subscription.reset(ResetReason::Pruned, asked, latest);
                    latest
                } else {
                    asked
                }
            }
        };
        Ok(subscription)
    }

    /// Deletes the events older than `retention`; how many.
    pub async fn prune_once(&self, retention: SignedDuration) -> Result<u64, StoreError> {
        let before = self.inner.clock.now() - retention;
        self.inner.store.prune_events(before).await
    }

    /// [`Events::prune_once`] at once, then every `every`, for as long as the task runs.
    pub async fn prune_forever(self, retention: SignedDuration, every: Duration) {
        loop {
            match self.prune_once(retention).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "stream events past their retention pruned"),
                Err(e) => tracing::warn!(error = %e, "cannot prune the stream events"),
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// One client's reader of a tenant's events; see the module doc.
pub struct Subscription {
    events: Events,
    tenant: String,
    /// The last number read from the log (handed out, or waiting in `pending`).
    after: i64,
    pending: VecDeque<Delivery>,
    /// Whether the log may hold events after `after`.
    stale: bool,
    latest: watch::Receiver<i64>,
    typing: broadcast::Receiver<Typing>,
    tail: Arc<Tail>,
    /// The next read is a poll (or the first): it must look at the log itself.
    polling: bool,
    typing_open: bool,
    only: Option<HashSet<EventKind>>,
    /// An agent who sees only some conversations, and the conversations this subscription
    /// has seen events of that they may see (typing indicators follow them).
    viewer: Option<Viewer>,
    visible_conversations: HashSet<String>,
    poll: tokio::time::Interval,
}

/// An agent restricted to some conversations: those of no team, of their teams, and
/// those assigned to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub agent_id: String,
    pub teams: Vec<String>,
}

impl Viewer {
    fn may_see(&self, event: &StreamEvent) -> bool {
        event.team.as_ref().is_none_or(|t| self.teams.contains(t))
            || event.data.get("assignee_id").and_then(|a| a.as_str()) == Some(&self.agent_id)
    }
}

impl Subscription {
    /// Hands out only events of these kinds (events of other kinds are read and skipped).
    pub fn only(mut self, kinds: impl IntoIterator<Item = EventKind>) -> Self {
        self.only = Some(kinds.into_iter().collect());
        self
    }

    /// Hands out only what `viewer` may see.
    pub fn visible_to(mut self, viewer: Viewer) -> Self {
        self.viewer = Some(viewer);
        self
    }

    /// The last number read from the log.
    pub fn after(&self) -> i64 {
        self.after
    }

    /// Resolves once the server is stopping ([`Events::shut_down`]); owns what it needs,
    /// so that it can be awaited beside [`Subscription::next`].
    pub fn closing(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.events.inner.closing.clone().cancelled_owned()
    }

    /// The next thing to hand the client: waits for it. Cancel-safe: dropped while
    /// waiting, nothing is lost (what was read stays buffered in the subscription). An
    /// error leaves the subscription as it was; calling again reads again.
    pub async fn next(&mut self) -> Result<Delivery, StoreError> {
        loop {
            if let Some(delivery) = self.pending.pop_front() {
                return Ok(delivery);
            }
            if self.stale {
                self.read().await?;
                continue;
            }
            let wants_typing = self.typing_open && self.wants(Some(EventKind::Typing));
            tokio::select! {
                changed = self.latest.changed() => {
                    // The sender lives as long as this subscription's tenant entry.
                    if changed.is_ok() && *self.latest.borrow_and_update() > self.after {
                        self.stale = true;
                    }
                }
                typing = self.typing.recv(), if wants_typing => match typing {
                    Ok(typing) if self.may_see_typing(&typing) => {
                        return Ok(Delivery::Typing(typing));
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => self.typing_open = false,
                },
                _ = self.poll.tick() => {
                    self.stale = true;
                    self.polling = true;
                }
            }
        }
    }

    /// The next events of the log after `after`: from the tenant's shared tail when it
    /// holds them, otherwise read from the log (by one reader for all who wait).
    async fn next_batch(&self) -> Result<Vec<StreamEvent>, StoreError> {
        let (after, limit) = (self.after, READ_BATCH as usize);
        let known = *self.latest.borrow();
        // A poll is for what other nodes wrote, which this node's tail cannot know of:
        // at the tail's end it reads the log (or takes a read another reader just made).
        let served = match self.polling {
            false => self.tail.serve(after, known, limit),
            true => self.tail.serve(after, i64::MAX, limit),
        };
        if let Some(batch) = served {
            return Ok(batch);
        }
        let reads_before = self.tail.reads.load(std::sync::atomic::Ordering::Acquire);
        let _reading = self.tail.reading.lock().await;
        // Another reader read the log while this one waited: what it read may be enough.
        if self.tail.reads.load(std::sync::atomic::Ordering::Acquire) != reads_before
            && let Some(batch) = self.tail.serve(after, known, limit)
        {
            return Ok(batch);
        }
        let store = &self.events.inner.store;
        let batch = store.events_after(&self.tenant, after, READ_BATCH).await?;
        self.tail.remember(after, &batch);
        self.tail
            .reads
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(batch)
    }

    /// Whether this subscription's viewer may see the conversation a typing indicator is
    /// about: known from the events it handed out, else told by the indicator's own `team`
    /// and `assignee_id` (an agent who opened a conversation from the list, before any
    /// event of it reached this stream, still sees the customer typing).
    fn may_see_typing(&mut self, typing: &Typing) -> bool {
        let Some(viewer) = &self.viewer else {
            return true;
        };
        if self.visible_conversations.contains(&typing.conversation_id) {
            return true;
        }
        let team = typing.data.get("team").and_then(|t| t.as_str());
        let assignee = typing.data.get("assignee_id").and_then(|a| a.as_str());
        let visible = team.is_none_or(|t| viewer.teams.iter().any(|own| own == t))
            || assignee == Some(viewer.agent_id.as_str());
        note_visibility(
            &mut self.visible_conversations,
            &typing.conversation_id,
            visible,
        );
        visible
    }

    /// Reads the next batch of the log into `pending`.
    async fn read(&mut self) -> Result<(), StoreError> {
        let batch = self.next_batch().await?;
        self.polling = false;
        // Nothing above changed `self`: a read dropped midway leaves it as it was.
        self.stale = batch.len() == READ_BATCH as usize;
        for event in batch {
            if event.seq != self.after + 1 {
                // The log has no gaps but those retention made.
                self.reset(ResetReason::Pruned, self.after, event.seq - 1);
            }
            self.after = event.seq;
            if let Some(viewer) = &self.viewer {
                let visible = viewer.may_see(&event);
                if let Some(conversation) = &event.conversation_id {
                    note_visibility(&mut self.visible_conversations, conversation, visible);
                }
                if !visible {
                    continue;
                }
            }
            if self.wants(EventKind::parse(&event.kind)) {
                self.pending.push_back(Delivery::Event(event));
            }
        }
        Ok(())
    }

    fn reset(&mut self, reason: ResetReason, missed_after: i64, resumes_after: i64) {
        self.pending.push_back(Delivery::Reset(Reset {
            reason,
            missed_after,
            resumes_after,
            at: self.events.inner.clock.now(),
        }));
    }

    /// Whether the client wants events of this kind; an unknown kind (written by a newer
    /// node) only when it filters nothing.
    fn wants(&self, kind: Option<EventKind>) -> bool {
        match (&self.only, kind) {
            (None, _) => true,
            (Some(only), Some(kind)) => only.contains(&kind),
            (Some(_), None) => false,
        }
    }
}

/// Conversations an agent's subscription remembers seeing, for their typing indicators.
const VISIBLE_REMEMBERED: usize = 4096;

/// Remembers whether the agent may see `conversation`. The set is bounded: when full it
/// starts over, and a conversation forgotten that way gets its typing indicators again
/// from its next event on.
fn note_visibility(seen: &mut HashSet<String>, conversation: &str, visible: bool) {
    if !visible {
        seen.remove(conversation);
        return;
    }
    if seen.len() >= VISIBLE_REMEMBERED && !seen.contains(conversation) {
        seen.clear();
    }
    seen.insert(conversation.to_owned());
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut tenants = self
            .events
            .inner
            .tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // This subscription's own receivers are still counted.
        if tenants
            .get(&self.tenant)
            .is_some_and(|readers| readers.latest.receiver_count() <= 1)
        {
            tenants.remove(&self.tenant);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relais_core::clock::ManualClock;
    use relais_store::{SqliteStore, Store};

    const WAIT: Duration = Duration::from_secs(10);

    struct World {
        store: Arc<dyn Store>,
        clock: Arc<ManualClock>,
        events: Events,
        _dir: tempfile::TempDir,
    }

    async fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
        let clock = Arc::new(ManualClock::new("2026-11-21T10:00:00Z".parse().unwrap()));
        let events = Events::new(store.clone(), clock.clone());
        World {
            store,
            clock,
            events,
            _dir: dir,
        }
    }

    async fn next(subscription: &mut Subscription) -> Delivery {
        tokio::time::timeout(WAIT, subscription.next())
            .await
            .expect("a delivery in time")
            .unwrap()
    }

    fn seq(delivery: &Delivery) -> i64 {
        match delivery {
            Delivery::Event(event) => event.seq,
            other => panic!("not an event: {other:?}"),
        }
    }

    async fn publish(events: &Events, tenant: &str, n: i64) -> StreamEvent {
        events
            .publish(
                tenant,
                EventKind::MessageReceived,
                Some("conv-1"),
                serde_json::json!({ "n": n }),
            )
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_reader_from_now_gets_what_is_published_after_it_in_order() {
        let w = world().await;
        publish(&w.events, "acme", 1).await;
        let mut reader = w.events.subscribe("acme", None).await.unwrap();
        assert_eq!(reader.after(), 1, "it starts at the present");
        for n in 2..=4 {
            publish(&w.events, "acme", n).await;
        }
        for n in 2..=4 {
            assert_eq!(seq(&next(&mut reader).await), n);
        }
    }

    #[tokio::test]
    async fn a_reader_resuming_after_an_event_gets_exactly_what_followed_it() {
        let w = world().await;
        for n in 1..=5 {
            publish(&w.events, "acme", n).await;
        }
        let mut reader = w.events.subscribe("acme", Some(2)).await.unwrap();
        let got = [
            next(&mut reader).await,
            next(&mut reader).await,
            next(&mut reader).await,
        ];
        assert_eq!(got.iter().map(seq).collect::<Vec<_>>(), [3, 4, 5]);
        publish(&w.events, "acme", 6).await;
        assert_eq!(seq(&next(&mut reader).await), 6, "nothing repeated");
    }

    #[tokio::test]
    async fn a_keyed_event_published_twice_is_delivered_once() {
        let w = world().await;
        let mut reader = w.events.subscribe("acme", None).await.unwrap();
        for _ in 0..2 {
            w.events
                .publish_about(
                    "acme",
                    EventKind::MessageReceived,
                    None,
                    None,
                    serde_json::json!({}),
                    Some("in_m1"),
                )
                .await
                .unwrap();
        }
        publish(&w.events, "acme", 2).await;
        assert_eq!(seq(&next(&mut reader).await), 1);
        assert_eq!(seq(&next(&mut reader).await), 2);
    }

    #[test]
    fn an_agent_reader_remembers_a_bounded_number_of_conversations() {
        let mut seen = HashSet::new();
        for n in 0..VISIBLE_REMEMBERED * 3 {
            note_visibility(&mut seen, &format!("conv-{n}"), true);
            assert!(seen.len() <= VISIBLE_REMEMBERED);
        }
        let latest = format!("conv-{}", VISIBLE_REMEMBERED * 3 - 1);
        assert!(seen.contains(&latest), "the latest is always remembered");
        note_visibility(&mut seen, &latest, false);
        assert!(!seen.contains(&latest), "moved out of the agent's sight");
    }

    #[tokio::test]
    async fn readers_woken_together_share_one_read_of_the_log() {
        use std::sync::atomic::Ordering::Relaxed;
        let w = world().await;
        let mut readers = Vec::new();
        for _ in 0..20 {
            readers.push(w.events.subscribe("acme", None).await.unwrap());
        }
        let tail = readers[0].tail.clone();
        for n in 1..=30 {
            publish(&w.events, "acme", n).await;
            for reader in &mut readers {
                assert_eq!(seq(&next(reader).await), n, "every reader, in order");
            }
        }
        // Each reader reading for itself would be 20 × 30 reads and more.
        let reads = tail.reads.load(Relaxed);
        assert!(
            reads <= 40,
            "{reads} reads of the log for 20 readers of 30 events"
        );
        // A reader resuming from further back than the shared tail reads the log itself
        // and misses nothing.
        let mut late = w.events.subscribe("acme", Some(0)).await.unwrap();
        for n in 1..=30 {
            assert_eq!(seq(&next(&mut late).await), n);
        }
        publish(&w.events, "acme", 31).await;
        assert_eq!(seq(&next(&mut late).await), 31);
        assert_eq!(seq(&next(&mut readers[7]).await), 31);
    }

    #[tokio::test]
    async fn events_written_by_another_node_arrive_by_polling() {
        let w = world().await;
        let other_node = Events::new(w.store.clone(), w.clock.clone());
        let here = Events::with_poll(w.store.clone(), w.clock.clone(), Duration::from_millis(50));
        let mut reader = here.subscribe("acme", None).await.unwrap();
        let mut second = here.subscribe("acme", None).await.unwrap();
        publish(&other_node, "acme", 1).await;
        assert_eq!(seq(&next(&mut reader).await), 1);
        assert_eq!(seq(&next(&mut second).await), 1);
        // Once this node's readers have read the log to its end, a poll still looks for
        // what the other node writes next.
        publish(&other_node, "acme", 2).await;
        assert_eq!(seq(&next(&mut second).await), 2);
        assert_eq!(seq(&next(&mut reader).await), 2);
    }

    #[tokio::test]
    async fn a_resume_point_older_than_the_retention_starts_with_a_reset() {
        let w = world().await;
        for n in 1..=3 {
            publish(&w.events, "acme", n).await;
        }
        w.clock.advance(SignedDuration::from_hours(8 * 24));
        publish(&w.events, "acme", 4).await;
        assert_eq!(w.events.prune_once(DEFAULT_RETENTION).await.unwrap(), 3);
        let mut reader = w.events.subscribe("acme", Some(1)).await.unwrap();
        match next(&mut reader).await {
            Delivery::Reset(reset) => {
                assert_eq!(reset.reason, ResetReason::Pruned);
                assert_eq!((reset.missed_after, reset.resumes_after), (1, 3));
            }
            other => panic!("expected a reset, got {other:?}"),
        }
        assert_eq!(seq(&next(&mut reader).await), 4);

        // All of it pruned: the reset says so, and the stream goes on from the latest.
        w.clock.advance(SignedDuration::from_hours(8 * 24));
        w.events.prune_once(DEFAULT_RETENTION).await.unwrap();
        let mut reader = w.events.subscribe("acme", Some(2)).await.unwrap();
        assert!(matches!(
            next(&mut reader).await,
            Delivery::Reset(Reset {
                resumes_after: 4,
                ..
            })
        ));
        publish(&w.events, "acme", 5).await;
        assert_eq!(seq(&next(&mut reader).await), 5);
    }

    #[tokio::test]
    async fn a_resume_point_above_the_latest_event_starts_with_a_reset() {
        let w = world().await;
        publish(&w.events, "acme", 1).await;
        let mut reader = w.events.subscribe("acme", Some(99)).await.unwrap();
        assert!(matches!(
            next(&mut reader).await,
            Delivery::Reset(Reset {
                reason: ResetReason::UnknownId,
                resumes_after: 1,
                ..
            })
        ));
        publish(&w.events, "acme", 2).await;
        assert_eq!(seq(&next(&mut reader).await), 2);
    }

    #[tokio::test]
    async fn typing_reaches_live_readers_of_its_tenant_only_and_is_not_stored() {
        let w = world().await;
        let mut acme = w.events.subscribe("acme", None).await.unwrap();
        let mut globex = w.events.subscribe("globex", None).await.unwrap();
        w.events
            .typing("acme", "conv-1", serde_json::json!({"who": "customer"}));
        match next(&mut acme).await {
            Delivery::Typing(typing) => assert_eq!(typing.conversation_id, "conv-1"),
            other => panic!("expected typing, got {other:?}"),
        }
        publish(&w.events, "globex", 1).await;
        assert_eq!(
            seq(&next(&mut globex).await),
            1,
            "acme's typing is not globex's"
        );
        assert_eq!(w.store.latest_event_seq("acme").await.unwrap(), 0);
        assert!(
            w.events
                .publish("acme", EventKind::Typing, None, serde_json::json!({}))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn an_agent_sees_typing_in_their_teams_conversations_before_any_event_of_them() {
        let w = world().await;
        let mut ana = w
            .events
            .subscribe("acme", None)
            .await
            .unwrap()
            .visible_to(Viewer {
                agent_id: "ana".into(),
                teams: vec!["support".into()],
            });
        w.events.typing(
            "acme",
            "billing-conv",
            serde_json::json!({"who": "customer", "team": "billing", "assignee_id": null}),
        );
        w.events.typing(
            "acme",
            "support-conv",
            serde_json::json!({"who": "customer", "team": "support", "assignee_id": null}),
        );
        match next(&mut ana).await {
            Delivery::Typing(typing) => assert_eq!(
                typing.conversation_id, "support-conv",
                "another team's conversation is not shown"
            ),
            other => panic!("expected typing, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_filtered_reader_skips_other_kinds() {
        let w = world().await;
        let mut reader = w
            .events
            .subscribe("acme", None)
            .await
            .unwrap()
            .only([EventKind::ConversationStateChanged]);
        publish(&w.events, "acme", 1).await;
        w.events
            .publish(
                "acme",
                EventKind::ConversationStateChanged,
                Some("conv-1"),
                serde_json::json!({"state": "resolved"}),
            )
            .await
            .unwrap();
        assert_eq!(seq(&next(&mut reader).await), 2);
    }

    #[tokio::test]
    async fn a_tenant_without_readers_is_forgotten() {
        let w = world().await;
        let reader = w.events.subscribe("acme", None).await.unwrap();
        let second = w.events.subscribe("acme", None).await.unwrap();
        drop(reader);
        assert!(w.events.inner.tenants.lock().unwrap().contains_key("acme"));
        drop(second);
        assert!(w.events.inner.tenants.lock().unwrap().is_empty());
    }
}
