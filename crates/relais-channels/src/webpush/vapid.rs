//! VAPID (RFC 8292): the channel's P-256 key, and the ES256 JWT that identifies it to a
//! push service, sent as `Authorization: vapid t=<jwt>, k=<public key>`.
//!
//! The key is read from `vapid_private_key`: PKCS#8 (PEM, as `openssl ecparam -genkey
//! -name prime256v1 | openssl pkcs8 -topk8 -nocrypt` prints it, or its DER in base64),
//! or the raw 32-byte private scalar in base64url (what web-push libraries print).
//! Invariants: the JWT's `aud` is the endpoint's origin, its `exp` at most 24 h ahead
//! ([`TOKEN_LIFETIME`] is 12 h), its `sub` the channel's contact; the private key never
//! shows in `Debug` output.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use std::fmt;

/// How far ahead a token expires: RFC 8292 §2 allows at most 24 hours.
pub const TOKEN_LIFETIME_SECS: i64 = 12 * 3600;

/// Why `vapid_private_key` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "an `EC PRIVATE KEY` (SEC1) PEM; convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt`"
    )]
    Sec1,
    #[error("neither base64url nor PEM")]
    Encoding,
    #[error("not a P-256 private key ({0})")]
    NotP256(&'static str),
}

/// The channel's application-server key pair.
pub struct VapidKey {
    pair: EcdsaKeyPair,
    /// The public key, base64url without padding: the `k=` of the header, and the
    /// `applicationServerKey` a page subscribes with.
    public: String,
}

impl fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VapidKey")
            .field("public", &self.public)
            .field("private", &"<redacted>")
            .finish()
    }
}

fn base64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

impl VapidKey {
    /// Reads a PKCS#8 PEM, a base64 PKCS#8 DER, or a raw base64url 32-byte scalar.
    pub fn parse(text: &str) -> Result<VapidKey, KeyError> {
        let text = text.trim();
        if text.contains("BEGIN EC PRIVATE KEY") {
            return Err(KeyError::Sec1);
        }
        let der = if text.starts_with("-----BEGIN") {
            let body: String = text
                .lines()
                .filter(|line| !line.starts_with("-----"))
                .flat_map(|line| line.trim().chars())
                .collect();
            STANDARD.decode(body).map_err(|_| KeyError::Encoding)?
        } else {
            base64url(text)
                .or_else(|| STANDARD.decode(text).ok())
                .ok_or(KeyError::Encoding)?
        };
        let rng = SystemRandom::new();
        let pair = if der.len() == 32 {
            let public = public_of(&der)?;
            EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &der,
                &public,
                &rng,
            )
            .map_err(|_| KeyError::NotP256("the scalar is out of range"))?
        } else {
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng).map_err(
                |_| KeyError::NotP256("a PKCS#8 prime256v1 key with its public key is expected"),
            )?
        };
        let public = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        Ok(VapidKey { pair, public })
    }

    /// The uncompressed public key, base64url without padding (87 characters).
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// A signed JWT for `audience` (an origin such as `https://fcm.googleapis.com`),
    /// expiring `TOKEN_LIFETIME_SECS` after `now` (Unix seconds).
    pub fn token(&self, audience: &str, subject: &str, now: i64) -> Result<String, KeyError> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": audience,
            "exp": now + TOKEN_LIFETIME_SECS,
            "sub": subject,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| KeyError::NotP256("signing failed"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }

    /// The `Authorization` header value for `audience`.
    pub fn authorization(
        &self,
        audience: &str,
        subject: &str,
        now: i64,
    ) -> Result<String, KeyError> {
        Ok(format!(
            "vapid t={}, k={}",
            self.token(audience, subject, now)?,
            self.public
        ))
    }
}

/// The public point of a raw P-256 scalar. ring computes a public key only for a key it
/// generated, so the scalar is handed to ECDH's key generation as its "random" bytes
/// (ring's fixed-output generator); an out-of-range scalar is refused there.
#[allow(deprecated)]
fn public_of(scalar: &[u8]) -> Result<Vec<u8>, KeyError> {
    let fixed = ring::test::rand::FixedSliceRandom { bytes: scalar };
    let key = ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &fixed)
        .map_err(|_| KeyError::NotP256("the scalar is out of range"))?;
    key.compute_public_key()
        .map(|public| public.as_ref().to_vec())
        .map_err(|_| KeyError::NotP256("the scalar is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    /// RFC 8291 Appendix A's application-server key, as a raw scalar and its public point.
    const RAW: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";

    #[test]
    fn a_raw_scalar_gives_its_public_key_and_a_token_that_verifies() {
        let key = VapidKey::parse(RAW).unwrap();
        assert_eq!(key.public_key(), PUBLIC);
        let jwt = key
            .token(
                "https://push.example.net",
                "mailto:ops@example.com",
                1_700_000_000,
            )
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://push.example.net");
        assert_eq!(claims["exp"], 1_700_000_000 + 12 * 3600);
        assert_eq!(claims["sub"], "mailto:ops@example.com");
        let public = URL_SAFE_NO_PAD.decode(PUBLIC).unwrap();
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &public)
            .verify(signed.as_bytes(), &signature)
            .unwrap();
        assert!(
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &public)
                .verify(b"another.message", &signature)
                .is_err()
        );
    }

    #[test]
    fn bad_keys_are_refused_and_debug_hides_the_private_key() {
        assert_eq!(
            VapidKey::parse("-----BEGIN EC PRIVATE KEY-----\nMHc=\n-----END EC PRIVATE KEY-----")
                .unwrap_err(),
            KeyError::Sec1
        );
        assert_eq!(
            VapidKey::parse("not base64 !").unwrap_err(),
            KeyError::Encoding
        );
        assert!(matches!(
            VapidKey::parse("AAAA").unwrap_err(),
            KeyError::NotP256(_)
        ));
        assert!(matches!(
            VapidKey::parse(&URL_SAFE_NO_PAD.encode([0xff; 32])).unwrap_err(),
            KeyError::NotP256(_)
        ));
        let shown = format!("{:?}", VapidKey::parse(RAW).unwrap());
        assert!(!shown.contains(RAW), "{shown}");
        assert!(shown.contains(PUBLIC));
    }

    #[test]
    fn an_openssl_pkcs8_pem_is_read() {
        // `openssl ecparam -genkey -name prime256v1 | openssl pkcs8 -topk8 -nocrypt`, and
        // its public key by `openssl ec -pubout -outform DER | tail -c 65`, in base64url.
        let pem = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQga/YvfFFjebT7qm94
NV2flsT/TfXfAgaOMWXz37EL1OahRANCAASGlrhkSyreyp1RH35NXPlGAFLaf1+/
12Nw9QsTNmXrId6O1RE7gnAtIUqSZiiU83aolcU/o25mLPov8Jv67SlY
-----END PRIVATE KEY-----
";
        let key = VapidKey::parse(pem).unwrap();
        assert_eq!(
            key.public_key(),
            "BIaWuGRLKt7KnVEffk1c-UYAUtp_X7_XY3D1CxM2Zesh3o7VETuCcC0hSpJmKJTzdqiVxT-jbmYs-i_wm_rtKVg"
        );
    }
}
