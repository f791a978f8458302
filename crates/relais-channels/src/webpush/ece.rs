//! RFC 8291 message encryption for Web Push, with the `aes128gcm` content coding of
//! RFC 8188: one record, sealed for one subscription's keys.
//!
//! The steps (RFC 8291 §3.3–3.4):
//! - `ecdh_secret` = ECDH(ephemeral private key, the subscription's `p256dh`);
//! - `IKM` = HKDF-SHA256(salt = the subscription's `auth`, ikm = `ecdh_secret`,
//!   info = `"WebPush: info\0" || ua_public || as_public`, 32 bytes);
//! - `CEK` = HKDF(salt, IKM, `"Content-Encoding: aes128gcm\0"`, 16 bytes) and
//!   `NONCE` = HKDF(salt, IKM, `"Content-Encoding: nonce\0"`, 12 bytes);
//! - the body is `salt(16) || rs(4) = 4096 || idlen(1) = 65 || as_public(65)` followed by
//!   AES-128-GCM(plaintext || 0x02).
//!
//! Invariant: a fresh ephemeral key and salt for every message ([`encrypt`]); the fixed
//! ones of [`encrypt_with`] exist so that RFC 8291's Appendix A can be reproduced.

use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::agreement::{self, ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

/// The record size written in the header: one record of up to 4096 bytes.
pub const RECORD_SIZE: u32 = 4096;

/// Bytes of the header before the ciphertext: salt, rs, idlen, the 65-byte key id.
pub const HEADER_LEN: usize = 16 + 4 + 1 + 65;

/// The AES-GCM tag and the padding delimiter each record carries.
const OVERHEAD: usize = 16 + 1;

/// The longest plaintext one record holds; push services take bodies of 4096 bytes at
/// most (RFC 8291 §4), header included, so this is also the most a message may carry.
pub const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - HEADER_LEN - OVERHEAD;

/// Why a payload could not be sealed for a subscription.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EceError {
    #[error("the payload is {0} bytes; one Web Push message carries at most {MAX_PLAINTEXT}")]
    TooLarge(usize),
    #[error("the subscription's p256dh is not a P-256 public key")]
    BadPublicKey,
    #[error("the system's random generator failed")]
    Random,
    #[error("the encryption failed")]
    Crypto,
}

/// The keys of a push subscription (`PushSubscription.getKey("p256dh")` and `"auth"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverKeys {
    /// The user agent's public key: an uncompressed P-256 point (65 bytes, `0x04 || x || y`).
    pub p256dh: [u8; 65],
    /// The authentication secret (16 bytes).
    pub auth: [u8; 16],
}

/// Seals `plaintext` for `keys` with a fresh ephemeral key and salt.
pub fn encrypt(plaintext: &[u8], keys: &ReceiverKeys) -> Result<Vec<u8>, EceError> {
    let rng = SystemRandom::new();
    let mut salt = [0u8; 16];
    rng.fill(&mut salt).map_err(|_| EceError::Random)?;
    let ephemeral =
        EphemeralPrivateKey::generate(&ECDH_P256, &rng).map_err(|_| EceError::Random)?;
    encrypt_with(plaintext, keys, salt, ephemeral)
}

/// Seals `plaintext` for `keys` with the given `salt` and ephemeral application-server key.
pub fn encrypt_with(
    plaintext: &[u8],
    keys: &ReceiverKeys,
    salt: [u8; 16],
    ephemeral: EphemeralPrivateKey,
) -> Result<Vec<u8>, EceError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(EceError::TooLarge(plaintext.len()));
    }
    let as_public = ephemeral
        .compute_public_key()
        .map_err(|_| EceError::Crypto)?;
    let as_public = as_public.as_ref();
    let ua_public = UnparsedPublicKey::new(&ECDH_P256, &keys.p256dh[..]);
    let ikm = agreement::agree_ephemeral(ephemeral, &ua_public, |ecdh_secret| {
        let mut info = Vec::with_capacity(14 + 65 + 65);
        info.extend_from_slice(b"WebPush: info\0");
        info.extend_from_slice(&keys.p256dh);
        info.extend_from_slice(as_public);
        expand::<32>(&keys.auth, ecdh_secret, &info)
    })
    .map_err(|_| EceError::BadPublicKey)??;
    let cek = expand::<16>(&salt, &ikm, b"Content-Encoding: aes128gcm\0")?;
    let nonce = expand::<12>(&salt, &ikm, b"Content-Encoding: nonce\0")?;

    let mut record = Vec::with_capacity(plaintext.len() + OVERHEAD);
    record.extend_from_slice(plaintext);
    record.push(0x02);
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek).map_err(|_| EceError::Crypto)?);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::empty(),
        &mut record,
    )
    .map_err(|_| EceError::Crypto)?;

    let mut body = Vec::with_capacity(HEADER_LEN + record.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(as_public.len() as u8);
    body.extend_from_slice(as_public);
    body.extend_from_slice(&record);
    Ok(body)
}

/// HKDF-SHA256 (extract with `salt`, expand with `info`) to `N` bytes.
fn expand<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> Result<[u8; N], EceError> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let mut out = [0u8; N];
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(ikm)
        .expand(&[info], Len(N))
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| EceError::Crypto)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_message_has_the_aes128gcm_header_and_one_record() {
        let mut p256dh = [0u8; 65];
        let rng = SystemRandom::new();
        let ua = EphemeralPrivateKey::generate(&ECDH_P256, &rng).unwrap();
        p256dh.copy_from_slice(ua.compute_public_key().unwrap().as_ref());
        let keys = ReceiverKeys {
            p256dh,
            auth: [7; 16],
        };
        let one = encrypt(b"hello", &keys).unwrap();
        let two = encrypt(b"hello", &keys).unwrap();
        assert_eq!(one.len(), HEADER_LEN + 5 + OVERHEAD);
        assert_eq!(&one[16..21], &[0, 0, 0x10, 0, 65]);
        assert_eq!(one[21], 0x04);
        assert_ne!(one[..16], two[..16], "a new salt each time");
        assert_ne!(one[21..86], two[21..86], "a new ephemeral key each time");
        assert_eq!(
            encrypt(&vec![b'x'; MAX_PLAINTEXT + 1], &keys),
            Err(EceError::TooLarge(MAX_PLAINTEXT + 1))
        );
        assert!(encrypt(&vec![b'x'; MAX_PLAINTEXT], &keys).unwrap().len() == 4096);
        let bad = ReceiverKeys {
            p256dh: [4; 65],
            auth: [7; 16],
        };
        assert_eq!(encrypt(b"hello", &bad), Err(EceError::BadPublicKey));
    }
}
