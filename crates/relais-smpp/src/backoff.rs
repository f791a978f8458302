//! Reconnect delays of a bind: doubling from `min` to `max`, each stretched by up to a
//! quarter at random so that many binds spread out, and never shorter than the previous
//! delay of the same outage (jitter must not make a later retry come sooner).

use std::time::Duration;

/// Delays between reconnection attempts during one outage.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    base: Duration,
    last: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Self {
            min,
            max: max.max(min),
            base: min,
            last: Duration::ZERO,
        }
    }

    /// The delay before the next attempt. `jitter` is in `[0, 1)` (random in production,
    /// fixed in tests): the delay is `base × (1 + jitter / 4)`, `base` doubling up to `max`.
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let stretch = 1.0 + jitter.clamp(0.0, 1.0) / 4.0;
        let delay = self.base.mul_f64(stretch).max(self.last);
        self.last = delay;
        self.base = (self.base * 2).min(self.max);
        delay
    }

    /// A new outage starts from `min` again.
    pub fn reset(&mut self) {
        self.base = self.min;
        self.last = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_never_shrink_within_an_outage_whatever_the_jitter() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let jitters = [
            0.99, 0.0, 0.5, 0.99, 0.0, 0.1, 0.9, 0.0, 0.99, 0.0, 0.3, 0.0,
        ];
        let mut previous = Duration::ZERO;
        for j in jitters {
            let d = b.next_delay(j);
            assert!(d >= previous, "{d:?} after {previous:?}");
            assert!(d <= Duration::from_millis(37_500), "{d:?}");
            previous = d;
        }
        assert!(previous >= Duration::from_secs(30), "reached the cap");
    }

    #[test]
    fn the_first_delay_is_min_stretched_by_the_jitter_and_reset_starts_over() {
        let mut b = Backoff::new(Duration::from_millis(400), Duration::from_secs(30));
        assert_eq!(b.next_delay(0.0), Duration::from_millis(400));
        assert_eq!(b.next_delay(0.0), Duration::from_millis(800));
        b.reset();
        assert_eq!(b.next_delay(1.0), Duration::from_millis(500));
    }
}
