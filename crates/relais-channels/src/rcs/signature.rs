//! Google's webhook signature: `X-Goog-Signature`, the base64 of the HMAC-SHA512 of the
//! delivered payload keyed with the agent's client token.
//!
//! What is signed is the payload Google publishes: the bytes of `message.data` once
//! base64-decoded, not the Pub/Sub envelope around them (Google's "Verify incoming
//! messages" steps and its Node.js sample hash `Buffer.from(message.data, 'base64')`).
//! So the envelope is trusted for nothing but carrying `data`, and the signature is
//! checked on those decoded bytes before they are parsed: JSON re-encoded from parsed
//! values would not match. The comparison is constant-time (hmac's `verify_slice`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use sha2::Sha512;

/// The header Google signs its webhooks with.
pub const SIGNATURE_HEADER: &str = "X-Goog-Signature";

type HmacSha512 = Hmac<Sha512>;

/// Standard base64 with or without its padding: Google pads, a relay may not.
pub(super) const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a webhook's signature was not accepted. All three mean: refuse, store nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request has no `X-Goog-Signature` header")]
    Missing,
    #[error("the `X-Goog-Signature` header is not the base64 of a 64-byte HMAC-SHA512")]
    Malformed,
    #[error("the `X-Goog-Signature` header does not match the payload and the client token")]
    Mismatch,
}

/// Checks `header` (the value of `X-Goog-Signature`, if any) against `payload` (the
/// decoded `message.data`).
pub fn verify(
    client_token: &str,
    header: Option<&str>,
    payload: &[u8],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let expected = LENIENT_BASE64
        .decode(header)
        .map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    keyed(client_token.as_bytes(), payload)
        .ok_or(SignatureError::Mismatch)?
        .verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The header value Google would send for `payload`: for tests and for tools that replay
/// webhooks.
pub fn sign(client_token: &str, payload: &[u8]) -> String {
    keyed(client_token.as_bytes(), payload)
        .map(|mac| STANDARD.encode(mac.finalize().into_bytes()))
        .unwrap_or_default()
}

/// An HMAC-SHA512 over `data`. HMAC takes keys of any length, so this is never `None`;
/// callers still fail closed if it were.
fn keyed(key: &[u8], data: &[u8]) -> Option<HmacSha512> {
    let mut mac = HmacSha512::new_from_slice(key).ok()?;
    mac.update(data);
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "SJENCPGJESMGUFPY";
    const PAYLOAD: &[u8] = br#"{"senderPhoneNumber":"+33612345678","text":"Bonjour"}"#;

    #[test]
    fn the_signature_google_computes_is_accepted_padded_or_not() {
        let header = sign(TOKEN, PAYLOAD);
        assert_eq!(header.len(), 88, "64 bytes in padded base64");
        assert_eq!(verify(TOKEN, Some(&header), PAYLOAD), Ok(()));
        let unpadded = header.trim_end_matches('=');
        assert_eq!(verify(TOKEN, Some(unpadded), PAYLOAD), Ok(()));
    }

    #[test]
    fn a_missing_header_is_told_apart_from_a_malformed_one() {
        assert_eq!(verify(TOKEN, None, PAYLOAD), Err(SignatureError::Missing));
        for bad in ["", "not base64!", "c2hvcnQ=", &hex::encode([0u8; 64])] {
            assert_eq!(
                verify(TOKEN, Some(bad), PAYLOAD),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn another_token_or_a_changed_payload_is_a_mismatch() {
        let header = sign(TOKEN, PAYLOAD);
        assert_eq!(
            verify("OTHERTOKEN", Some(&header), PAYLOAD),
            Err(SignatureError::Mismatch)
        );
        let mut changed = PAYLOAD.to_vec();
        changed.push(b' ');
        assert_eq!(
            verify(TOKEN, Some(&header), &changed),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_digest_matches_a_known_hmac_sha512_vector() {
        // RFC 4231 test case 2, in base64.
        let expected = STANDARD.encode(
            hex::decode(
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            )
            .unwrap(),
        );
        assert_eq!(sign("Jefe", b"what do ya want for nothing?"), expected);
    }
}
