//! The consent ledger and the one decision the send pipeline asks:
//! "may we send purpose P on channel C to this contact now?"
//!
//! The ledger is append-only; the current state is derived from it. Among the records that
//! apply to a question (same purpose or `all`, same channel or every channel), the most
//! recent wins, so "STOP" after an opt-in refuses, and a later opt-in on one channel after a
//! global opt-out allows that channel again.

use crate::channel::ChannelKind;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a message is sent. Topics are tenant-defined marketing sub-lists (e.g. `newsletter`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purpose {
    Transactional,
    Marketing,
    /// Every purpose: a "STOP" to everything.
    All,
    Topic(String),
}

impl Purpose {
    pub fn parse(s: &str) -> Result<Purpose, ConsentError> {
        let s = s.trim();
        match s {
            "transactional" => Ok(Purpose::Transactional),
            "marketing" => Ok(Purpose::Marketing),
            "all" => Ok(Purpose::All),
            "" => Err(ConsentError::Purpose(s.to_owned())),
            topic
                if topic.len() <= 64
                    && topic.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
                    }) =>
            {
                Ok(Purpose::Topic(topic.to_owned()))
            }
            other => Err(ConsentError::Purpose(other.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Purpose::Transactional => "transactional",
            Purpose::Marketing => "marketing",
            Purpose::All => "all",
            Purpose::Topic(t) => t,
        }
    }

    /// Purposes whose records speak to a question about `self`.
    fn covered_by(&self, record: &Purpose) -> bool {
        record == self
            || *record == Purpose::All
            || (matches!(self, Purpose::Topic(_)) && *record == Purpose::Marketing)
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Purpose {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Purpose {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Purpose::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    OptedIn,
    OptedOut,
}

impl ConsentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentStatus::OptedIn => "opted_in",
            ConsentStatus::OptedOut => "opted_out",
        }
    }
    pub fn parse(s: &str) -> Result<Self, ConsentError> {
        match s {
            "opted_in" => Ok(ConsentStatus::OptedIn),
            "opted_out" => Ok(ConsentStatus::OptedOut),
            other => Err(ConsentError::Status(other.to_owned())),
        }
    }
}

/// Where a consent came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ConsentSource {
    Api,
    Keyword,
    Import,
    Widget,
    Agent,
    /// The channel's provider told Relais: the person unsubscribed in the app (Viber's
    /// `unsubscribed`), or asked for it from the message (an e-mail's one-click link).
    Channel,
}

impl ConsentSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentSource::Api => "api",
            ConsentSource::Keyword => "keyword",
            ConsentSource::Import => "import",
            ConsentSource::Widget => "widget",
            ConsentSource::Agent => "agent",
            ConsentSource::Channel => "channel",
        }
    }
    pub fn parse(s: &str) -> Result<Self, ConsentError> {
        match s {
            "api" => Ok(ConsentSource::Api),
            "keyword" => Ok(ConsentSource::Keyword),
            "import" => Ok(ConsentSource::Import),
            "widget" => Ok(ConsentSource::Widget),
            "agent" => Ok(ConsentSource::Agent),
            "channel" => Ok(ConsentSource::Channel),
            other => Err(ConsentError::Source(other.to_owned())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentError {
    #[error(
        "unknown purpose `{0}`; expected transactional, marketing, all, or a topic of lowercase letters, digits, `_` or `-`"
    )]
    Purpose(String),
    #[error("unknown consent status `{0}`; expected opted_in or opted_out")]
    Status(String),
    #[error("unknown consent source `{0}`; expected api, keyword, import, widget or agent")]
    Source(String),
}

/// One entry of the ledger. `channel: None` covers every channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentRecord {
    pub id: String,
    pub contact_id: String,
    pub channel: Option<ChannelKind>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "marketing"))]
    pub purpose: Purpose,
    pub status: ConsentStatus,
    pub source: ConsentSource,
    /// The text the person agreed to, or the message they sent.
    pub proof: Option<String>,
    pub recorded_at: jiff::Timestamp,
}

/// The answer to "may we send?", with the reason a person can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentDecision {
    pub allowed: bool,
    /// Stable code: `opted_in`, `transactional_default`, `opted_out`, `no_opt_in`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub code: &'static str,
    pub explanation: String,
    /// The ledger entry the decision rests on, if any.
    pub record_id: Option<String>,
}

/// Decides whether `purpose` may be sent on `channel`, from the contact's whole ledger.
///
/// Marketing and topics need an opt-in that covers them (a topic is covered by a
/// `marketing` opt-in too); transactional messages go unless the contact opted out of
/// transactional messages or of everything.
pub fn may_send(
    ledger: &[ConsentRecord],
    channel: ChannelKind,
    purpose: &Purpose,
) -> ConsentDecision {
    let latest = ledger
        .iter()
        .filter(|r| r.channel.is_none_or(|c| c == channel) && purpose.covered_by(&r.purpose))
        .max_by(|a, b| {
            a.recorded_at
                .cmp(&b.recorded_at)
                .then_with(|| a.id.cmp(&b.id))
        });
    let scope = |r: &ConsentRecord| {
        let ch = r
            .channel
            .map_or_else(|| "all channels".to_owned(), |c| c.to_string());
        format!(
            "{} on {} ({}, {})",
            r.purpose,
            ch,
            r.source.as_str(),
            r.recorded_at
        )
    };
    match (latest, purpose) {
        (Some(r), _) if r.status == ConsentStatus::OptedOut => ConsentDecision {
            allowed: false,
            code: "opted_out",
            explanation: format!("the contact opted out of {}", scope(r)),
            record_id: Some(r.id.clone()),
        },
        (Some(r), _) => ConsentDecision {
            allowed: true,
            code: "opted_in",
            explanation: format!("the contact opted in to {}", scope(r)),
            record_id: Some(r.id.clone()),
        },
        (None, Purpose::Transactional) => ConsentDecision {
            allowed: true,
            code: "transactional_default",
            explanation: "transactional messages are sent unless the contact opted out".into(),
            record_id: None,
        },
        (None, p) => ConsentDecision {
            allowed: false,
            code: "no_opt_in",
            explanation: format!(
                "{p} messages need an opt-in on {channel}, and the contact has none"
            ),
            record_id: None,
        },
    }
}

/// The current state per (channel, purpose) pair, derived from the ledger.
pub fn current_state(ledger: &[ConsentRecord]) -> Vec<ConsentRecord> {
    let mut latest: Vec<ConsentRecord> = Vec::new();
    for r in ledger {
        match latest
            .iter_mut()
            .find(|l| l.channel == r.channel && l.purpose == r.purpose)
        {
            Some(l) if (r.recorded_at, &r.id) > (l.recorded_at, &l.id) => *l = r.clone(),
            Some(_) => {}
            None => latest.push(r.clone()),
        }
    }
    latest.sort_by(|a, b| (a.channel, &a.purpose).cmp(&(b.channel, &b.purpose)));
    latest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        n: i64,
        channel: Option<ChannelKind>,
        purpose: &str,
        status: ConsentStatus,
    ) -> ConsentRecord {
        ConsentRecord {
            id: format!("c{n}"),
            contact_id: "k".into(),
            channel,
            purpose: Purpose::parse(purpose).unwrap(),
            status,
            source: ConsentSource::Api,
            proof: None,
            recorded_at: jiff::Timestamp::from_second(1_700_000_000 + n).unwrap(),
        }
    }
    use ChannelKind::*;
    use ConsentStatus::*;

    #[test]
    fn marketing_needs_an_opt_in_for_that_channel() {
        let d = may_send(&[], Sms, &Purpose::Marketing);
        assert!(!d.allowed);
        assert_eq!(d.code, "no_opt_in");
        let ledger = [rec(1, Some(Whatsapp), "marketing", OptedIn)];
        assert!(!may_send(&ledger, Sms, &Purpose::Marketing).allowed);
        assert!(may_send(&ledger, Whatsapp, &Purpose::Marketing).allowed);
    }

    #[test]
    fn transactional_goes_unless_opted_out_of_everything() {
        assert_eq!(
            may_send(&[], Sms, &Purpose::Transactional).code,
            "transactional_default"
        );
        let marketing_out = [rec(1, None, "marketing", OptedOut)];
        assert!(may_send(&marketing_out, Sms, &Purpose::Transactional).allowed);
        let all_out = [rec(1, None, "all", OptedOut)];
        let d = may_send(&all_out, Sms, &Purpose::Transactional);
        assert!(!d.allowed);
        assert_eq!(d.record_id.as_deref(), Some("c1"));
        assert!(
            d.explanation.contains("opted out of all on all channels"),
            "{}",
            d.explanation
        );
    }

    #[test]
    fn the_latest_applicable_record_wins() {
        let ledger = [
            rec(1, Some(Sms), "marketing", OptedIn),
            rec(2, None, "all", OptedOut),
        ];
        assert!(!may_send(&ledger, Sms, &Purpose::Marketing).allowed);
        let ledger = [
            rec(1, None, "all", OptedOut),
            rec(2, Some(Sms), "marketing", OptedIn),
        ];
        assert!(may_send(&ledger, Sms, &Purpose::Marketing).allowed);
        assert!(!may_send(&ledger, Email, &Purpose::Marketing).allowed);
    }

    #[test]
    fn topics_are_covered_by_marketing_and_their_own_records() {
        let newsletter = Purpose::parse("newsletter").unwrap();
        assert!(!may_send(&[], Email, &newsletter).allowed);
        assert!(may_send(&[rec(1, None, "marketing", OptedIn)], Email, &newsletter).allowed);
        let ledger = [
            rec(1, None, "marketing", OptedIn),
            rec(2, Some(Email), "newsletter", OptedOut),
        ];
        assert!(!may_send(&ledger, Email, &newsletter).allowed);
        assert!(may_send(&ledger, Email, &Purpose::Marketing).allowed);
    }

    #[test]
    fn purposes_parse_with_clear_errors() {
        assert!(Purpose::parse("Promo Codes").is_err());
        assert_eq!(Purpose::parse("marketing").unwrap(), Purpose::Marketing);
    }

    #[test]
    fn current_state_keeps_the_latest_per_pair() {
        let ledger = [
            rec(1, Some(Sms), "marketing", OptedIn),
            rec(3, Some(Sms), "marketing", OptedOut),
            rec(2, None, "all", OptedOut),
        ];
        let state = current_state(&ledger);
        assert_eq!(state.len(), 2);
        let sms = state.iter().find(|r| r.channel == Some(Sms)).unwrap();
        assert_eq!(sms.status, OptedOut);
    }
}
