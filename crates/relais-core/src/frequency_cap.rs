//! A frequency cap: at most `max` messages of a purpose to one contact in any moving
//! window of `per` (e.g. 2 marketing messages per 7 days), across every campaign.
//!
//! The rule is pure: the caller gives the times the contact was sent messages of the
//! capped purpose and the instant it asks about; the cap says yes or no, and when the next
//! place opens. Written `{"max": 2, "per": "7d", "purpose": "marketing"}`.

use crate::consent::Purpose;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The longest window a cap may count over: a year (366 days), so that the history to
/// read stays bounded.
const LONGEST_PERIOD: SignedDuration = SignedDuration::from_hours(24 * 366);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrequencyCapError {
    #[error("`max` must be at least 1 (to send none, remove the contacts' consent instead)")]
    ZeroMax,
    #[error("`{0}` is not a period; write a whole number and a unit: `30m`, `24h`, `7d` or `2w`")]
    Period(String),
    #[error("a period of `{0}` is too long; a cap counts over at most 366 days")]
    PeriodTooLong(String),
}

/// A moving window, written as a whole number and a unit: `m` (minutes), `h`, `d`, `w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    amount: u32,
    unit: char,
}

impl Period {
    pub fn parse(raw: &str) -> Result<Period, FrequencyCapError> {
        let bad = || FrequencyCapError::Period(raw.to_owned());
        let text = raw.trim();
        let unit = text.chars().last().ok_or_else(bad)?;
        let amount: u32 = text[..text.len() - unit.len_utf8()]
            .parse()
            .map_err(|_| bad())?;
        if amount == 0 || !matches!(unit, 'm' | 'h' | 'd' | 'w') {
            return Err(bad());
        }
        let period = Period { amount, unit };
        if period.duration() > LONGEST_PERIOD {
            return Err(FrequencyCapError::PeriodTooLong(raw.to_owned()));
        }
        Ok(period)
    }

    pub fn duration(self) -> SignedDuration {
        let minutes_per_unit: i64 = match self.unit {
            'm' => 1,
            'h' => 60,
            'd' => 24 * 60,
            _ => 7 * 24 * 60,
        };
        SignedDuration::from_mins(i64::from(self.amount) * minutes_per_unit)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit)
    }
}

/// At most `max` messages of `purpose` to one contact per moving `per`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FrequencyCapWire", into = "FrequencyCapWire")]
pub struct FrequencyCap {
    max: u32,
    per: Period,
    purpose: Purpose,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrequencyCapWire {
    max: u32,
    per: String,
    #[serde(default = "marketing")]
    purpose: Purpose,
}

fn marketing() -> Purpose {
    Purpose::Marketing
}

impl TryFrom<FrequencyCapWire> for FrequencyCap {
    type Error = FrequencyCapError;
    fn try_from(wire: FrequencyCapWire) -> Result<Self, Self::Error> {
        FrequencyCap::new(wire.max, Period::parse(&wire.per)?, wire.purpose)
    }
}

impl From<FrequencyCap> for FrequencyCapWire {
    fn from(cap: FrequencyCap) -> Self {
        FrequencyCapWire {
            max: cap.max,
            per: cap.per.to_string(),
            purpose: cap.purpose,
        }
    }
}

impl FrequencyCap {
    pub fn new(max: u32, per: Period, purpose: Purpose) -> Result<Self, FrequencyCapError> {
        if max == 0 {
            return Err(FrequencyCapError::ZeroMax);
        }
        Ok(FrequencyCap { max, per, purpose })
    }

    pub fn max(&self) -> u32 {
        self.max
    }

    pub fn per(&self) -> Period {
        self.per
    }

    pub fn purpose(&self) -> &Purpose {
        &self.purpose
    }

    /// Whether a message of `purpose` is counted by this cap: a marketing cap counts
    /// marketing messages and every marketing topic; a topic's cap only that topic.
    pub fn covers(&self, purpose: &Purpose) -> bool {
        match &self.purpose {
            Purpose::All => true,
            Purpose::Marketing => !matches!(purpose, Purpose::Transactional),
            capped => capped == purpose,
        }
    }

    /// Whether one more message may go to a contact at `now`, given when it was sent the
    /// messages this cap covers (in any order; times after `now` are not counted).
    pub fn allows(&self, sent_times: &[Timestamp], now: Timestamp) -> bool {
        self.in_window(sent_times, now).len() < self.max as usize
    }

    /// `now` when [`FrequencyCap::allows`] says yes, else the first instant it will: when
    /// enough of the counted messages have left the window.
    pub fn next_allowed(&self, sent_times: &[Timestamp], now: Timestamp) -> Timestamp {
        let mut counted = self.in_window(sent_times, now);
        let max = self.max as usize;
        if counted.len() < max {
            return now;
        }
        counted.sort();
        // With `max` allowed, the one that must leave is the (len - max + 1)-th oldest.
        let leaving = counted[counted.len() - max];
        leaving
            .checked_add(self.per.duration())
            .unwrap_or(Timestamp::MAX)
    }

    fn in_window(&self, sent_times: &[Timestamp], now: Timestamp) -> Vec<Timestamp> {
        let start = now
            .checked_sub(self.per.duration())
            .unwrap_or(Timestamp::MIN);
        sent_times
            .iter()
            .copied()
            .filter(|sent| *sent > start && *sent <= now)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn two_per_week() -> FrequencyCap {
        serde_json::from_str(r#"{"max": 2, "per": "7d", "purpose": "marketing"}"#).unwrap()
    }

    #[test]
    fn a_third_marketing_message_in_seven_days_is_refused() {
        let cap = two_per_week();
        let sent = [at("2026-12-01T10:00:00Z"), at("2026-12-03T10:00:00Z")];
        assert!(cap.allows(&sent[..1], at("2026-12-04T10:00:00Z")));
        assert!(!cap.allows(&sent, at("2026-12-04T10:00:00Z")));
        assert_eq!(
            cap.next_allowed(&sent, at("2026-12-04T10:00:00Z")),
            at("2026-12-08T10:00:00Z"),
            "when the first leaves the window"
        );
        assert!(
            cap.allows(&sent, at("2026-12-08T10:00:00Z")),
            "seven days after the first, it no longer counts"
        );
    }

    #[test]
    fn messages_after_now_are_not_counted() {
        let cap = two_per_week();
        let sent = [at("2026-12-10T10:00:00Z"), at("2026-12-11T10:00:00Z")];
        assert!(cap.allows(&sent, at("2026-12-04T10:00:00Z")));
    }

    #[test]
    fn a_marketing_cap_counts_topics_but_not_transactional_messages() {
        let cap = two_per_week();
        assert!(cap.covers(&Purpose::Topic("newsletter".into())));
        assert!(!cap.covers(&Purpose::Transactional));
    }

    #[test]
    fn bad_caps_say_what_is_wrong() {
        let err = |json: &str| {
            serde_json::from_str::<FrequencyCap>(json)
                .unwrap_err()
                .to_string()
        };
        assert!(err(r#"{"max": 0, "per": "7d"}"#).contains("at least 1"));
        assert!(err(r#"{"max": 2, "per": "7 days"}"#).contains("`7 days` is not a period"));
        assert!(err(r#"{"max": 2, "per": "0d"}"#).contains("is not a period"));
        assert!(err(r#"{"max": 2, "per": "400d"}"#).contains("too long"));
        assert!(err(r#"{"max": 2, "per": "7d", "every": 1}"#).contains("unknown field"));
        assert!(err(r#"{"max": -1, "per": "7d"}"#).contains("invalid value"));
    }

    #[test]
    fn caps_round_trip_and_default_to_marketing() {
        let cap: FrequencyCap = serde_json::from_str(r#"{"max": 3, "per": "24h"}"#).unwrap();
        assert_eq!(cap.purpose(), &Purpose::Marketing);
        assert_eq!(cap.per().duration(), SignedDuration::from_hours(24));
        assert_eq!(
            serde_json::to_string(&cap).unwrap(),
            r#"{"max":3,"per":"24h","purpose":"marketing"}"#
        );
    }
}
