//! A tenant's senders and how each kind is verified (`docs/trust.md`):
//!
//! - a phone number gets a code by message: [`CODE_DIGITS`] digits, valid for
//!   [`CODE_VALIDITY`], at most [`CODE_ATTEMPTS`] tries, kept only as a digest and
//!   compared in constant time;
//! - an email domain publishes a DNS TXT record `relais-verification=<token>`;
//! - an alphanumeric sender ID or a WhatsApp display name cannot receive anything: an
//!   admin of the tenant approves it, after checking the registration papers (carriers and
//!   Meta ask for them too).
//!
//! Time and randomness come in as arguments.

use crate::phone::normalize_phone;
use crate::sender::Sender;
use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How many digits a verification code has.
pub const CODE_DIGITS: usize = 6;
/// How long a code may be used: long enough to read an SMS that waited, short enough that
/// 5 guesses among 10^6 codes stay a 1-in-200,000 chance per code sent.
pub const CODE_VALIDITY: SignedDuration = SignedDuration::from_mins(10);
/// Wrong codes allowed per code sent; the next try needs a new code.
pub const CODE_ATTEMPTS: u32 = 5;
/// The TXT record's prefix: `relais-verification=<token>`.
pub const TXT_PREFIX: &str = "relais-verification=";

/// What a sender is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderKind {
    PhoneNumber,
    AlphanumericId,
    WhatsappName,
    EmailDomain,
}

/// How a kind of sender is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A code sent to it, typed back.
    Code,
    /// A DNS TXT record on the domain.
    DnsTxt,
    /// An admin's approval.
    Approval,
}

impl SenderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SenderKind::PhoneNumber => "phone_number",
            SenderKind::AlphanumericId => "alphanumeric_id",
            SenderKind::WhatsappName => "whatsapp_name",
            SenderKind::EmailDomain => "email_domain",
        }
    }

    pub fn parse(raw: &str) -> Option<SenderKind> {
        [
            SenderKind::PhoneNumber,
            SenderKind::AlphanumericId,
            SenderKind::WhatsappName,
            SenderKind::EmailDomain,
        ]
        .into_iter()
        .find(|k| k.as_str() == raw)
    }

    pub fn method(self) -> Method {
        match self {
            SenderKind::PhoneNumber => Method::Code,
            SenderKind::EmailDomain => Method::DnsTxt,
            SenderKind::AlphanumericId | SenderKind::WhatsappName => Method::Approval,
        }
    }
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Code => "code",
            Method::DnsTxt => "dns_txt",
            Method::Approval => "approval",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SenderValueError {
    #[error("not a phone number: {0}")]
    Phone(String),
    #[error("{0}")]
    Alphanumeric(String),
    #[error("an alphanumeric sender ID holds at least one letter (a number is a `phone_number`)")]
    NoLetter,
    #[error("a WhatsApp display name has 3 to 64 characters")]
    DisplayName,
    #[error("not a domain name (write `example.fr`, without `@`, scheme or path)")]
    Domain,
    #[error("a DKIM selector is letters, digits, `-`, `_` and `.`, up to 63 characters")]
    Selector,
    #[error("only an `email_domain` has a DKIM selector")]
    SelectorNotDomain,
}

/// A sender's value in its one written form: E.164 for a number, the ID as carriers show
/// it, the display name trimmed, the domain lowercased.
pub fn normalize_value(kind: SenderKind, raw: &str) -> Result<String, SenderValueError> {
    let raw = raw.trim();
    match kind {
        SenderKind::PhoneNumber => normalize_phone(raw, None)
            .map(|p| p.into_string())
            .map_err(|e| SenderValueError::Phone(e.to_string())),
        SenderKind::AlphanumericId => {
            let sender =
                Sender::parse(raw).map_err(|e| SenderValueError::Alphanumeric(e.to_string()))?;
            if !sender.as_str().chars().any(|c| c.is_ascii_alphabetic()) {
                return Err(SenderValueError::NoLetter);
            }
            Ok(sender.into_string())
        }
        SenderKind::WhatsappName => {
            let n = raw.chars().count();
            if !(3..=64).contains(&n) || raw.chars().any(char::is_control) {
                return Err(SenderValueError::DisplayName);
            }
            Ok(raw.to_owned())
        }
        SenderKind::EmailDomain => {
            let domain = raw.trim_end_matches('.').to_ascii_lowercase();
            let labels: Vec<&str> = domain.split('.').collect();
            let good = labels.len() >= 2
                && domain.len() <= 253
                && labels.iter().all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if good {
                Ok(domain)
            } else {
                Err(SenderValueError::Domain)
            }
        }
    }
}

/// A DKIM selector as given (`s1`, `google`, `k1._domainkey` is refused: the selector only).
pub fn check_selector(raw: &str) -> Result<String, SenderValueError> {
    let s = raw.trim();
    if s.is_empty()
        || s.len() > 63
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(SenderValueError::Selector);
    }
    Ok(s.to_owned())
}

/// A new verification code, as sent, and its digest, as kept.
pub fn new_code(rng: &mut impl Rng) -> (String, String) {
    let code: String = (0..CODE_DIGITS)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect();
    let digest = code_digest(&code);
    (code, digest)
}

/// The digest a code is kept as.
pub fn code_digest(code: &str) -> String {
    hex::encode(Sha256::digest(code.trim().as_bytes()))
}

/// A new token for a domain's TXT record.
pub fn new_token(rng: &mut impl Rng) -> String {
    let bytes: [u8; 16] = rng.r#gen();
    hex::encode(bytes)
}

/// The TXT record a domain publishes to be verified with `token`.
pub fn txt_record(token: &str) -> String {
    format!("{TXT_PREFIX}{token}")
}

/// Whether one of a domain's TXT records is `relais-verification=<token>` (spaces around
/// it, as some DNS consoles add, do not matter).
pub fn txt_verifies(records: &[String], token: &str) -> bool {
    let wanted = txt_record(token);
    records
        .iter()
        .any(|r| constant_time_eq(r.trim().as_bytes(), wanted.as_bytes()))
}

/// A code waiting to be typed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCode {
    pub digest: String,
    pub expires_at: Timestamp,
    /// Wrong tries so far.
    pub attempts: u32,
}

/// Why a code was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("no code was sent; ask for one first")]
    NoCode,
    #[error("the code expired; ask for a new one")]
    Expired,
    #[error("too many wrong codes; ask for a new one")]
    TooManyAttempts,
    #[error("wrong code")]
    Wrong,
}

/// Checks a code typed back against the pending one, at `now`. The digest is compared in
/// constant time; the caller counts a `Wrong` as a try.
pub fn check_code(
    pending: Option<&PendingCode>,
    submitted: &str,
    now: Timestamp,
) -> Result<(), CodeError> {
    let pending = pending.ok_or(CodeError::NoCode)?;
    if pending.attempts >= CODE_ATTEMPTS {
        return Err(CodeError::TooManyAttempts);
    }
    if now >= pending.expires_at {
        return Err(CodeError::Expired);
    }
    if constant_time_eq(code_digest(submitted).as_bytes(), pending.digest.as_bytes()) {
        Ok(())
    } else {
        Err(CodeError::Wrong)
    }
}

/// Equality whose time depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn values_are_kept_in_one_form() {
        assert_eq!(
            normalize_value(SenderKind::PhoneNumber, " +33 6 12 34 56 78 ").unwrap(),
            "+33612345678"
        );
        assert_eq!(
            normalize_value(SenderKind::AlphanumericId, "MaBanque").unwrap(),
            "MaBanque"
        );
        assert_eq!(
            normalize_value(SenderKind::AlphanumericId, "38200"),
            Err(SenderValueError::NoLetter)
        );
        assert_eq!(
            normalize_value(SenderKind::EmailDomain, "Mail.MaBanque.FR.").unwrap(),
            "mail.mabanque.fr"
        );
        assert_eq!(
            normalize_value(SenderKind::EmailDomain, "x@mabanque.fr"),
            Err(SenderValueError::Domain)
        );
        assert!(normalize_value(SenderKind::WhatsappName, "Ma Banque").is_ok());
        assert!(check_selector("s1").is_ok() && check_selector("a b").is_err());
    }

    #[test]
    fn the_right_code_verifies_before_it_expires() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (code, digest) = new_code(&mut rng);
        assert_eq!(code.len(), CODE_DIGITS);
        let pending = PendingCode {
            digest,
            expires_at: t("2026-12-05T10:10:00Z"),
            attempts: 0,
        };
        assert_eq!(
            check_code(Some(&pending), &code, t("2026-12-05T10:00:00Z")),
            Ok(())
        );
        assert_eq!(
            check_code(Some(&pending), "000000x", t("2026-12-05T10:00:00Z")),
            Err(CodeError::Wrong)
        );
        assert_eq!(
            check_code(Some(&pending), &code, t("2026-12-05T10:10:00Z")),
            Err(CodeError::Expired)
        );
        let tried = PendingCode {
            attempts: CODE_ATTEMPTS,
            ..pending
        };
        assert_eq!(
            check_code(Some(&tried), &code, t("2026-12-05T10:00:00Z")),
            Err(CodeError::TooManyAttempts)
        );
        assert_eq!(
            check_code(None, &code, t("2026-12-05T10:00:00Z")),
            Err(CodeError::NoCode)
        );
    }

    #[test]
    fn a_domain_is_verified_by_its_txt_record() {
        let records = vec![
            "v=spf1 -all".to_owned(),
            " relais-verification=abc123 ".to_owned(),
        ];
        assert!(txt_verifies(&records, "abc123"));
        assert!(!txt_verifies(&records, "abc124"));
        assert!(!txt_verifies(&[], "abc123"));
    }
}
