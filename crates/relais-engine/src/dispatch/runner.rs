//! The dispatcher running in the background: a claimer that feeds each channel's lane,
//! the lanes, the writer of outcomes, a lease heartbeat and the webhook deliveries.
//!
//! Shutdown is bounded: the claimer stops at once and gives back the hand-offs it had not
//! taken; each lane starts nothing new and waits at most `shutdown_grace` for the answers
//! of what it sent; what was queued and not sent is given back to the outbox at once; the
//! writer gets [`SETTLE_GRACE`] to write the outcomes. Altogether at most
//! `shutdown_grace` + [`SETTLE_GRACE`] (15 s by default).

use super::decide::Triage;
use super::lane::{self, Lane};
use super::settler::{self, SettleQueue, Settled};
use super::{ChannelRegistry, Dispatcher, DispatcherConfig, RoundReport};
use relais_core::clock::Clock;
use relais_store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a stopping dispatcher waits for the answers of the sends in flight.
pub(super) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long a stopping dispatcher's writer gets to write the last outcomes.
pub const SETTLE_GRACE: Duration = Duration::from_secs(5);

/// How often the work of channels without a lane is looked for.
const STRAYS_EVERY: Duration = Duration::from_secs(1);

/// How often a lane's outbox (and the fallback timers) is looked at while nothing says
/// more is waiting there: hand-offs bring the new messages; the outbox holds retries,
/// scheduled messages and what overflowed the hand-offs. Each look is a write on the
/// store's one writer; a pass per accepted group made three of them.
const OUTBOX_EVERY: Duration = Duration::from_millis(100);

/// The hand-off queue holds this many batches.
const HANDOFF_BATCHES: usize = 16;

/// The webhook deliveries are looked at this often at most while outcomes are written.
const WEBHOOKS_EVERY: Duration = Duration::from_millis(50);

pub struct DispatcherHandle {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl DispatcherHandle {
    /// Stops (see the module's doc for the bound) and waits for it.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "dispatcher task ended badly");
        }
    }
}

/// What a claim pass looks at besides the hand-offs.
#[derive(Clone, Copy)]
struct Pass {
    /// The lanes' outbox and the fallback timers.
    outbox: bool,
    /// The work of channels without a lane.
    strays: bool,
}

struct RunningLane {
    lane: Arc<Lane>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Dispatcher {
    /// Runs until shut down.
    pub fn spawn(self: Arc<Self>) -> DispatcherHandle {
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        // Room for a few batches: enough to keep lanes full, few enough to be sent long
        // before their leases run out.
        self.registry.handoff().open(
            &self.config.lease_owner,
            self.config.lease_for,
            usize::try_from(self.config.batch)
                .unwrap_or(usize::MAX)
                .saturating_mul(HANDOFF_BATCHES),
        );
        let task = tokio::spawn(self.run(token));
        DispatcherHandle { shutdown, task }
    }

    async fn run(self: Arc<Self>, stop: CancellationToken) {
        let (settle, rx) = SettleQueue::new();
        let writer = tokio::spawn(settler::run(self.clone(), rx));
        let heartbeat = tokio::spawn(self.clone().heartbeat(stop.clone()));
        let webhooks = tokio::spawn(self.clone().deliver_webhooks(stop.clone()));
        let mut lanes: HashMap<String, RunningLane> = HashMap::new();
        let mut strays_at: Option<tokio::time::Instant> = None;
        let mut outbox_at: Option<tokio::time::Instant> = None;
        let mut failing = false;
        while !stop.is_cancelled() {
            let strays = strays_at.is_none_or(|at| at.elapsed() >= STRAYS_EVERY);
            if strays {
                strays_at = Some(tokio::time::Instant::now());
            }
            let outbox = outbox_at.is_none_or(|at| at.elapsed() >= OUTBOX_EVERY);
            if outbox {
                outbox_at = Some(tokio::time::Instant::now());
            }
            let pass = Pass { outbox, strays };
            let found = match self.claim_pass(&mut lanes, &settle, &stop, pass).await {
                Ok(found) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("the dispatcher claims work again");
                    }
                    found
                }
                Err(e) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::error!(error = %e, "the dispatcher cannot claim work; trying again");
                    }
                    false
                }
            };
            if found {
                tokio::task::yield_now().await;
                continue;
            }
            let rest = if failing {
                self.config.idle.max(Duration::from_secs(1))
            } else {
                self.config.idle.min(OUTBOX_EVERY)
            };
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(rest) => {}
                _ = self.registry.handoff().pushed() => {}
                _ = self.registry.changed() => {}
                _ = self.room.notified() => {}
            }
        }
        // Hand-offs not taken and messages queued in lanes go back to the outbox at once;
        // the lanes wait (bounded) for the answers of what they sent.
        let mut give_back: Vec<String> = self
            .registry
            .handoff()
            .close()
            .into_iter()
            .map(|item| item.message.id)
            .collect();
        for (_, running) in lanes {
            match running.task.await {
                Ok(left) => give_back.extend(left),
                Err(e) => {
                    tracing::error!(lane = %running.lane.key, error = %e, "a lane ended badly")
                }
            }
        }
        drop(settle);
        if tokio::time::timeout(SETTLE_GRACE, writer).await.is_err() {
            tracing::error!(
                "stopping before the last outcomes were written; their messages are sent again when their leases run out"
            );
        }
        heartbeat.abort();
        webhooks.abort();
        self.held.release(give_back.iter().map(String::as_str));
        if let Err(e) = self
            .store
            .release_leases(&self.config.lease_owner, &give_back)
            .await
        {
            tracing::error!(error = %e, count = give_back.len(), "cannot give the unsent messages back; they are claimed when their leases run out");
        }
    }

    /// Takes the hand-offs of every ready lane with room, and claims from the outbox
    /// what `pass` says (a lane whose last claim was full is claimed for again at once);
    /// whether it found anything.
    async fn claim_pass(
        self: &Arc<Self>,
        lanes: &mut HashMap<String, RunningLane>,
        settle: &SettleQueue,
        stop: &CancellationToken,
        pass: Pass,
    ) -> Result<bool, super::DispatchError> {
        let now = self.clock.now();
        let receipts = self.due_receipts(now).await;
        self.registry.receipts().push(receipts, None);
        let batch = usize::try_from(self.config.batch).unwrap_or(usize::MAX);
        let mut found = false;
        for key in self.lane_keys() {
            let lane = self.lane(lanes, &key, settle, stop);
            let ready = self.lane_ready(&key);
            self.registry.handoff().set_lane_open(&key, ready);
            if !ready && !self.may_fail_over(&key) {
                continue;
            }
            let budget = self.lane_budget(&key, lane.room().min(batch), now);
            let outbox = pass.outbox || lane.more_in_outbox.load(Ordering::Relaxed);
            let items = self
                .claim_for(&key, budget, now, &lane.found_nothing_at, outbox)
                .await?;
            if outbox {
                // A claim that took all it could leaves more behind: the next pass looks
                // again at once.
                lane.more_in_outbox
                    .store(budget > 0 && items.len() >= budget, Ordering::Relaxed);
            }
            found |= !items.is_empty();
            self.route(items, lanes, settle, stop).await?;
        }
        if pass.outbox {
            let others = self.claim_others(batch, now, pass.strays).await?;
            found |= !others.is_empty();
            self.route(others, lanes, settle, stop).await?;
        }
        Ok(found)
    }

    /// Triage of claimed work: what needs no send goes to the writer, the rest to its lane
    /// (a message for a channel nobody can send on fails at once, with its reason).
    async fn route(
        self: &Arc<Self>,
        items: Vec<relais_store::OutboxItem>,
        lanes: &mut HashMap<String, RunningLane>,
        settle: &SettleQueue,
        stop: &CancellationToken,
    ) -> Result<(), super::DispatchError> {
        let mut report = RoundReport::default();
        for item in items {
            match self.triage(item, &mut report).await? {
                Triage::Settle(id, settlement) => settle.push(Settled {
                    id,
                    settlement: *settlement,
                    permit: None,
                }),
                Triage::Send(send) => match &send.target {
                    Ok(_) => {
                        let key = send.item.message.channel.clone();
                        self.lane(lanes, &key, settle, stop).push(*send);
                    }
                    Err(error) => {
                        let now = self.clock.now();
                        let settlement = self
                            .conclude(&send, Err(error.clone()), now, &mut report)
                            .await?;
                        settle.push(Settled {
                            id: send.id().to_owned(),
                            settlement,
                            permit: None,
                        });
                    }
                },
            }
        }
        Ok(())
    }

    /// The lane of `key`, started on first use.
    fn lane(
        self: &Arc<Self>,
        lanes: &mut HashMap<String, RunningLane>,
        key: &str,
        settle: &SettleQueue,
        stop: &CancellationToken,
    ) -> Arc<Lane> {
        if let Some(running) = lanes.get(key) {
            return running.lane.clone();
        }
        let limit = self
            .adapter_of(key)
            .map_or(super::DEFAULT_IN_FLIGHT, |(_, adapter, _)| {
                adapter.max_in_flight()
            });
        let batch = usize::try_from(self.config.batch).unwrap_or(usize::MAX);
        let lane = Arc::new(Lane::new(key, limit, batch));
        let task = tokio::spawn(lane::run(
            self.clone(),
            lane.clone(),
            settle.clone(),
            stop.clone(),
            self.config.shutdown_grace,
        ));
        lanes.insert(
            key.to_owned(),
            RunningLane {
                lane: lane.clone(),
                task,
            },
        );
        lane
    }

    /// Extends the leases of the work in hand every quarter of the lease.
    async fn heartbeat(self: Arc<Self>, stop: CancellationToken) {
        let every = Duration::try_from(self.config.lease_for / 4)
            .unwrap_or(Duration::from_secs(15))
            .max(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let ids = self.held.ids();
            if ids.is_empty() {
                continue;
            }
            let until = self
                .clock
                .now()
                .checked_add(self.config.lease_for)
                .unwrap_or(jiff::Timestamp::MAX);
            match self
                .store
                .extend_leases(&self.config.lease_owner, &ids, until)
                .await
            {
                Ok(kept) => {
                    if kept.len() < ids.len() {
                        tracing::debug!(
                            asked = ids.len(),
                            kept = kept.len(),
                            "some leases were settled or lost meanwhile"
                        );
                    }
                    self.held.extended(&ids, &kept, until);
                }
                Err(e) => {
                    tracing::warn!(error = %e, held = ids.len(), "cannot extend the leases of the work in hand")
                }
            }
        }
    }

    /// Delivers due webhook events until stopped.
    async fn deliver_webhooks(self: Arc<Self>, stop: CancellationToken) {
        let Some(worker) = &self.webhooks else {
            return;
        };
        loop {
            let attempts = match worker.run_once().await {
                Ok(round) => round.attempts,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot deliver webhooks now");
                    0
                }
            };
            if stop.is_cancelled() {
                return;
            }
            if attempts == 0 {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = self.settled.notified() => {
                        tokio::time::sleep(WEBHOOKS_EVERY).await;
                    }
                }
            }
        }
    }
}

/// Starts the dispatcher of `relais serve` with the `sim` sandbox channel and outgoing
/// webhooks.
pub fn spawn_dispatcher(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: DispatcherConfig,
) -> DispatcherHandle {
    spawn_dispatcher_with(store, clock, config, ChannelRegistry::default())
}

/// [`spawn_dispatcher`] that also sends through the configured channels of `registry`.
pub fn spawn_dispatcher_with(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: DispatcherConfig,
    registry: ChannelRegistry,
) -> DispatcherHandle {
    let mut sim = crate::sim::adapter(store.clone(), config.sim.clone());
    if let Some(url) = &config.sim_sink_url {
        sim = match sim.with_sink(url.clone()) {
            Ok(sim) => sim,
            Err(e) => {
                tracing::error!(error = %e, "the sim sink is off: no HTTP client");
                crate::sim::adapter(store.clone(), config.sim.clone())
            }
        };
    }
    let mut dispatcher = Dispatcher::new(store, clock, config)
        .with_adapter(Arc::new(sim))
        .with_registry(registry);
    match crate::webhooks::HttpPoster::new() {
        Ok(poster) => dispatcher = dispatcher.with_webhooks(Arc::new(poster)),
        Err(e) => tracing::error!(error = %e, "outgoing webhooks are off: no HTTP client"),
    }
    Arc::new(dispatcher).spawn()
}
