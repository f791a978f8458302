//! People who answer customers: agents, the teams they belong to, how a team's
//! conversations are assigned and how urgent a waiting conversation is.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What an agent may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything in the tenant: teams, agents, every conversation.
    Admin,
    /// The conversations of their teams (and those of no team), and their own.
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Role::Admin, Role::Agent]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a team hands its waiting conversations to its agents. Either way an agent gets
/// none past their capacity, and none while they are unavailable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AssignmentRule {
    /// In turn: the agent assigned longest ago (or never) gets the next one.
    #[default]
    RoundRobin,
    /// The agent with the fewest open conversations; ties go in turn.
    LeastBusy,
    /// Nobody is assigned automatically: agents take conversations from the queue.
    Manual,
}

impl AssignmentRule {
    pub fn as_str(self) -> &'static str {
        match self {
            AssignmentRule::RoundRobin => "round_robin",
            AssignmentRule::LeastBusy => "least_busy",
            AssignmentRule::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            AssignmentRule::RoundRobin,
            AssignmentRule::LeastBusy,
            AssignmentRule::Manual,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// How urgent a waiting conversation is, as bits of one number so that the queue sorts on
/// it: urgency outranks a negative sentiment, which outranks a VIP customer; the SLA due
/// time, or without one the waiting time, breaks ties. A conversation keeps the bits its
/// customer's messages raised until an agent answers (VIP stays).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(pub i64);

impl Priority {
    pub const URGENT: i64 = 4;
    pub const NEGATIVE: i64 = 2;
    pub const VIP: i64 = 1;

    pub fn of(urgent: bool, negative: bool, vip: bool) -> Self {
        Priority(
            i64::from(urgent) * Self::URGENT
                + i64::from(negative) * Self::NEGATIVE
                + i64::from(vip) * Self::VIP,
        )
    }

    /// The reasons, most important first: `urgent`, `negative_sentiment`, `vip`.
    pub fn reasons(self) -> Vec<&'static str> {
        [
            (Self::URGENT, "urgent"),
            (Self::NEGATIVE, "negative_sentiment"),
            (Self::VIP, "vip"),
        ]
        .into_iter()
        .filter(|(bit, _)| self.0 & bit != 0)
        .map(|(_, name)| name)
        .collect()
    }
}

/// Whether a contact attribute marks a VIP: `vip` set to true, `"yes"`, `"true"`, `"oui"`
/// or a non-zero number.
pub fn is_vip(attributes: &serde_json::Map<String, serde_json::Value>) -> bool {
    match attributes.get("vip") {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
        Some(serde_json::Value::String(s)) => {
            matches!(
                s.trim().to_lowercase().as_str(),
                "yes" | "true" | "oui" | "1"
            )
        }
        _ => false,
    }
}

/// A team or canned-reply name: 1 to 64 characters, letters, digits, `-`, `_` and `.`.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a {kind} name is 1 to 64 letters, digits, `-`, `_` or `.` (got `{}`)",
            name.chars().take(80).collect::<String>()
        ))
    }
}

/// An agent's e-mail as stored and looked up: trimmed and lowercased, with one `@` between
/// non-empty parts.
pub fn normalize_email(raw: &str) -> Result<String, String> {
    let email = raw.trim().to_lowercase();
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
                && email.len() <= 254 =>
        {
            Ok(email)
        }
        _ => Err(format!(
            "`{}` is not an e-mail address",
            raw.chars().take(80).collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgency_outranks_sentiment_which_outranks_vip() {
        assert!(Priority::of(true, false, false) > Priority::of(false, true, true));
        assert!(Priority::of(false, true, false) > Priority::of(false, false, true));
        assert!(Priority::of(false, false, true) > Priority::default());
        assert_eq!(
            Priority::of(true, true, true).reasons(),
            ["urgent", "negative_sentiment", "vip"]
        );
        assert!(Priority::default().reasons().is_empty());
    }

    #[test]
    fn vip_attribute_reads_as_people_write_it() {
        let attrs = |v: serde_json::Value| match serde_json::json!({ "vip": v }) {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        };
        assert!(is_vip(&attrs(serde_json::json!(true))));
        assert!(is_vip(&attrs(serde_json::json!("Oui"))));
        assert!(is_vip(&attrs(serde_json::json!(1))));
        assert!(!is_vip(&attrs(serde_json::json!("no"))));
        assert!(!is_vip(&attrs(serde_json::json!(0))));
        assert!(!is_vip(&serde_json::Map::new()));
    }

    #[test]
    fn names_and_emails_are_checked() {
        assert!(check_name("team", "billing-fr").is_ok());
        assert!(check_name("team", "").is_err());
        assert!(check_name("team", "a b").is_err());
        assert_eq!(
            normalize_email(" Ana@Example.COM ").as_deref(),
            Ok("ana@example.com")
        );
        assert!(normalize_email("ana").is_err());
        assert!(normalize_email("a@b@c").is_err());
        assert!(normalize_email("a b@c").is_err());
    }
}
