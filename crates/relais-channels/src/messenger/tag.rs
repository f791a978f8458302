//! Why a message is sent, as Meta's Send API asks every message to say (`messaging_type`,
//! and `tag` for a tagged one), and which one an agent's reply takes.
//!
//! Meta allows free-form messages for 24 hours after the customer last wrote. A reply
//! from a human agent may go later with the `HUMAN_AGENT` tag, for 7 days, once the app
//! has the Human Agent permission; bots may not use it. Past 7 days nothing opens the
//! conversation again but a new message from the customer.

use jiff::SignedDuration;
use serde_json::{Map, Value, json};

/// How long after the customer last wrote a free-form message may be sent.
pub const STANDARD_WINDOW: SignedDuration = SignedDuration::from_hours(24);

/// How long after the customer last wrote a human agent may answer with `HUMAN_AGENT`.
pub const HUMAN_AGENT_WINDOW: SignedDuration = SignedDuration::from_hours(7 * 24);

/// The messaging type (and tag) of one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessagingTag {
    /// `RESPONSE`: an answer to the customer, inside the 24-hour window.
    Response,
    /// `UPDATE`: sent on the business's own initiative, inside the 24-hour window.
    Update,
    /// `MESSAGE_TAG` with `HUMAN_AGENT`: a person's answer, up to 7 days after the
    /// customer wrote.
    HumanAgent,
}

impl MessagingTag {
    /// The `messaging_type` value.
    pub fn messaging_type(self) -> &'static str {
        match self {
            MessagingTag::Response => "RESPONSE",
            MessagingTag::Update => "UPDATE",
            MessagingTag::HumanAgent => "MESSAGE_TAG",
        }
    }

    /// The `tag` value, for tagged messages.
    pub fn tag(self) -> Option<&'static str> {
        match self {
            MessagingTag::HumanAgent => Some("HUMAN_AGENT"),
            MessagingTag::Response | MessagingTag::Update => None,
        }
    }

    /// Adds `messaging_type` (and `tag`) to a request body.
    pub(super) fn write_into(self, body: &mut Map<String, Value>) {
        body.insert("messaging_type".into(), json!(self.messaging_type()));
        if let Some(tag) = self.tag() {
            body.insert("tag".into(), json!(tag));
        }
    }
}

/// The messaging type of a human agent's reply, given how long ago the customer last
/// wrote: `RESPONSE` inside 24 hours, `HUMAN_AGENT` after.
///
/// Past 7 days it still answers `HUMAN_AGENT`: no type can send then, Meta refuses it as
/// `outside_window` (permanent), and the engine's window check should have stopped the
/// reply before. A negative age (clocks that disagree) counts as just now. Bots' replies
/// and notifications should not use this: they take `Response` or `Update`.
pub fn messaging_tag(last_inbound_age: SignedDuration) -> MessagingTag {
    if last_inbound_age < STANDARD_WINDOW {
        MessagingTag::Response
    } else {
        MessagingTag::HumanAgent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_reply_inside_24_hours_is_a_plain_response() {
        for age in [
            SignedDuration::from_secs(-30),
            SignedDuration::ZERO,
            SignedDuration::from_hours(23),
            STANDARD_WINDOW - SignedDuration::from_secs(1),
        ] {
            assert_eq!(messaging_tag(age), MessagingTag::Response, "{age:?}");
        }
    }

    #[test]
    fn an_agent_reply_after_24_hours_carries_the_human_agent_tag() {
        for age in [
            STANDARD_WINDOW,
            SignedDuration::from_hours(72),
            HUMAN_AGENT_WINDOW - SignedDuration::from_secs(1),
            // Meta refuses it past 7 days; the tag says why the reply was attempted.
            HUMAN_AGENT_WINDOW + SignedDuration::from_hours(1),
        ] {
            assert_eq!(messaging_tag(age), MessagingTag::HumanAgent, "{age:?}");
        }
    }

    #[test]
    fn the_tag_writes_metas_fields() {
        let mut body = Map::new();
        MessagingTag::HumanAgent.write_into(&mut body);
        assert_eq!(
            Value::Object(body),
            json!({"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"})
        );
        let mut body = Map::new();
        MessagingTag::Update.write_into(&mut body);
        assert_eq!(Value::Object(body), json!({"messaging_type": "UPDATE"}));
    }
}
