//! Meta's webhook signature: `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the
//! raw request body keyed with the app secret.
//!
//! It must be checked on the bytes as they arrived, before any parsing: a body re-encoded
//! from parsed JSON would not match. The comparison is constant-time (hmac's
//! `verify_slice`), so the answer's timing says nothing about how much of a forged
//! signature was right.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header Meta signs its webhooks with.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

type HmacSha256 = Hmac<Sha256>;

/// Why a webhook's signature was not accepted. All three mean: answer 401, store nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request has no `X-Hub-Signature-256` header")]
    Missing,
    #[error("the `X-Hub-Signature-256` header is not `sha256=` and 64 hex digits")]
    Malformed,
    #[error("the `X-Hub-Signature-256` header does not match the body and the app secret")]
    Mismatch,
}

/// Checks `header` (the value of `X-Hub-Signature-256`, if any) against `body`.
pub fn verify(app_secret: &str, header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let (scheme, digest) = header.split_once('=').ok_or(SignatureError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("sha256") {
        return Err(SignatureError::Malformed);
    }
    let expected = hex::decode(digest).map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    keyed(app_secret.as_bytes(), body)
        .ok_or(SignatureError::Mismatch)?
        .verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

impl super::WhatsAppConfig {
    /// Checks a webhook's `X-Hub-Signature-256` header against this channel's app secret.
    pub fn verify_signature(
        &self,
        header: Option<&str>,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        verify(self.app_secret(), header, body)
    }
}

/// The header value Meta would send for `body`: for tests and for tools that replay
/// webhooks.
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    let digest = keyed(app_secret.as_bytes(), body)
        .map(|mac| hex::encode(mac.finalize().into_bytes()))
        .unwrap_or_default();
    format!("sha256={digest}")
}

/// An HMAC-SHA256 over `data`. HMAC takes keys of any length (longer ones are hashed
/// first), so this is never `None`; callers still fail closed if it were.
pub(crate) fn keyed(key: &[u8], data: &[u8]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    mac.update(data);
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "app-secret";
    const BODY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[]}"#;

    #[test]
    fn the_signature_meta_computes_is_accepted() {
        let header = sign(SECRET, BODY);
        assert!(header.starts_with("sha256="));
        assert_eq!(verify(SECRET, Some(&header), BODY), Ok(()));
        let upper = format!("SHA256={}", header["sha256=".len()..].to_ascii_uppercase());
        assert_eq!(
            verify(SECRET, Some(&upper), BODY),
            Ok(()),
            "hex case does not matter"
        );
    }

    #[test]
    fn a_missing_header_is_told_apart_from_a_malformed_one() {
        assert_eq!(verify(SECRET, None, BODY), Err(SignatureError::Missing));
        for bad in ["", "sha256", "sha1=abcd", "sha256=zz", "sha256=abcd"] {
            assert_eq!(
                verify(SECRET, Some(bad), BODY),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn another_secret_or_a_changed_body_is_a_mismatch() {
        let header = sign(SECRET, BODY);
        assert_eq!(
            verify("other-secret", Some(&header), BODY),
            Err(SignatureError::Mismatch)
        );
        let mut changed = BODY.to_vec();
        changed.push(b' ');
        assert_eq!(
            verify(SECRET, Some(&header), &changed),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_digest_matches_a_known_hmac_sha256_vector() {
        // RFC 4231 test case 2.
        let header = sign("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            header,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
