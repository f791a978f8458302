//! Token buckets on the injected clock: a channel kind's rate and each sender's.

use jiff::{SignedDuration, Timestamp};
use relais_core::channel::ChannelKind;
use std::collections::HashMap;

/// A token bucket: `rate` per second, bursts of up to `rate` (at least one).
#[derive(Debug, Clone)]
pub(super) struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Timestamp,
}

impl Bucket {
    pub(super) fn new(rate: f64, now: Timestamp) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        let burst = rate.max(1.0);
        Bucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Timestamp) {
        let elapsed = now.duration_since(self.last).as_secs_f64().max(0.0);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now.max(self.last);
    }

    /// Whether a token is there now, or when the next one comes; takes nothing.
    pub(super) fn ready(&mut self, now: Timestamp) -> Result<(), Timestamp> {
        self.refill(now);
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.rate;
            let wait =
                SignedDuration::try_from_secs_f64(wait).unwrap_or(SignedDuration::from_secs(1));
            Err(now.checked_add(wait).unwrap_or(Timestamp::MAX))
        }
    }

    /// Whole tokens available now.
    pub(super) fn available(&mut self, now: Timestamp) -> usize {
        self.refill(now);
        // Saturating float-to-int: a bucket holds at most its burst.
        self.tokens.floor().max(0.0) as usize
    }

    pub(super) fn take(&mut self) {
        self.tokens -= 1.0;
    }
}

/// Token buckets per channel kind and per (channel, sender).
#[derive(Default)]
pub(super) struct Buckets {
    pub(super) channels: HashMap<ChannelKind, Bucket>,
    pub(super) senders: HashMap<(String, String), Bucket>,
}
