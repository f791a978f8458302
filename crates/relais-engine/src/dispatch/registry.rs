//! What the API, the channels and the dispatcher share: the adapters of configured
//! channels, the receipts the channels read, and the hand-off queue.

use crate::handoff::Handoff;
use relais_channels::adapter::ChannelAdapter;
use relais_store::MessageEvent;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// Adapters of configured channels (an SMPP account…), by channel id. Shared by the API, which
/// adds a channel as soon as it is created, and the dispatcher, which sends a message whose
/// `channel` is that id through it. These adapters pace themselves (an SMPP client has its
/// `max_rate` and window), so the per-kind token bucket does not apply to them.
#[derive(Clone, Default)]
pub struct ChannelRegistry {
    adapters: Arc<RwLock<HashMap<String, Arc<dyn ChannelAdapter>>>>,
    receipts: ReceiptInbox,
    handoff: Handoff,
    /// Wakes the dispatcher when a channel is added (a lane to claim for).
    changed: Arc<tokio::sync::Notify>,
}

impl ChannelRegistry {
    pub fn insert(&self, channel_id: &str, adapter: Arc<dyn ChannelAdapter>) {
        let mut map = self.adapters.write().unwrap_or_else(|p| p.into_inner());
        map.insert(channel_id.to_owned(), adapter);
        drop(map);
        self.changed.notify_one();
    }
    pub fn remove(&self, channel_id: &str) -> Option<Arc<dyn ChannelAdapter>> {
        let mut map = self.adapters.write().unwrap_or_else(|p| p.into_inner());
        map.remove(channel_id)
    }
    pub fn get(&self, channel_id: &str) -> Option<Arc<dyn ChannelAdapter>> {
        let map = self.adapters.read().unwrap_or_else(|p| p.into_inner());
        map.get(channel_id).cloned()
    }
    /// The ids of the configured channels.
    pub fn ids(&self) -> Vec<String> {
        let map = self.adapters.read().unwrap_or_else(|p| p.into_inner());
        map.keys().cloned().collect()
    }
    /// Where the registry's channels leave the receipts they read.
    pub fn receipts(&self) -> &ReceiptInbox {
        &self.receipts
    }
    /// Where the accept path hands messages due now to the dispatcher that runs with this
    /// registry.
    pub fn handoff(&self) -> &Handoff {
        &self.handoff
    }
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// Called once the receipts it came with are stored. Dropping it uncalled says they were
/// not: a provider that waits for this (an SMSC waiting for `deliver_sm_resp`) delivers
/// them again.
pub type ReceiptAck = Box<dyn FnOnce() + Send>;

/// Receipts that configured channels read and matched to their messages, waiting for the
/// dispatcher to write them in its next group commit (an SMSC that answers at once has a
/// message's `sent` and `delivered` written as one row update). Pushing wakes the writer.
#[derive(Clone, Default)]
pub struct ReceiptInbox {
    queue: Arc<Mutex<Inbox>>,
    pushed: Arc<tokio::sync::Notify>,
}

#[derive(Default)]
struct Inbox {
    receipts: Vec<(String, MessageEvent)>,
    acks: Vec<ReceiptAck>,
}

impl ReceiptInbox {
    /// Queues receipts to write; `ack` is called once they are stored.
    pub fn push(&self, receipts: Vec<(String, MessageEvent)>, ack: Option<ReceiptAck>) {
        if receipts.is_empty() {
            if let Some(ack) = ack {
                ack();
            }
            return;
        }
        let mut inbox = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        inbox.receipts.extend(receipts);
        inbox.acks.extend(ack);
        drop(inbox);
        self.pushed.notify_one();
    }

    /// Everything queued, with the acknowledgements to call once it is stored.
    pub(crate) fn take(&self) -> (Vec<(String, MessageEvent)>, Vec<ReceiptAck>) {
        let mut inbox = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        (
            std::mem::take(&mut inbox.receipts),
            std::mem::take(&mut inbox.acks),
        )
    }

    /// Waits until the writer has committed everything queued for it before this call
    /// (such as the outcome of a send its provider just acknowledged), or until `wait`
    /// has passed (no writer runs, or the store cannot write).
    pub async fn committed(&self, wait: std::time::Duration) {
        let (done, committed) = tokio::sync::oneshot::channel::<()>();
        let ack: ReceiptAck = Box::new(move || {
            let _ = done.send(());
        });
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .acks
            .push(ack);
        self.pushed.notify_one();
        let _ = tokio::time::timeout(wait, committed).await;
    }

    pub(crate) async fn pushed(&self) {
        self.pushed.notified().await;
    }
}
