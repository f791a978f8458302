//! The token of a marketing mail's one-click unsubscribe link (RFC 8058):
//! `{tenant id}.{message id}.{tag}`, the tag being the first 16 bytes of an HMAC-SHA256
//! of the two ids under a key of the server's, in unpadded base64url.
//!
//! The ids say which message (and so which contact) the link is about; the tag proves
//! that Relais wrote it: without the key, a link for another message cannot be made, and
//! a changed id does not verify. 128 bits of tag leave nothing to guess.
//!
//! The key belongs to the process, like the master key it is derived from: the engine
//! installs it ([`install`]) before any channel starts; a process that installed none
//! (a channel's own tests) gets a random one on first use.

use crate::whatsapp::signature::keyed;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use relais_core::channel::ChannelKind;
use relais_core::consent::Purpose;
use std::sync::OnceLock;

/// Bytes of the tag kept.
const TAG_BYTES: usize = 16;

/// What the MAC is made over, before the ids: a tag made for something else never
/// verifies here.
const DOMAIN: &[u8] = b"relais one-click unsubscribe v1\0";

/// The key that signs unsubscribe links.
#[derive(Clone)]
pub struct UnsubscribeKey([u8; 32]);

impl std::fmt::Debug for UnsubscribeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsubscribeKey(..)")
    }
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not of the shape Relais writes.
    #[error("this is not an unsubscribe link of this server")]
    Malformed,
    /// The shape is right, the tag is not: made up or altered.
    #[error("this unsubscribe link was not made by this server")]
    Forged,
}

/// The message a verified token is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribed {
    pub tenant_id: String,
    pub message_id: String,
}

impl Unsubscribed {
    /// The channel the person leaves: e-mail, where the link was.
    pub fn channel(&self) -> ChannelKind {
        ChannelKind::Email
    }

    /// What they leave: marketing (and so its topics), never transactional mail.
    pub fn purpose(&self) -> Purpose {
        Purpose::Marketing
    }

    /// The proof kept with the opt-out: which mail's link was followed. The same for
    /// every post of the link, so that it is recorded once.
    pub fn proof(&self) -> String {
        format!(
            "one-click unsubscribe (RFC 8058) from the e-mail of message {}",
            self.message_id
        )
    }
}

impl UnsubscribeKey {
    pub fn new(key: [u8; 32]) -> Self {
        UnsubscribeKey(key)
    }

    fn tag(&self, tenant_id: &str, message_id: &str) -> Vec<u8> {
        let Some(mut mac) = keyed(&self.0, DOMAIN) else {
            // HMAC takes keys of any length: unreachable with 32 bytes.
            return Vec::new();
        };
        mac.update(tenant_id.as_bytes());
        mac.update(b"\0");
        mac.update(message_id.as_bytes());
        mac.finalize().into_bytes()[..TAG_BYTES].to_vec()
    }

    /// The token of the link of message `message_id` of tenant `tenant_id`.
    pub fn token(&self, tenant_id: &str, message_id: &str) -> String {
        format!(
            "{tenant_id}.{message_id}.{}",
            URL_SAFE_NO_PAD.encode(self.tag(tenant_id, message_id))
        )
    }

    /// The message a token is about, when this key made it.
    pub fn verify(&self, token: &str) -> Result<Unsubscribed, TokenError> {
        let mut parts = token.split('.');
        let (Some(tenant_id), Some(message_id), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let is_id = |id: &str| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !is_id(tenant_id) || !is_id(message_id) {
            return Err(TokenError::Malformed);
        }
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        if tag.len() != TAG_BYTES {
            return Err(TokenError::Malformed);
        }
        let Some(mut mac) = keyed(&self.0, DOMAIN) else {
            return Err(TokenError::Forged);
        };
        mac.update(tenant_id.as_bytes());
        mac.update(b"\0");
        mac.update(message_id.as_bytes());
        // Compared in constant time.
        mac.verify_truncated_left(&tag)
            .map_err(|_| TokenError::Forged)?;
        Ok(Unsubscribed {
            tenant_id: tenant_id.to_owned(),
            message_id: message_id.to_owned(),
        })
    }
}

static KEY: OnceLock<UnsubscribeKey> = OnceLock::new();

/// The process's key: `init`'s when none is in use yet.
pub fn install(init: impl FnOnce() -> UnsubscribeKey) -> &'static UnsubscribeKey {
    KEY.get_or_init(init)
}

/// The process's key (a random one if none was installed before first use).
pub fn current() -> &'static UnsubscribeKey {
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        UnsubscribeKey(key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_under_its_key_only_and_not_once_altered() {
        let key = UnsubscribeKey::new([7; 32]);
        let token = key.token("tenant-1", "msg-9");
        assert_eq!(
            key.verify(&token),
            Ok(Unsubscribed {
                tenant_id: "tenant-1".into(),
                message_id: "msg-9".into()
            })
        );
        assert_eq!(
            UnsubscribeKey::new([8; 32]).verify(&token),
            Err(TokenError::Forged)
        );
        let other_message = token.replace("msg-9", "msg-8");
        assert_eq!(key.verify(&other_message), Err(TokenError::Forged));
        for malformed in ["", "a.b", "a.b.c.d", "a.b.!!!", "a b.c.AAAA", "a..AAAA"] {
            assert_eq!(
                key.verify(malformed),
                Err(TokenError::Malformed),
                "{malformed}"
            );
        }
        let short_tag = format!("tenant-1.msg-9.{}", URL_SAFE_NO_PAD.encode([0u8; 4]));
        assert_eq!(key.verify(&short_tag), Err(TokenError::Malformed));
    }
}
