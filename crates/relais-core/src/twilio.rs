//! The names Twilio's Messages API gives to what Relais already has: account SIDs
//! (`AC` + 32 hex digits, one per tenant), message SIDs (`SM` + the 32 hex digits of the
//! message's UUIDv7, so a SID and a Relais id name each other without a table), the
//! statuses and error codes a Twilio client expects, and the RFC 2822 dates of its JSON.

use crate::status::MessageStatus;
use jiff::Timestamp;

/// What a message SID starts with.
pub const MESSAGE_SID_PREFIX: &str = "SM";
/// What an account SID starts with.
pub const ACCOUNT_SID_PREFIX: &str = "AC";

/// A tenant's Twilio account SID: `AC` followed by 32 lowercase hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountSid(String);

/// Text that is not a SID of the kind asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not {what} (`{prefix}` followed by 32 hexadecimal digits)")]
pub struct BadSid {
    pub given: String,
    pub what: &'static str,
    pub prefix: &'static str,
}

fn hex32(rest: &str) -> bool {
    rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit())
}

impl AccountSid {
    pub fn parse(text: &str) -> Result<Self, BadSid> {
        match text.strip_prefix(ACCOUNT_SID_PREFIX) {
            Some(rest) if hex32(rest) => Ok(AccountSid(format!(
                "{ACCOUNT_SID_PREFIX}{}",
                rest.to_ascii_lowercase()
            ))),
            _ => Err(BadSid {
                given: text.chars().take(64).collect(),
                what: "an account SID",
                prefix: ACCOUNT_SID_PREFIX,
            }),
        }
    }

    /// A new random account SID.
    pub fn generate() -> Self {
        let bytes: [u8; 16] = rand::random();
        AccountSid(format!("{ACCOUNT_SID_PREFIX}{}", hex::encode(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AccountSid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a Messaging Service SID starts with.
pub const SERVICE_SID_PREFIX: &str = "MG";

/// A new Messaging Service SID: `MG` followed by 32 lowercase hexadecimal digits.
pub fn generate_service_sid() -> String {
    let bytes: [u8; 16] = rand::random();
    format!("{SERVICE_SID_PREFIX}{}", hex::encode(bytes))
}

/// The sender of a service's pool that `recipient` gets: always the same one for the same
/// recipient while the pool is the same (sticky), spread evenly across recipients.
pub fn sticky_sender<'a>(senders: &'a [String], recipient: &str) -> Option<&'a str> {
    use sha2::{Digest, Sha256};
    if senders.is_empty() {
        return None;
    }
    let digest = Sha256::digest(recipient.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let index = u64::from_be_bytes(first) % senders.len() as u64;
    senders.get(index as usize).map(String::as_str)
}

/// A new auth token: 32 lowercase hexadecimal digits, as Twilio's.
pub fn generate_auth_token() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// The SID of the message with Relais id `id` (a UUID); `None` for an id that is not one.
pub fn message_sid(id: &str) -> Option<String> {
    uuid::Uuid::try_parse(id)
        .ok()
        .map(|u| format!("{MESSAGE_SID_PREFIX}{}", u.simple()))
}

/// The Relais id a message SID names.
pub fn message_id_of_sid(sid: &str) -> Result<String, BadSid> {
    let bad = || BadSid {
        given: sid.chars().take(64).collect(),
        what: "a message SID",
        prefix: MESSAGE_SID_PREFIX,
    };
    let rest = sid.strip_prefix(MESSAGE_SID_PREFIX).ok_or_else(bad)?;
    if !hex32(rest) {
        return Err(bad());
    }
    uuid::Uuid::try_parse(rest)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| bad())
}

/// A message's status as Twilio names it, with the Twilio error code that explains a
/// failure: `rejected` (consent) is 21610, `expired` (past `ValidityPeriod`) is 30001,
/// `undelivered` 30003 and `failed` 30008.
pub fn status_of(status: MessageStatus) -> (&'static str, Option<u32>) {
    match status {
        MessageStatus::Accepted | MessageStatus::Queued => ("queued", None),
        // Held by the content checks for review: Twilio's name for a message it took but
        // has not queued yet.
        MessageStatus::Held => ("accepted", None),
        MessageStatus::Scheduled => ("scheduled", None),
        MessageStatus::Sending => ("sending", None),
        MessageStatus::Sent => ("sent", None),
        MessageStatus::Delivered => ("delivered", None),
        MessageStatus::Read => ("read", None),
        MessageStatus::Undelivered => ("undelivered", Some(30003)),
        MessageStatus::Failed => ("failed", Some(30008)),
        MessageStatus::Rejected => ("failed", Some(21610)),
        MessageStatus::Expired => ("failed", Some(30001)),
        MessageStatus::Canceled => ("canceled", None),
    }
}

/// Whether a message went as far as Twilio follows it: delivered, or failed for good.
/// No status callback comes after it (a `read` after `delivered` is not called back),
/// and only then may its body be redacted or the message deleted.
pub fn finished(status: MessageStatus) -> bool {
    status.is_final() || status.is_delivered()
}

/// An instant as Twilio's JSON writes it: `Sat, 05 Dec 2026 11:30:00 +0000`.
pub fn rfc2822(at: Timestamp) -> String {
    // Twilio pads the day to two digits, as Python's `email.utils.formatdate` does.
    at.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_sid_and_a_relais_id_name_each_other() {
        let id = "01938a2b-7c4d-7e8f-9a0b-1c2d3e4f5a6b";
        let sid = message_sid(id).unwrap_or_default();
        assert_eq!(sid, "SM01938a2b7c4d7e8f9a0b1c2d3e4f5a6b");
        assert_eq!(message_id_of_sid(&sid).ok().as_deref(), Some(id));
        assert!(message_id_of_sid("SMnothex").is_err());
        assert!(message_id_of_sid("MM01938a2b7c4d7e8f9a0b1c2d3e4f5a6b").is_err());
        assert_eq!(message_sid("not-a-uuid"), None);
    }

    #[test]
    fn an_account_sid_is_ac_and_32_hex_digits() {
        let sid = AccountSid::generate();
        assert_eq!(AccountSid::parse(sid.as_str()), Ok(sid.clone()));
        assert_eq!(sid.as_str().len(), 34);
        assert!(AccountSid::parse("AC123").is_err());
        assert!(AccountSid::parse("SM0123456789abcdef0123456789abcdef").is_err());
        assert_eq!(
            AccountSid::parse("AC0123456789ABCDEF0123456789ABCDEF")
                .map(|s| s.to_string())
                .ok()
                .as_deref(),
            Some("AC0123456789abcdef0123456789abcdef")
        );
    }

    #[test]
    fn failures_carry_the_twilio_code_that_explains_them() {
        assert_eq!(status_of(MessageStatus::Rejected), ("failed", Some(21610)));
        assert_eq!(status_of(MessageStatus::Accepted), ("queued", None));
        assert_eq!(status_of(MessageStatus::Expired), ("failed", Some(30001)));
        assert!(finished(MessageStatus::Delivered));
        assert!(!finished(MessageStatus::Sent));
    }

    #[test]
    fn a_recipient_keeps_its_sender_and_recipients_spread_over_the_pool() {
        let pool: Vec<String> = ["+15005550006", "+15005550007", "+15005550008"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let first = sticky_sender(&pool, "+33612345678");
        assert_eq!(first, sticky_sender(&pool, "+33612345678"));
        let mut used = std::collections::HashSet::new();
        for n in 0..100 {
            used.extend(sticky_sender(&pool, &format!("+336{n:08}")));
        }
        assert_eq!(used.len(), 3);
        assert_eq!(sticky_sender(&[], "+33612345678"), None);
        assert!(generate_service_sid().starts_with("MG"));
    }

    #[test]
    fn dates_are_written_as_rfc_2822_in_utc() {
        let at: Timestamp = "2026-12-05T11:30:00Z".parse().unwrap_or_default();
        assert_eq!(rfc2822(at), "Sat, 05 Dec 2026 11:30:00 +0000");
    }
}
