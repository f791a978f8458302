//! Token buckets on the injected clock: a channel kind's rate and each sender's.

pub(super) use relais_core::bucket::TokenBucket as Bucket;
use relais_core::channel::ChannelKind;
use std::collections::HashMap;

/// Token buckets per channel kind and per (tenant, channel, sender).
#[derive(Default)]
pub(super) struct Buckets {
    pub(super) channels: HashMap<ChannelKind, Bucket>,
    pub(super) senders: HashMap<(String, String, String), Bucket>,
}
