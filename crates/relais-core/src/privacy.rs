//! GDPR rules: what an erased person leaves behind (placeholders, a keyed digest of each
//! address so that a later import cannot bring them back silently) and how long a tenant
//! keeps message content (the `retention` settings section).
//!
//! The digest is an HMAC-SHA256 under a per-tenant secret, never the address itself: a
//! plain hash of a phone number is reversed by trying the ~10⁹ numbers of a country.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The store key of the `retention` settings section.
pub const RETENTION_KEY: &str = "retention";

/// What an erased or purged address, text or body reads as afterwards.
pub const ERASED: &str = "[erased]";

/// The content (as stored JSON) of an outbound message whose body was erased or purged:
/// still a valid text content, so the message reads back with its status and channel.
pub const ERASED_CONTENT: &str = r#"{"text":"[erased]"}"#;

/// The normal form of an address before it is digested: identities are already
/// normalised when parsed (E.164 numbers, lower-case emails); this also folds case and
/// spaces so that `Ana@Example.com ` and `ana@example.com` are one person.
pub fn normalise_address(address: &str) -> String {
    address.trim().to_lowercase()
}

/// The keyed digest of `address` under the tenant's `secret`, as hex.
pub fn suppression_digest(secret: &[u8], address: &str) -> String {
    hex::encode(hmac_sha256(secret, normalise_address(address).as_bytes()))
}

/// HMAC (RFC 2104) over SHA-256.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// A tenant's retention policy: after how many days each kind of content is purged.
/// `null` (the default) keeps it forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionPolicy {
    /// Bodies of outbound messages in a final status (the message row stays, with its
    /// status, channel and times; its content becomes `[erased]`).
    pub outbound_bodies_days: Option<u32>,
    /// Text, provider payload and NLU annotations of inbound messages.
    pub inbound_content_days: Option<u32>,
    /// Uploaded media (attachments), deleted whole.
    pub attachments_days: Option<u32>,
}

/// The instants before which each kind of content goes, `None` for kept forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionCutoffs {
    pub outbound_bodies_before: Option<Timestamp>,
    pub inbound_content_before: Option<Timestamp>,
    pub attachments_before: Option<Timestamp>,
}

impl RetentionPolicy {
    /// The longest period accepted: 100 years.
    pub const MAX_DAYS: u32 = 36_500;

    /// Refuses a period of 0 days (it would purge content as it arrives) or over
    /// [`RetentionPolicy::MAX_DAYS`]; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        for (name, days) in [
            ("outbound_bodies_days", self.outbound_bodies_days),
            ("inbound_content_days", self.inbound_content_days),
            ("attachments_days", self.attachments_days),
        ] {
            if let Some(d) = days
                && (d == 0 || d > Self::MAX_DAYS)
            {
                return Err(format!(
                    "{name} must be between 1 and {} days, or null to keep forever",
                    Self::MAX_DAYS
                ));
            }
        }
        Ok(())
    }

    /// Whether anything is ever purged.
    pub fn purges(&self) -> bool {
        self.outbound_bodies_days.is_some()
            || self.inbound_content_days.is_some()
            || self.attachments_days.is_some()
    }

    pub fn cutoffs(&self, now: Timestamp) -> RetentionCutoffs {
        let before = |days: Option<u32>| {
            days.and_then(|d| {
                now.checked_sub(SignedDuration::from_hours(i64::from(d) * 24))
                    .ok()
            })
        };
        RetentionCutoffs {
            outbound_bodies_before: before(self.outbound_bodies_days),
            inbound_content_before: before(self.inbound_content_days),
            attachments_before: before(self.attachments_days),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn one_address_written_two_ways_has_one_digest_and_the_secret_matters() {
        let a = suppression_digest(b"k1", "Ana@Example.com ");
        assert_eq!(a, suppression_digest(b"k1", "ana@example.com"));
        assert_ne!(a, suppression_digest(b"k2", "ana@example.com"));
        assert!(!a.contains("ana"));
    }

    #[test]
    fn the_default_keeps_everything_and_periods_give_cutoffs() {
        let now: Timestamp = "2026-12-05T10:00:00Z".parse().unwrap();
        assert!(!RetentionPolicy::default().purges());
        assert_eq!(
            RetentionPolicy::default().cutoffs(now),
            RetentionCutoffs::default()
        );
        let p: RetentionPolicy = serde_json::from_str(r#"{"outbound_bodies_days": 30}"#).unwrap();
        assert_eq!(
            p.cutoffs(now).outbound_bodies_before,
            Some("2026-11-05T10:00:00Z".parse().unwrap())
        );
        assert!(p.check().is_ok());
        let zero: RetentionPolicy = serde_json::from_str(r#"{"attachments_days": 0}"#).unwrap();
        assert!(zero.check().unwrap_err().contains("attachments_days"));
        assert!(serde_json::from_str::<RetentionPolicy>(r#"{"bodies": 3}"#).is_err());
    }
}
