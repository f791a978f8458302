//! When to try a send again after it failed, and when a message is too old to send at all.
//!
//! Retries use exponential backoff with jitter that never goes back: the delay before
//! retry `n` is drawn uniformly from `[c(n-1), c(n)]`, where `c(n) = min(cap, base × 2^(n-1))`
//! and `c(0) = base / 2`. Each delay is at least as long as any delay before it (the old
//! "full jitter" drew from `[0, c(n)]` and could retry twice within 50 ms), and the jitter
//! still spreads the retries of many messages that failed together (a provider outage) so
//! that they do not come back as one wave. Once the cap is reached the delay is the cap.
//!
//! Durations in the API (`validity`, fallback `within`) are written `"10m"`, `"1h 30m"`,
//! `"PT10M"` or as an integer number of seconds; [`parse_duration`] reads them.

use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Throttling, timeouts, a provider's 5xx, a bind lost with the message in flight: may
    /// work later.
    Transient,
    /// An invalid number, a refused content, a blocked sender: will fail the same way again.
    Permanent,
    /// The message never left: the channel has no live connection to its provider. It
    /// waits for the channel without spending an attempt.
    NotSent,
}

/// Exponential backoff with jitter, each delay at least as long as the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    base: SignedDuration,
    cap: SignedDuration,
    max_attempts: u32,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    RetryAt(Timestamp),
    GiveUp(GiveUpReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpReason {
    /// The error will not go away by waiting.
    Permanent,
    /// `max_attempts` attempts were made.
    AttemptsExhausted,
    /// The next retry would come after the message's validity ends.
    WouldExpire,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryPolicyError {
    #[error("retry base delay must be positive")]
    NonPositiveBase,
    #[error("retry cap ({cap}) must be at least the base delay ({base})")]
    CapBelowBase { base: String, cap: String },
    #[error("max attempts must be at least 1")]
    NoAttempts,
}

impl RetryPolicy {
    /// Sensible defaults for message sends: 2 s, doubling, at most 10 minutes apart, 8 attempts.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        base: SignedDuration::from_secs(2),
        cap: SignedDuration::from_mins(10),
        max_attempts: 8,
    };

    /// Outgoing webhooks: 5 s doubling up to an hour apart, for as long as
    /// [`WEBHOOK_RETRY_WINDOW`] allows (the attempt count is not the limit).
    pub const WEBHOOKS: RetryPolicy = RetryPolicy {
        base: SignedDuration::from_secs(5),
        cap: SignedDuration::from_hours(1),
        max_attempts: u32::MAX,
    };

    pub fn new(
        base: SignedDuration,
        cap: SignedDuration,
        max_attempts: u32,
    ) -> Result<Self, RetryPolicyError> {
        if !base.is_positive() {
            return Err(RetryPolicyError::NonPositiveBase);
        }
        if cap < base {
            return Err(RetryPolicyError::CapBelowBase {
                base: format!("{base:#}"),
                cap: format!("{cap:#}"),
            });
        }
        if max_attempts == 0 {
            return Err(RetryPolicyError::NoAttempts);
        }
        Ok(RetryPolicy {
            base,
            cap,
            max_attempts,
        })
    }

    pub fn base(&self) -> SignedDuration {
        self.base
    }

    pub fn cap(&self) -> SignedDuration {
        self.cap
    }

    /// Attempts in total, the first one included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The longest delay before the retry that follows attempt number `attempts_made`
    /// (1 after the first failure): `min(cap, base × 2^(attempts_made-1))`.
    pub fn backoff_ceiling(&self, attempts_made: u32) -> SignedDuration {
        let doublings = attempts_made.saturating_sub(1).min(62);
        let ceiling_ms = self.base.as_millis().saturating_mul(1i128 << doublings);
        if ceiling_ms >= self.cap.as_millis() {
            self.cap
        } else {
            // Below the cap, which came from a valid SignedDuration, so it fits in i64.
            SignedDuration::from_millis(i64::try_from(ceiling_ms).unwrap_or(i64::MAX))
        }
    }

    /// When to try again after `attempts_made` attempts have failed, or `None` when the
    /// policy's attempts are used up. The delay is drawn from `[c(n-1), c(n)]` (see the
    /// module's doc): never shorter than the delay before it.
    pub fn next_retry<R: Rng + ?Sized>(
        &self,
        attempts_made: u32,
        now: Timestamp,
        rng: &mut R,
    ) -> Option<Timestamp> {
        if attempts_made >= self.max_attempts {
            return None;
        }
        let delay = self.draw_delay(attempts_made, rng);
        Some(now.checked_add(delay).unwrap_or(Timestamp::MAX))
    }

    /// The floor of the delay before the retry that follows attempt `attempts_made`: the
    /// previous ceiling (half the base for the first retry).
    pub fn backoff_floor(&self, attempts_made: u32) -> SignedDuration {
        if attempts_made <= 1 {
            self.base / 2
        } else {
            self.backoff_ceiling(attempts_made - 1)
        }
    }

    fn draw_delay<R: Rng + ?Sized>(&self, attempts_made: u32, rng: &mut R) -> SignedDuration {
        let ms = |d: SignedDuration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let floor = ms(self.backoff_floor(attempts_made));
        let ceiling = ms(self.backoff_ceiling(attempts_made)).max(floor);
        SignedDuration::from_millis(rng.gen_range(floor..=ceiling))
    }

    /// The full decision after a failed attempt: give up on permanent errors, on exhausted
    /// attempts, and when the retry would land after `expires_at` (the message would only
    /// be expired by then, so it is better to say so now).
    pub fn decide<R: Rng + ?Sized>(
        &self,
        class: ErrorClass,
        attempts_made: u32,
        now: Timestamp,
        expires_at: Option<Timestamp>,
        rng: &mut R,
    ) -> RetryDecision {
        match class {
            ErrorClass::Permanent => return RetryDecision::GiveUp(GiveUpReason::Permanent),
            // Nothing was spent: wait the first delay, whatever the count, within validity.
            ErrorClass::NotSent => {
                let at = now
                    .checked_add(self.draw_delay(1, rng))
                    .unwrap_or(Timestamp::MAX);
                return match expires_at {
                    Some(end) if at >= end => RetryDecision::GiveUp(GiveUpReason::WouldExpire),
                    _ => RetryDecision::RetryAt(at),
                };
            }
            ErrorClass::Transient => {}
        }
        match self.next_retry(attempts_made, now, rng) {
            None => RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted),
            Some(at) if expires_at.is_some_and(|end| at >= end) => {
                RetryDecision::GiveUp(GiveUpReason::WouldExpire)
            }
            Some(at) => RetryDecision::RetryAt(at),
        }
    }
}

/// How long a webhook delivery is retried after the event, as receivers of Standard
/// Webhooks expect: a receiver down for a night still gets its events in the morning.
pub const WEBHOOK_RETRY_WINDOW: SignedDuration = SignedDuration::from_hours(24);

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::DEFAULT
    }
}

/// How long after acceptance a message is still worth sending (an OTP after 10 minutes is
/// noise). Written like every API duration: `"10m"`, `"2h"`, `"PT10M"` or seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Validity(SignedDuration);

impl Validity {
    pub const MIN: SignedDuration = SignedDuration::from_secs(10);
    /// A week: beyond that "validity" is not a meaningful promise to a recipient.
    pub const MAX: SignedDuration = SignedDuration::from_hours(24 * 7);

    pub fn new(duration: SignedDuration) -> Result<Self, DurationError> {
        check_bounds("validity", duration, Self::MIN, Self::MAX).map(Validity)
    }

    pub fn parse(raw: &str) -> Result<Self, DurationError> {
        Self::new(parse_duration("validity", raw)?)
    }

    pub fn duration(self) -> SignedDuration {
        self.0
    }

    /// The instant from which the message is expired.
    pub fn expires_at(self, accepted_at: Timestamp) -> Timestamp {
        accepted_at.checked_add(self.0).unwrap_or(Timestamp::MAX)
    }
}

/// The message accepted at `accepted_at` must no longer be sent at `now`.
///
/// Validity counts from acceptance, also for a message scheduled with `send_at` or held by
/// quiet hours: it is a promise about the age of the information, not about the delay.
pub fn is_expired(accepted_at: Timestamp, validity: Validity, now: Timestamp) -> bool {
    now >= validity.expires_at(accepted_at)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error(
        "{field}: `{raw}` is not a duration; write it like \"30s\", \"10m\", \"2h\", \"1h 30m\" or a number of seconds"
    )]
    Unparsable { field: &'static str, raw: String },
    #[error("{field}: {value} is too short; the minimum is {min}")]
    TooShort {
        field: &'static str,
        value: String,
        min: String,
    },
    #[error("{field}: {value} is too long; the maximum is {max}")]
    TooLong {
        field: &'static str,
        value: String,
        max: String,
    },
}

/// Reads a duration written as `"30s"`, `"10m"`, `"1h 30m"`, ISO 8601 `"PT10M"`, or a
/// string of digits meaning seconds. `field` names the input in the error.
pub fn parse_duration(field: &'static str, raw: &str) -> Result<SignedDuration, DurationError> {
    let trimmed = raw.trim();
    let unparsable = || DurationError::Unparsable {
        field,
        raw: raw.to_owned(),
    };
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return trimmed
            .parse::<i64>()
            .map(SignedDuration::from_secs)
            .map_err(|_| unparsable());
    }
    if let Ok(duration) = trimmed.parse::<SignedDuration>() {
        return Ok(duration);
    }
    // `SignedDuration` refuses days ("2d") because a calendar day may last 23 or 25 hours;
    // for a validity or a timer, a day of 24 hours is what people mean.
    trimmed
        .parse::<jiff::Span>()
        .ok()
        .and_then(|span| {
            span.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                .ok()
        })
        .ok_or_else(unparsable)
}

/// `duration` if it lies within `[min, max]`, else an error naming `field`.
pub fn check_bounds(
    field: &'static str,
    duration: SignedDuration,
    min: SignedDuration,
    max: SignedDuration,
) -> Result<SignedDuration, DurationError> {
    if duration < min {
        Err(DurationError::TooShort {
            field,
            value: format!("{duration:#}"),
            min: format!("{min:#}"),
        })
    } else if duration > max {
        Err(DurationError::TooLong {
            field,
            value: format!("{duration:#}"),
            max: format!("{max:#}"),
        })
    } else {
        Ok(duration)
    }
}

/// A duration as the API reads it: a friendly string or a number of seconds.
pub(crate) fn deserialize_duration<'de, D: Deserializer<'de>>(
    field: &'static str,
    deserializer: D,
) -> Result<SignedDuration, D::Error> {
    struct DurationVisitor(&'static str);
    impl serde::de::Visitor<'_> for DurationVisitor {
        type Value = SignedDuration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "a duration such as \"10m\" or a number of seconds for `{}`",
                self.0
            )
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SignedDuration, E> {
            parse_duration(self.0, v).map_err(E::custom)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SignedDuration, E> {
            i64::try_from(v)
                .map(SignedDuration::from_secs)
                .map_err(|_| E::custom(format!("{}: {v} seconds is too long", self.0)))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SignedDuration, E> {
            Ok(SignedDuration::from_secs(v))
        }
    }
    deserializer.deserialize_any(DurationVisitor(field))
}

/// Writes a duration the way people write it (`"10m"`, `"1h 30m"`).
pub(crate) fn serialize_duration<S: Serializer>(
    duration: &SignedDuration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("{duration:#}"))
}

impl Serialize for Validity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_duration(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for Validity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let duration = deserialize_duration("validity", deserializer)?;
        Validity::new(duration).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::new(
            SignedDuration::from_secs(1),
            SignedDuration::from_secs(60),
            5,
        )
        .unwrap()
    }

    #[test]
    fn the_ceiling_doubles_then_stops_at_the_cap() {
        let p = policy();
        let secs: Vec<i64> = (1..=9).map(|n| p.backoff_ceiling(n).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(
            p.backoff_ceiling(u32::MAX),
            SignedDuration::from_secs(60),
            "no overflow"
        );
    }

    #[test]
    fn retries_stop_after_max_attempts() {
        let p = policy();
        let mut rng = StdRng::seed_from_u64(7);
        let now = ts("2026-11-21T10:00:00Z");
        assert!(p.next_retry(4, now, &mut rng).is_some());
        assert_eq!(p.next_retry(5, now, &mut rng), None);
    }

    #[test]
    fn permanent_errors_are_not_retried() {
        let mut rng = StdRng::seed_from_u64(7);
        let decision = policy().decide(
            ErrorClass::Permanent,
            1,
            ts("2026-11-21T10:00:00Z"),
            None,
            &mut rng,
        );
        assert_eq!(decision, RetryDecision::GiveUp(GiveUpReason::Permanent));
    }

    #[test]
    fn a_retry_after_expiry_is_not_planned() {
        let now = ts("2026-11-21T10:00:00Z");
        let p = policy();
        let planned = p.next_retry(3, now, &mut StdRng::seed_from_u64(7)).unwrap();
        // Same seed, same draw: a validity ending exactly then leaves no time to retry.
        let decide = |expires_at| {
            p.decide(
                ErrorClass::Transient,
                3,
                now,
                Some(expires_at),
                &mut StdRng::seed_from_u64(7),
            )
        };
        assert_eq!(
            decide(planned),
            RetryDecision::GiveUp(GiveUpReason::WouldExpire)
        );
        assert_eq!(
            decide(planned + SignedDuration::from_secs(1)),
            RetryDecision::RetryAt(planned)
        );
        assert_eq!(
            p.decide(
                ErrorClass::Transient,
                5,
                now,
                None,
                &mut StdRng::seed_from_u64(7)
            ),
            RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted)
        );
    }

    #[test]
    fn invalid_policies_are_refused() {
        assert_eq!(
            RetryPolicy::new(SignedDuration::ZERO, SignedDuration::from_secs(1), 3),
            Err(RetryPolicyError::NonPositiveBase)
        );
        assert!(
            RetryPolicy::new(
                SignedDuration::from_secs(10),
                SignedDuration::from_secs(1),
                3
            )
            .is_err()
        );
        assert_eq!(
            RetryPolicy::new(
                SignedDuration::from_secs(1),
                SignedDuration::from_secs(1),
                0
            ),
            Err(RetryPolicyError::NoAttempts)
        );
    }

    #[test]
    fn expiry_is_inclusive_of_its_end() {
        let accepted = ts("2026-11-21T10:00:00Z");
        let validity = Validity::parse("10m").unwrap();
        assert!(!is_expired(accepted, validity, ts("2026-11-21T10:09:59Z")));
        assert!(is_expired(accepted, validity, ts("2026-11-21T10:10:00Z")));
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(
            parse_duration("validity", "10m").unwrap(),
            SignedDuration::from_mins(10)
        );
        assert_eq!(
            parse_duration("validity", "1h 30m").unwrap(),
            SignedDuration::from_mins(90)
        );
        assert_eq!(
            parse_duration("validity", "PT2H").unwrap(),
            SignedDuration::from_hours(2)
        );
        assert_eq!(
            parse_duration("validity", "90").unwrap(),
            SignedDuration::from_secs(90)
        );
        assert_eq!(
            parse_duration("validity", "2d").unwrap(),
            SignedDuration::from_hours(48)
        );
        let err = parse_duration("validity", "ten minutes").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("validity: `ten minutes` is not a duration"),
            "{err}"
        );
    }

    #[test]
    fn validity_serde_and_bounds() {
        let v: Validity = serde_json::from_str("\"2h\"").unwrap();
        assert_eq!(v.duration(), SignedDuration::from_hours(2));
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"2h\"");
        let v: Validity = serde_json::from_str("600").unwrap();
        assert_eq!(v.duration(), SignedDuration::from_mins(10));
        let err = serde_json::from_str::<Validity>("\"1s\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("too short"), "{err}");
        let err = serde_json::from_str::<Validity>("\"30d\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("too long"), "{err}");
        assert!(serde_json::from_str::<Validity>("-5").is_err());
    }

    #[test]
    fn each_retry_waits_at_least_as_long_as_the_one_before() {
        let p = policy();
        let now = ts("2026-11-21T10:00:00Z");
        for seed in 0..200 {
            let mut rng = StdRng::seed_from_u64(seed);
            let delays: Vec<SignedDuration> = (1..5)
                .map(|n| p.next_retry(n, now, &mut rng).unwrap().duration_since(now))
                .collect();
            assert!(
                delays.windows(2).all(|w| w[0] <= w[1]),
                "seed {seed}: {delays:?}"
            );
            assert!(delays[0] >= SignedDuration::from_millis(500), "{delays:?}");
        }
        let capped = RetryPolicy::new(
            SignedDuration::from_secs(1),
            SignedDuration::from_secs(4),
            10,
        )
        .unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        for n in 4..9 {
            assert_eq!(
                capped
                    .next_retry(n, now, &mut rng)
                    .unwrap()
                    .duration_since(now),
                SignedDuration::from_secs(4),
                "at the cap the delay is the cap"
            );
        }
    }

    #[test]
    fn a_message_that_never_left_waits_without_spending_attempts() {
        let p = policy();
        let now = ts("2026-11-21T10:00:00Z");
        let mut rng = StdRng::seed_from_u64(1);
        match p.decide(ErrorClass::NotSent, 50, now, None, &mut rng) {
            RetryDecision::RetryAt(at) => assert!(at.duration_since(now) <= p.backoff_ceiling(1)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            p.decide(
                ErrorClass::NotSent,
                1,
                now,
                Some(now + SignedDuration::from_millis(10)),
                &mut rng
            ),
            RetryDecision::GiveUp(GiveUpReason::WouldExpire)
        );
    }

    proptest! {
        #[test]
        fn every_retry_lies_within_its_ceiling(attempt in 1u32..5, seed in any::<u64>(), secs in 0i64..2_000_000_000) {
            let p = policy();
            let mut rng = StdRng::seed_from_u64(seed);
            let now = Timestamp::from_second(secs).unwrap();
            let at = p.next_retry(attempt, now, &mut rng).unwrap();
            prop_assert!(at >= now);
            prop_assert!(at.duration_since(now) <= p.backoff_ceiling(attempt));
        }
    }
}
