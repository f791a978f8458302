//! A circuit breaker per endpoint (a tenant's webhook): when attempts keep finding the
//! endpoint down, stop attempting, then let one attempt through now and then to see whether
//! it came back.
//!
//! Closed (the normal state), every delivery is attempted on its own schedule. After
//! [`CircuitBreaker::threshold`] attempts in a row that found the endpoint down the circuit
//! opens until `retry_at`: nothing of that endpoint is attempted meanwhile. At `retry_at` one
//! attempt goes through as a probe (half-open). An answer closes the circuit and resets the
//! count; a failed probe opens it again for twice as long, up to a cap. A refusal of one
//! event (a 4xx other than 408 and 429) is an answer: the endpoint is up, the event is bad.
//!
//! Why: a dead webhook endpoint with 29k events pending was retried one event at a time,
//! each retry two writes to the store (1.5–5 MB/s on an idle server). With the circuit open
//! it costs one probe per open period, at most one every 10 minutes.
//!
//! The rule is pure: the state, the time and the random draw come in as arguments, so the
//! store can apply it to the stored state inside the transaction that records an attempt.

use jiff::{SignedDuration, Timestamp};

/// What one attempt told about the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    /// It answered: a 2xx, or a refusal of this one event.
    Answered,
    /// No connection, a timeout, a 5xx, 408 or 429: it is down, or asks to be left alone.
    Down,
    /// Nothing was sent (the signing secret could not be read): it says nothing.
    Untold,
}

/// The stored state of one endpoint's circuit. The default is closed, with no failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Circuit {
    /// Attempts in a row that found the endpoint down.
    pub failures: u32,
    /// Times in a row the circuit opened; the open period doubles with each.
    pub opens: u32,
    /// When the first of those failures happened.
    pub failing_since: Option<Timestamp>,
    /// While the circuit is open: when the next probe may go (while a probe is in flight,
    /// when its lease runs out). `None` while it is closed.
    pub retry_at: Option<Timestamp>,
}

impl Circuit {
    /// Deliveries are attempted on their own schedule.
    pub fn is_closed(&self) -> bool {
        self.retry_at.is_none()
    }

    /// The last attempt reached the endpoint (or none failed yet).
    pub fn is_healthy(&self) -> bool {
        self.failures == 0
    }
}

/// When a circuit opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreaker {
    threshold: u32,
    base: SignedDuration,
    cap: SignedDuration,
}

impl CircuitBreaker {
    /// Outgoing webhooks: open after 5 failures in a row (one failure is a blip, a
    /// receiver restarting; five, a few seconds apart with the retry backoff, is an
    /// outage), for 30 s, doubling with each failed probe up to 10 minutes: a receiver that
    /// comes back waits at most 10 minutes for its events.
    pub const WEBHOOKS: CircuitBreaker = CircuitBreaker {
        threshold: 5,
        base: SignedDuration::from_secs(30),
        cap: SignedDuration::from_mins(10),
    };

    /// Failures in a row that open the circuit.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// The longest time the circuit stays open after it opened `opens` times in a row
    /// before (0 the first time): `min(cap, base × 2^opens)`.
    pub fn open_ceiling(&self, opens: u32) -> SignedDuration {
        let doublings = opens.min(62);
        let ms = self.base.as_millis().saturating_mul(1i128 << doublings);
        if ms >= self.cap.as_millis() {
            self.cap
        } else {
            SignedDuration::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        }
    }

    /// How long the circuit stays open: the last quarter of [`CircuitBreaker::open_ceiling`]
    /// is jitter, placed by `jitter` (a draw in `[0, 1]`), so that endpoints that failed
    /// together (the network of their receivers went down) are not probed together.
    pub fn open_for(&self, opens: u32, jitter: f64) -> SignedDuration {
        let ceiling = self.open_ceiling(opens);
        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        let spread = SignedDuration::try_from_secs_f64(ceiling.as_secs_f64() / 4.0 * jitter)
            .unwrap_or(SignedDuration::ZERO);
        ceiling.checked_sub(spread).unwrap_or(ceiling)
    }

    /// The circuit after an attempt made at `now` that told `news`; `jitter`, a draw in
    /// `[0, 1]`, places the end of the open period when the attempt opens the circuit.
    pub fn after(
        &self,
        circuit: Circuit,
        news: Reachability,
        now: Timestamp,
        jitter: f64,
    ) -> Circuit {
        match news {
            Reachability::Answered => Circuit::default(),
            Reachability::Untold => circuit,
            Reachability::Down => {
                let failures = circuit.failures.saturating_add(1);
                let failing_since = Some(circuit.failing_since.unwrap_or(now));
                if failures < self.threshold {
                    return Circuit {
                        failures,
                        failing_since,
                        ..circuit
                    };
                }
                // The attempt that reaches the threshold opens the circuit; a failed probe
                // opens it again, for longer.
                let open_for = self.open_for(circuit.opens, jitter);
                Circuit {
                    failures,
                    opens: circuit.opens.saturating_add(1),
                    failing_since,
                    retry_at: Some(now.checked_add(open_for).unwrap_or(Timestamp::MAX)),
                }
            }
        }
    }
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker::WEBHOOKS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Reachability::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn the_fifth_failure_in_a_row_opens_the_circuit_for_30_seconds() {
        let b = CircuitBreaker::WEBHOOKS;
        let now = ts("2026-11-21T10:00:00Z");
        let mut c = Circuit::default();
        for n in 1..5 {
            c = b.after(c, Down, now + SignedDuration::from_secs(n), 0.0);
            assert!(c.is_closed(), "{n} failures");
            assert!(!c.is_healthy());
        }
        assert_eq!(
            c.failing_since,
            Some(now + SignedDuration::from_secs(1)),
            "since the first"
        );
        let at = now + SignedDuration::from_secs(5);
        let open = b.after(c, Down, at, 0.0);
        assert_eq!(open.retry_at, Some(at + SignedDuration::from_secs(30)));
        assert_eq!((open.failures, open.opens), (5, 1));
    }

    #[test]
    fn each_failed_probe_doubles_the_open_period_up_to_ten_minutes() {
        let b = CircuitBreaker::WEBHOOKS;
        let secs: Vec<i64> = (0..8).map(|n| b.open_ceiling(n).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 600, 600, 600]);
        assert_eq!(b.open_ceiling(u32::MAX), SignedDuration::from_mins(10));
        let now = ts("2026-11-21T10:00:00Z");
        let open = Circuit {
            failures: 5,
            opens: 1,
            failing_since: Some(now),
            retry_at: Some(now),
        };
        let again = b.after(open, Down, now, 0.0);
        assert_eq!(again.retry_at, Some(now + SignedDuration::from_secs(60)));
        assert_eq!((again.failures, again.opens), (6, 2));
        assert_eq!(again.failing_since, Some(now));
    }

    #[test]
    fn jitter_takes_at_most_the_last_quarter_of_the_period() {
        let b = CircuitBreaker::WEBHOOKS;
        assert_eq!(b.open_for(0, 0.0), SignedDuration::from_secs(30));
        assert_eq!(b.open_for(0, 1.0), SignedDuration::from_millis(22_500));
        assert_eq!(b.open_for(9, 0.5), SignedDuration::from_secs(525));
        assert_eq!(
            b.open_for(0, f64::NAN),
            SignedDuration::from_secs(30),
            "a draw out of range is clamped"
        );
        assert_eq!(b.open_for(0, 7.0), SignedDuration::from_millis(22_500));
    }

    #[test]
    fn an_answer_closes_the_circuit_and_an_untold_attempt_changes_nothing() {
        let b = CircuitBreaker::WEBHOOKS;
        let now = ts("2026-11-21T10:00:00Z");
        let open = Circuit {
            failures: 9,
            opens: 4,
            failing_since: Some(now),
            retry_at: Some(now),
        };
        assert_eq!(b.after(open, Untold, now, 0.5), open);
        let closed = b.after(open, Answered, now, 0.5);
        assert_eq!(closed, Circuit::default());
        assert!(closed.is_closed() && closed.is_healthy());
    }
}
