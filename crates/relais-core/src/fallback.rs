//! Channel fallback: try WhatsApp, and if it is not delivered within 10 minutes, send an SMS.
//!
//! In the API, `channels` lists the steps in order. The first is a channel name; each next
//! one is a channel name (move on when the previous attempt failed) or an object saying
//! when to move on to it:
//!
//! ```json
//! "channels": ["whatsapp", {"channel": "sms", "after": "not_delivered", "within": "10m"}, "email"]
//! ```
//!
//! `after` is `failed` (the default), `not_delivered` or `not_read`; the last two need
//! `within`, counted from the moment the previous step started. Internally each step knows
//! how it is left ([`MoveOn`]); [`FallbackChain::decide`] is the whole rule: given the
//! attempts so far and the time, start the next step, wait, or finish with one outcome.

use crate::content::ChannelCapabilities;
use crate::retry::{DurationError, check_bounds, deserialize_duration, serialize_duration};
use crate::status::MessageStatus;
use jiff::{SignedDuration, Timestamp};
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

pub const MAX_STEPS: usize = 5;
pub const MIN_WITHIN: SignedDuration = SignedDuration::from_secs(10);
pub const MAX_WITHIN: SignedDuration = SignedDuration::from_hours(24 * 7);

/// When a step is left for the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveOn {
    /// When its attempt fails (`undelivered`, `failed`, `rejected`, `expired`, `canceled`).
    OnFailure,
    /// When its attempt fails, or is not delivered this long after the step started.
    NotDeliveredWithin(SignedDuration),
    /// When its attempt fails, or is not read this long after the step started.
    NotReadWithin(SignedDuration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackStep {
    /// A channel's name or id, or a channel kind; the engine resolves it.
    pub channel: String,
    /// How this step is left for the next; meaningless on the last step.
    pub move_on: MoveOn,
}

/// An ordered list of channels to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackChain {
    steps: Vec<FallbackStep>,
}

/// One send of the message on one step's channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub status: MessageStatus,
    /// When the step started (the attempt was handed to the channel's dispatcher).
    pub started_at: Timestamp,
}

/// What the engine does next for a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackDecision {
    /// Send on step `step` now.
    Start { step: usize },
    /// Nothing until this instant (a timer), or until a status changes, whichever is first.
    WaitUntil(Timestamp),
    /// Nothing until the current attempt's status changes.
    WaitForStatus,
    /// The chain is over: the message's status, and the step whose attempt gave it.
    Finish { status: MessageStatus, step: usize },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FallbackError {
    #[error("`channels` must list at least one channel")]
    Empty,
    #[error("`channels` lists {len} channels, at most {max}")]
    TooManySteps { len: usize, max: usize },
    #[error("`channels[{index}]`: the channel must not be empty")]
    EmptyChannel { index: usize },
    #[error("`channels[{index}]`: `{channel}` is already in the chain")]
    Duplicate { index: usize, channel: String },
    #[error("`channels[0]`: the first channel has nothing to fall back from; remove `after`")]
    AfterOnFirst,
    #[error("`channels[{index}]`: `after: {after}` needs `within`, e.g. \"within\": \"10m\"")]
    MissingWithin { index: usize, after: &'static str },
    #[error(
        "`channels[{index}]`: `within` only goes with `after: not_delivered` or `after: not_read`"
    )]
    WithinWithoutWait { index: usize },
    #[error("`channels[{index}]`: {source}")]
    Within {
        index: usize,
        #[source]
        source: DurationError,
    },
    #[error(
        "`channels[{index}]`: waiting for `read` on `{channel}` would never end, it has no read receipts; use `not_delivered`"
    )]
    NoReadReceipts { index: usize, channel: String },
}

impl FallbackChain {
    /// A chain from its steps, checked.
    pub fn new(steps: Vec<FallbackStep>) -> Result<Self, FallbackError> {
        if steps.is_empty() {
            return Err(FallbackError::Empty);
        }
        if steps.len() > MAX_STEPS {
            return Err(FallbackError::TooManySteps {
                len: steps.len(),
                max: MAX_STEPS,
            });
        }
        for (index, step) in steps.iter().enumerate() {
            if step.channel.trim().is_empty() {
                return Err(FallbackError::EmptyChannel { index });
            }
            if steps[..index]
                .iter()
                .any(|earlier| earlier.channel == step.channel)
            {
                return Err(FallbackError::Duplicate {
                    index,
                    channel: step.channel.clone(),
                });
            }
            if let MoveOn::NotDeliveredWithin(within) | MoveOn::NotReadWithin(within) = step.move_on
            {
                // The API writes the wait on the next element.
                check_bounds("within", within, MIN_WITHIN, MAX_WITHIN).map_err(|source| {
                    FallbackError::Within {
                        index: index + 1,
                        source,
                    }
                })?;
            }
        }
        Ok(FallbackChain { steps })
    }

    /// One channel, no fallback.
    pub fn single(channel: impl Into<String>) -> Self {
        FallbackChain {
            steps: vec![FallbackStep {
                channel: channel.into(),
                move_on: MoveOn::OnFailure,
            }],
        }
    }

    pub fn steps(&self) -> &[FallbackStep] {
        &self.steps
    }

    /// Refuses waits that can never end: `not_read` on a channel without read receipts.
    /// `capabilities_of` gives the capabilities of a step's channel, if known.
    pub fn check_capabilities<'c>(
        &self,
        capabilities_of: impl Fn(&str) -> Option<&'c ChannelCapabilities>,
    ) -> Result<(), FallbackError> {
        for (index, step) in self
            .steps
            .iter()
            .enumerate()
            .take(self.steps.len().saturating_sub(1))
        {
            let waits_for_read = matches!(step.move_on, MoveOn::NotReadWithin(_));
            if waits_for_read
                && capabilities_of(&step.channel).is_some_and(|caps| !caps.read_receipts)
            {
                return Err(FallbackError::NoReadReceipts {
                    index: index + 1,
                    channel: step.channel.clone(),
                });
            }
        }
        Ok(())
    }

    /// The next move, given the attempts so far (attempt `i` on step `i`) and `now`.
    ///
    /// - A `read` anywhere finishes the chain as `read`.
    /// - A delivery finishes it as `delivered`, unless the current step waits for `read`.
    /// - A failed attempt moves on at once; a wait that ran out moves on too.
    /// - When no step is left, the chain finishes with the best status any attempt
    ///   reached, or the last attempt's failure.
    pub fn decide(&self, attempts: &[Attempt], now: Timestamp) -> FallbackDecision {
        let Some((current_index, current)) = attempts.iter().enumerate().next_back() else {
            return FallbackDecision::Start { step: 0 };
        };
        if let Some(read) = attempts
            .iter()
            .position(|attempt| attempt.status == MessageStatus::Read)
        {
            return FallbackDecision::Finish {
                status: MessageStatus::Read,
                step: read,
            };
        }
        let delivered = attempts
            .iter()
            .position(|attempt| attempt.status.is_delivered());
        let last_step = current_index + 1 >= self.steps.len();
        if last_step {
            return match delivered {
                Some(step) => FallbackDecision::Finish {
                    status: MessageStatus::Delivered,
                    step,
                },
                None if current.status.is_failure() => FallbackDecision::Finish {
                    status: current.status,
                    step: current_index,
                },
                None => FallbackDecision::WaitForStatus,
            };
        }
        let next = FallbackDecision::Start {
            step: current_index + 1,
        };
        let timer = |within: SignedDuration| {
            let deadline = current
                .started_at
                .checked_add(within)
                .unwrap_or(Timestamp::MAX);
            if now >= deadline {
                next
            } else {
                FallbackDecision::WaitUntil(deadline)
            }
        };
        match self.steps[current_index].move_on {
            MoveOn::NotReadWithin(_) if current.status.is_failure() => next,
            MoveOn::NotReadWithin(within) => timer(within),
            _ if delivered.is_some() => FallbackDecision::Finish {
                status: MessageStatus::Delivered,
                step: delivered.unwrap_or(current_index),
            },
            _ if current.status.is_failure() => next,
            MoveOn::OnFailure => FallbackDecision::WaitForStatus,
            MoveOn::NotDeliveredWithin(within) => timer(within),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The JSON shape.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum After {
    Failed,
    NotDelivered,
    NotRead,
}

impl After {
    fn as_str(self) -> &'static str {
        match self {
            After::Failed => "failed",
            After::NotDelivered => "not_delivered",
            After::NotRead => "not_read",
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetailedStep {
    channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<After>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_within",
        serialize_with = "serialize_within"
    )]
    within: Option<SignedDuration>,
}

fn deserialize_within<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SignedDuration>, D::Error> {
    deserialize_duration("within", deserializer).map(Some)
}

fn serialize_within<S: Serializer>(
    within: &Option<SignedDuration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match within {
        Some(duration) => serialize_duration(duration, serializer),
        None => serializer.serialize_none(),
    }
}

/// One element of `channels`: `"sms"` or `{"channel": "sms", "after": …, "within": …}`.
struct WireStep(DetailedStep);

impl<'de> Deserialize<'de> for WireStep {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StepVisitor;
        impl<'de> Visitor<'de> for StepVisitor {
            type Value = WireStep;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a channel name, or {\"channel\": …, \"after\": …, \"within\": …}")
            }
            fn visit_str<E: de::Error>(self, channel: &str) -> Result<WireStep, E> {
                Ok(WireStep(DetailedStep {
                    channel: channel.to_owned(),
                    after: None,
                    within: None,
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WireStep, A::Error> {
                DetailedStep::deserialize(de::value::MapAccessDeserializer::new(map)).map(WireStep)
            }
        }
        deserializer.deserialize_any(StepVisitor)
    }
}

impl FallbackChain {
    fn from_wire(wire: Vec<WireStep>) -> Result<Self, FallbackError> {
        let mut steps: Vec<FallbackStep> = Vec::with_capacity(wire.len());
        for (index, WireStep(element)) in wire.into_iter().enumerate() {
            let move_on = match (element.after, element.within) {
                (Some(_), _) if index == 0 => return Err(FallbackError::AfterOnFirst),
                (None | Some(After::Failed), None) => MoveOn::OnFailure,
                (None | Some(After::Failed), Some(_)) => {
                    return Err(FallbackError::WithinWithoutWait { index });
                }
                (Some(after @ (After::NotDelivered | After::NotRead)), None) => {
                    return Err(FallbackError::MissingWithin {
                        index,
                        after: after.as_str(),
                    });
                }
                (Some(After::NotDelivered), Some(within)) => MoveOn::NotDeliveredWithin(within),
                (Some(After::NotRead), Some(within)) => MoveOn::NotReadWithin(within),
            };
            if index == 0 && element.within.is_some() {
                return Err(FallbackError::AfterOnFirst);
            }
            // The condition written on this element is how the previous step is left.
            if let Some(previous) = steps.last_mut() {
                previous.move_on = move_on;
            }
            steps.push(FallbackStep {
                channel: element.channel,
                move_on: MoveOn::OnFailure,
            });
        }
        FallbackChain::new(steps)
    }
}

impl<'de> Deserialize<'de> for FallbackChain {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Vec::<WireStep>::deserialize(deserializer)?;
        FallbackChain::from_wire(wire).map_err(de::Error::custom)
    }
}

impl Serialize for FallbackChain {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.steps.len()))?;
        let mut how_reached = MoveOn::OnFailure;
        for step in &self.steps {
            match how_reached {
                MoveOn::OnFailure => seq.serialize_element(&step.channel)?,
                MoveOn::NotDeliveredWithin(within) => seq.serialize_element(&DetailedStep {
                    channel: step.channel.clone(),
                    after: Some(After::NotDelivered),
                    within: Some(within),
                })?,
                MoveOn::NotReadWithin(within) => seq.serialize_element(&DetailedStep {
                    channel: step.channel.clone(),
                    after: Some(After::NotRead),
                    within: Some(within),
                })?,
            }
            how_reached = step.move_on;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MessageStatus::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn chain(value: serde_json::Value) -> FallbackChain {
        serde_json::from_value(value).unwrap()
    }

    fn chain_err(value: serde_json::Value) -> String {
        serde_json::from_value::<FallbackChain>(value)
            .unwrap_err()
            .to_string()
    }

    fn attempt(status: MessageStatus, started_at: &str) -> Attempt {
        Attempt {
            status,
            started_at: ts(started_at),
        }
    }

    fn whatsapp_then_sms() -> FallbackChain {
        chain(json!(["whatsapp", {"channel": "sms", "after": "not_delivered", "within": "10m"}]))
    }

    #[test]
    fn the_api_shape_reads_and_writes_back() {
        let value = json!(["whatsapp", {"channel": "sms", "after": "not_delivered", "within": "10m"}, "email"]);
        let parsed = chain(value.clone());
        assert_eq!(
            parsed.steps(),
            [
                FallbackStep {
                    channel: "whatsapp".into(),
                    move_on: MoveOn::NotDeliveredWithin(SignedDuration::from_mins(10))
                },
                FallbackStep {
                    channel: "sms".into(),
                    move_on: MoveOn::OnFailure
                },
                FallbackStep {
                    channel: "email".into(),
                    move_on: MoveOn::OnFailure
                },
            ]
        );
        assert_eq!(serde_json::to_value(&parsed).unwrap(), value);
        assert_eq!(chain(json!(["sms"])), FallbackChain::single("sms"));
        assert_eq!(
            chain(json!(["a", {"channel": "b", "after": "failed"}])),
            chain(json!(["a", "b"]))
        );
    }

    #[test]
    fn bad_chains_get_clear_errors() {
        assert!(chain_err(json!([])).contains("at least one channel"));
        assert!(
            chain_err(json!([{"channel": "sms", "after": "not_delivered", "within": "1m"}]))
                .contains("remove `after`")
        );
        assert!(
            chain_err(json!(["whatsapp", {"channel": "sms", "after": "not_delivered"}]))
                .contains("needs `within`")
        );
        assert!(
            chain_err(json!(["whatsapp", {"channel": "sms", "within": "5m"}]))
                .contains("`within` only goes with")
        );
        assert!(
            chain_err(json!(["sms", "sms"]))
                .contains("`channels[1]`: `sms` is already in the chain")
        );
        assert!(
            chain_err(
                json!(["whatsapp", {"channel": "sms", "after": "not_delivered", "within": "1s"}])
            )
            .contains("`channels[1]`: within: 1s is too short")
        );
        assert!(
            chain_err(json!(["whatsapp", {"channel": "sms", "after": "later"}]))
                .contains("unknown variant `later`")
        );
        assert!(
            chain_err(json!(["whatsapp", {"channel": "sms", "wait": "5m"}]))
                .contains("unknown field `wait`")
        );
        assert!(chain_err(json!(["a", "b", "c", "d", "e", "f"])).contains("at most 5"));
        assert!(chain_err(json!([3])).contains("a channel name"));
    }

    #[test]
    fn not_read_needs_read_receipts() {
        let chain =
            chain(json!(["sms", {"channel": "email", "after": "not_read", "within": "1h"}]));
        let err = chain
            .check_capabilities(|channel| (channel == "sms").then_some(&ChannelCapabilities::SMS))
            .unwrap_err();
        assert_eq!(
            err,
            FallbackError::NoReadReceipts {
                index: 1,
                channel: "sms".into()
            }
        );
        let ok = whatsapp_then_sms();
        assert!(
            ok.check_capabilities(|_| Some(&ChannelCapabilities::WHATSAPP))
                .is_ok()
        );
    }

    #[test]
    fn the_first_step_starts_at_once() {
        assert_eq!(
            whatsapp_then_sms().decide(&[], ts("2026-11-21T10:00:00Z")),
            FallbackDecision::Start { step: 0 }
        );
    }

    #[test]
    fn waits_for_delivery_until_the_deadline_then_moves_on() {
        let chain = whatsapp_then_sms();
        let sent = [attempt(Sent, "2026-11-21T10:00:00Z")];
        assert_eq!(
            chain.decide(&sent, ts("2026-11-21T10:05:00Z")),
            FallbackDecision::WaitUntil(ts("2026-11-21T10:10:00Z"))
        );
        assert_eq!(
            chain.decide(&sent, ts("2026-11-21T10:10:00Z")),
            FallbackDecision::Start { step: 1 }
        );
    }

    #[test]
    fn delivered_in_time_finishes_the_chain() {
        let chain = whatsapp_then_sms();
        let delivered = [attempt(Delivered, "2026-11-21T10:00:00Z")];
        assert_eq!(
            chain.decide(&delivered, ts("2026-11-21T10:03:00Z")),
            FallbackDecision::Finish {
                status: Delivered,
                step: 0
            }
        );
    }

    #[test]
    fn a_failure_moves_on_without_waiting() {
        let chain = whatsapp_then_sms();
        let failed = [attempt(Undelivered, "2026-11-21T10:00:00Z")];
        assert_eq!(
            chain.decide(&failed, ts("2026-11-21T10:00:30Z")),
            FallbackDecision::Start { step: 1 }
        );
    }

    #[test]
    fn on_failure_steps_wait_for_a_status_without_a_timer() {
        let chain = chain(json!(["whatsapp", "sms"]));
        assert_eq!(
            chain.decide(
                &[attempt(Sent, "2026-11-21T10:00:00Z")],
                ts("2026-11-22T10:00:00Z")
            ),
            FallbackDecision::WaitForStatus
        );
        assert_eq!(
            chain.decide(
                &[attempt(Rejected, "2026-11-21T10:00:00Z")],
                ts("2026-11-21T10:00:01Z")
            ),
            FallbackDecision::Start { step: 1 }
        );
    }

    #[test]
    fn the_last_step_gives_the_outcome() {
        let chain = whatsapp_then_sms();
        let both_failed = [
            attempt(Undelivered, "2026-11-21T10:00:00Z"),
            attempt(Failed, "2026-11-21T10:00:05Z"),
        ];
        assert_eq!(
            chain.decide(&both_failed, ts("2026-11-21T10:01:00Z")),
            FallbackDecision::Finish {
                status: Failed,
                step: 1
            }
        );
        let in_flight = [
            attempt(Sent, "2026-11-21T10:00:00Z"),
            attempt(Sending, "2026-11-21T10:10:00Z"),
        ];
        assert_eq!(
            chain.decide(&in_flight, ts("2026-11-21T10:11:00Z")),
            FallbackDecision::WaitForStatus
        );
    }

    #[test]
    fn a_late_delivery_on_an_earlier_step_still_counts() {
        let chain = whatsapp_then_sms();
        // WhatsApp was delivered after the SMS had been started, and the SMS failed.
        let attempts = [
            attempt(Delivered, "2026-11-21T10:00:00Z"),
            attempt(Undelivered, "2026-11-21T10:10:00Z"),
        ];
        assert_eq!(
            chain.decide(&attempts, ts("2026-11-21T10:12:00Z")),
            FallbackDecision::Finish {
                status: Delivered,
                step: 0
            }
        );
    }

    #[test]
    fn not_read_moves_on_even_when_delivered() {
        let chain =
            chain(json!(["whatsapp", {"channel": "sms", "after": "not_read", "within": "1h"}]));
        let delivered = [attempt(Delivered, "2026-11-21T10:00:00Z")];
        assert_eq!(
            chain.decide(&delivered, ts("2026-11-21T10:30:00Z")),
            FallbackDecision::WaitUntil(ts("2026-11-21T11:00:00Z"))
        );
        assert_eq!(
            chain.decide(&delivered, ts("2026-11-21T11:00:00Z")),
            FallbackDecision::Start { step: 1 }
        );
        let read = [attempt(Read, "2026-11-21T10:00:00Z")];
        assert_eq!(
            chain.decide(&read, ts("2026-11-21T10:30:00Z")),
            FallbackDecision::Finish {
                status: Read,
                step: 0
            }
        );
        // The SMS then arrives: the chain ends delivered, from the WhatsApp attempt first.
        let then_sms = [
            attempt(Delivered, "2026-11-21T10:00:00Z"),
            attempt(Delivered, "2026-11-21T11:00:00Z"),
        ];
        assert_eq!(
            chain.decide(&then_sms, ts("2026-11-21T11:01:00Z")),
            FallbackDecision::Finish {
                status: Delivered,
                step: 0
            }
        );
    }

    fn any_status() -> impl Strategy<Value = MessageStatus> {
        proptest::sample::select(MessageStatus::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn decisions_are_coherent(
            statuses in proptest::collection::vec(any_status(), 0..4),
            minutes in 0i64..120,
        ) {
            let chain = chain(json!(["whatsapp", {"channel": "sms", "after": "not_delivered", "within": "10m"}, "email"]));
            let start = ts("2026-11-21T10:00:00Z");
            let attempts: Vec<Attempt> = statuses.iter().enumerate()
                .map(|(i, status)| Attempt { status: *status, started_at: start + SignedDuration::from_mins(i as i64 * 10) })
                .collect();
            let now = start + SignedDuration::from_mins(minutes + 10 * attempts.len() as i64);
            match chain.decide(&attempts, now) {
                FallbackDecision::Start { step } => {
                    prop_assert_eq!(step, attempts.len(), "only the next step starts");
                    prop_assert!(step < chain.steps().len());
                    prop_assert!(!attempts.iter().any(|a| a.status.is_delivered()), "no fallback after a delivery");
                }
                FallbackDecision::WaitUntil(at) => prop_assert!(at > now),
                FallbackDecision::WaitForStatus => prop_assert!(attempts.last().is_some_and(|a| !a.status.is_final())),
                FallbackDecision::Finish { status, step } => {
                    prop_assert!(step < attempts.len());
                    prop_assert!(status.is_delivered() || status.is_failure());
                    prop_assert_eq!(status.is_delivered(), attempts.iter().any(|a| a.status.is_delivered()));
                }
            }
        }
    }
}
