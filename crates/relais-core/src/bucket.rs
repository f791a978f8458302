//! A token bucket on a given clock: so many tokens a second, up to a burst.

use jiff::{SignedDuration, Timestamp};

/// `rate` tokens a second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Timestamp,
}

impl TokenBucket {
    /// Bursts of up to `rate` (at least one); full at `now`.
    pub fn new(rate: f64, now: Timestamp) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        TokenBucket::with_burst(rate, rate.max(1.0), now)
    }

    /// Bursts of up to `burst` (at least one); full at `now`.
    pub fn with_burst(rate: f64, burst: f64, now: Timestamp) -> Self {
        let burst = if burst.is_finite() {
            burst.max(1.0)
        } else {
            1.0
        };
        TokenBucket {
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
    pub fn ready(&mut self, now: Timestamp) -> Result<(), Timestamp> {
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
    pub fn available(&mut self, now: Timestamp) -> usize {
        self.refill(now);
        // Saturating float-to-int: a bucket holds at most its burst.
        self.tokens.floor().max(0.0) as usize
    }

    /// Takes a token (after [`TokenBucket::ready`] or [`TokenBucket::available`] said there
    /// was one).
    pub fn take(&mut self) {
        self.tokens -= 1.0;
    }

    /// The tokens a second it refills at.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Refills at `rate` (with a burst of `rate`, as [`TokenBucket::new`]) from the last
    /// time the bucket was looked at, keeping the tokens counted then up to the new burst.
    /// A bucket is looked at on every message of its sender, so the time counted at the
    /// new rate is at most the gap since that sender's last message. Nothing changes when
    /// the rate is the same.
    pub fn set_rate(&mut self, rate: f64) {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        if rate == self.rate {
            return;
        }
        self.rate = rate;
        self.burst = rate.max(1.0);
        self.tokens = self.tokens.min(self.burst);
    }

    /// Takes a token if one is there now.
    pub fn try_take(&mut self, now: Timestamp) -> bool {
        let ready = self.ready(now).is_ok();
        if ready {
            self.take();
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_spent_then_tokens_come_back_at_the_rate() {
        let t0 = Timestamp::from_second(1_790_000_000).unwrap();
        let mut bucket = TokenBucket::with_burst(5.0, 20.0, t0);
        assert_eq!((0..30).filter(|_| bucket.try_take(t0)).count(), 20);
        let one_second_later = t0.checked_add(SignedDuration::from_secs(1)).unwrap();
        assert_eq!(bucket.available(one_second_later), 5);
        assert!(bucket.ready(t0).is_ok());
    }

    #[test]
    fn a_new_rate_applies_from_the_instant_it_is_set() {
        let t0 = Timestamp::from_second(1_790_000_000).unwrap();
        let mut bucket = TokenBucket::new(1.0, t0);
        assert!(bucket.try_take(t0));
        assert!(!bucket.try_take(t0), "one a second");
        bucket.set_rate(10.0);
        let a_tenth_later = t0.checked_add(SignedDuration::from_millis(100)).unwrap();
        assert!(bucket.try_take(a_tenth_later), "ten a second from now on");
        bucket.set_rate(0.5);
        assert_eq!(bucket.available(a_tenth_later), 0);
        let two_seconds_later = a_tenth_later
            .checked_add(SignedDuration::from_secs(2))
            .unwrap();
        assert_eq!(bucket.available(two_seconds_later), 1);
    }
}
