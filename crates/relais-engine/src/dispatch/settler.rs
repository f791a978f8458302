//! The one writer of outcomes: each attempt's settlement and the receipts the channels
//! read are written in group commits, as soon as the previous commit is done.
//!
//! A lane's window slot travels with its settlement and is given back only once the
//! settlement is committed, so the messages a provider acknowledged and the store does not
//! know about yet never outnumber the window: that is all a `kill -9` can send again.
//! Receipts are acknowledged to their channel (an SMSC's `deliver_sm_resp`) only after the
//! commit that stored them. When the store cannot write (a full disk), nothing is dropped:
//! the group is written again after a pause, and meanwhile the lanes, their windows full,
//! stop sending.

use super::Dispatcher;
use super::registry::ReceiptAck;
use relais_store::{MessageEvent, Settlement};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

/// Settlements written in one commit at most: large enough that commits cost little per
/// message, small enough that a commit (and the window slots it gives back) takes a few
/// milliseconds.
const MAX_GROUP: usize = 2048;

/// The first and the longest pause before writing a group again after the store refused.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// One attempt's outcome on its way to the store, with the window slot it holds.
pub(super) struct Settled {
    pub(super) id: String,
    pub(super) settlement: Settlement,
    pub(super) permit: Option<OwnedSemaphorePermit>,
}

/// Where lanes and the claimer leave outcomes to write.
#[derive(Clone)]
pub(super) struct SettleQueue {
    tx: mpsc::UnboundedSender<Settled>,
}

impl SettleQueue {
    pub(super) fn new() -> (SettleQueue, mpsc::UnboundedReceiver<Settled>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (SettleQueue { tx }, rx)
    }

    pub(super) fn push(&self, settled: Settled) {
        if let Err(lost) = self.tx.send(settled) {
            // Only after the writer stopped (shutdown ran out of time): the message keeps
            // its lease, which runs out, and it is sent again: the crash case.
            tracing::warn!(message = %lost.0.id, "an outcome came after the writer stopped");
        }
    }
}

/// Writes what comes in until every [`SettleQueue`] is dropped and all is written.
pub(super) async fn run(dispatcher: Arc<Dispatcher>, mut rx: mpsc::UnboundedReceiver<Settled>) {
    let inbox = dispatcher.registry.receipts().clone();
    let mut ids: Vec<String> = Vec::new();
    let mut settlements: Vec<(String, Settlement)> = Vec::new();
    let mut permits: Vec<OwnedSemaphorePermit> = Vec::new();
    let mut receipts: Vec<(String, MessageEvent)> = Vec::new();
    let mut acks: Vec<ReceiptAck> = Vec::new();
    let mut retry: Option<Duration> = None;
    let mut closed = false;
    loop {
        let idle = settlements.is_empty() && receipts.is_empty();
        if idle && closed {
            return;
        }
        match retry {
            Some(pause) => tokio::time::sleep(pause).await,
            None if idle => {
                tokio::select! {
                    item = rx.recv() => match item {
                        Some(item) => take(item, &mut ids, &mut settlements, &mut permits),
                        None => closed = true,
                    },
                    _ = inbox.pushed() => {}
                }
            }
            None => {}
        }
        while settlements.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(item) => take(item, &mut ids, &mut settlements, &mut permits),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
            }
        }
        let (more, more_acks) = inbox.take();
        receipts.extend(more);
        acks.extend(more_acks);
        if settlements.is_empty() && receipts.is_empty() {
            for ack in acks.drain(..) {
                ack();
            }
            continue;
        }
        for adapter in dispatcher.adapters.values() {
            adapter.flush().await;
        }
        let now = dispatcher.clock.now();
        match dispatcher
            .store
            .settle_round(&dispatcher.config.lease_owner, &settlements, &receipts, now)
            .await
        {
            Ok(kept) => {
                crate::counters::count_round(&settlements, &receipts);
                for ((id, _), kept) in settlements.iter().zip(kept) {
                    if !kept {
                        tracing::warn!(message = %id, "lease lost before settling; another node has the message");
                    }
                }
                let orphans = dispatcher
                    .held
                    .release_settled(ids.iter().map(String::as_str));
                if !orphans.is_empty()
                    && let Err(e) = dispatcher
                        .store
                        .release_leases(&dispatcher.config.lease_owner, &orphans)
                        .await
                {
                    tracing::warn!(error = %e, count = orphans.len(), "cannot give back the leases of messages claimed again while in hand; their next step waits for the lease to run out");
                }
                ids.clear();
                settlements.clear();
                receipts.clear();
                // The window slots come back only now that the outcomes are durable.
                permits.clear();
                for ack in acks.drain(..) {
                    ack();
                }
                if retry.take().is_some() {
                    tracing::info!("the store takes writes again; outcomes are being written");
                }
                dispatcher.settled.notify_one();
            }
            Err(e) => {
                let pause = retry.map_or(RETRY_FIRST, |p| (p * 2).min(RETRY_MAX));
                if retry.is_none() {
                    tracing::error!(error = %e, outcomes = settlements.len(), receipts = receipts.len(), "cannot write the outcomes of sends; they are kept and written again");
                }
                retry = Some(pause);
            }
        }
    }
}

fn take(
    item: Settled,
    ids: &mut Vec<String>,
    settlements: &mut Vec<(String, Settlement)>,
    permits: &mut Vec<OwnedSemaphorePermit>,
) {
    ids.push(item.id.clone());
    settlements.push((item.id, item.settlement));
    permits.extend(item.permit);
}
