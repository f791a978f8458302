//! Secrets at rest: the secret fields of a channel's config (an SMPP `password`, the tokens
//! of the HTTP channels) and webhook signing secrets are sealed with ChaCha20-Poly1305 under
//! the master key before they reach the store, and opened where they are used.
//!
//! A sealed value reads `enc:v1:<base64 of nonce, ciphertext and tag>`, so it is told apart
//! from a value written before encryption, which is read as it is until [`seal_stored`]
//! seals it at the next start. The field's name is sealed in as associated data: a value
//! moved to another field does not open. A value that does not open under the key is an
//! error ([`SecretError::WrongKey`]), never garbage.
//!
//! The key belongs to the process, like its data directory: `relais serve` installs it once
//! at start ([`install`]) and whoever seals or opens — the channel routes, the SMPP
//! channels, the webhook worker that the dispatcher builds — finds it with [`current`]. A
//! process that installed none (tests, benchmarks) gets a random key of its own on first
//! use, so that nothing is ever written in plain text.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use relais_store::{Store, StoreError};
use std::sync::OnceLock;

/// What a sealed value starts with.
pub const PREFIX: &str = "enc:v1:";

/// The keys of a channel's config whose values are secrets: the SMPP password, the tokens
/// and app secrets of Meta's and Telegram's channels (docs/DESIGN.md, external contract),
/// RCS's service account key and webhook client token, and Viber's auth token.
pub const SECRET_KEYS: &[&str] = &[
    "password",
    "access_token",
    "app_secret",
    "verify_token",
    "bot_token",
    "secret_token",
    "service_account",
    "client_token",
    "auth_token",
    "inbound_secret",
    "dkim_private_key",
    "vapid_private_key",
    "private_key",
];

/// The field name a webhook's signing secret is sealed under.
pub const WEBHOOK_SECRET: &str = "webhook_secret";

/// Bytes of a ChaCha20-Poly1305 nonce.
const NONCE_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "the master key must be 32 bytes written in base64, as `openssl rand -base64 32` prints"
    )]
    BadKey,
    #[error("it does not open with this master key (sealed with another one, or altered)")]
    WrongKey,
    #[error("it starts with `enc:v1:` but is not a sealed value")]
    Malformed,
    #[error("a master key is already in use in this process")]
    AlreadyInstalled,
}

/// Seals and opens secrets under one 256-bit key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
    /// The root of the keys derived for other uses ([`SecretBox::derive`]): an HMAC of a
    /// fixed label under the master key, so that no derived key reveals the master key
    /// or another derived key.
    derivation: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

/// A config's secret field that does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {error}")]
pub struct FieldError {
    pub key: &'static str,
    pub error: SecretError,
}

impl SecretBox {
    pub fn new(key: [u8; 32]) -> Self {
        SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
            derivation: hmac_sha256(&key, b"relais derived keys v1"),
        }
    }

    /// A key for `purpose` (signing links, say), derived from the master key: the same
    /// for as long as the master key is.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        hmac_sha256(&self.derivation, purpose.as_bytes())
    }

    /// A box with a fresh random key, and that key in base64 (to write it down).
    pub fn generate() -> (Self, String) {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        (SecretBox::new(key), STANDARD.encode(key))
    }

    /// The box of a key written in base64 (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SecretError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SecretError::BadKey)?;
        Ok(SecretBox::new(key))
    }

    /// Whether a stored value is sealed (or merely looks it).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }

    /// `plaintext` sealed for the field named `field`.
    pub fn seal(&self, field: &str, plaintext: &str) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut rand::rngs::OsRng);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: field.as_bytes(),
        };
        // ChaCha20-Poly1305 refuses only messages over 256 GiB; a request body is far below.
        let sealed = self.cipher.encrypt(&nonce, payload).unwrap_or_default();
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}", STANDARD.encode(bytes))
    }

    /// The plain text of a stored value of the field `field`: opened when sealed, as it is
    /// when it was written before encryption.
    pub fn open(&self, field: &str, stored: &str) -> Result<String, SecretError> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::Malformed)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: field.as_bytes(),
                },
            )
            .map_err(|_| SecretError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| SecretError::Malformed)
    }

    /// A channel config as given through the API, with every secret field sealed (whatever
    /// it looks like: a password may start with `enc:`).
    pub fn seal_config(&self, config: &serde_json::Value) -> serde_json::Value {
        self.map_secrets(config, |key, value| Some(self.seal(key, value)))
    }

    /// A stored channel config with its secret fields opened.
    pub fn open_config(&self, config: &serde_json::Value) -> Result<serde_json::Value, FieldError> {
        let mut opened = config.clone();
        if let Some(object) = opened.as_object_mut() {
            for key in SECRET_KEYS {
                if let Some(serde_json::Value::String(value)) = object.get_mut(*key) {
                    *value = self
                        .open(key, value)
                        .map_err(|error| FieldError { key, error })?;
                }
            }
        }
        Ok(opened)
    }

    /// A stored config whose secret fields written before encryption are sealed now;
    /// `None` when there were none.
    fn seal_plain_fields(&self, config: &serde_json::Value) -> Option<serde_json::Value> {
        let mut changed = false;
        let sealed = self.map_secrets(config, |key, value| {
            (!SecretBox::is_sealed(value)).then(|| {
                changed = true;
                self.seal(key, value)
            })
        });
        changed.then_some(sealed)
    }

    fn map_secrets(
        &self,
        config: &serde_json::Value,
        mut f: impl FnMut(&'static str, &str) -> Option<String>,
    ) -> serde_json::Value {
        let mut out = config.clone();
        if let Some(object) = out.as_object_mut() {
            for key in SECRET_KEYS {
                match object.get_mut(*key) {
                    Some(serde_json::Value::String(value)) => {
                        if let Some(new) = f(key, value) {
                            *value = new;
                        }
                    }
                    // A secret given as JSON (RCS's service account key file) is sealed as
                    // its JSON text; the channel reads the text back.
                    Some(value @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => {
                        if let Some(new) = f(key, &value.to_string()) {
                            *value = serde_json::Value::String(new);
                        }
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    // HMAC takes a key of any length; `new_from_slice` cannot refuse one.
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The key of e-mail one-click unsubscribe links, derived from the process's master key;
/// installed for the e-mail channels on first use (before any channel starts).
pub fn unsubscribe_key() -> &'static relais_channels::email::unsubscribe::UnsubscribeKey {
    relais_channels::email::unsubscribe::install(|| {
        relais_channels::email::unsubscribe::UnsubscribeKey::new(
            current().derive("e-mail one-click unsubscribe links"),
        )
    })
}

static PROCESS_KEY: OnceLock<SecretBox> = OnceLock::new();

/// Makes `secrets` the process's master key; refused once a key is in use.
pub fn install(secrets: SecretBox) -> Result<(), SecretError> {
    PROCESS_KEY
        .set(secrets)
        .map_err(|_| SecretError::AlreadyInstalled)
}

/// The process's master key (a random one if none was installed before first use).
pub fn current() -> &'static SecretBox {
    PROCESS_KEY.get_or_init(|| SecretBox::generate().0)
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The stored secrets named do not open under the key: starting would mix keys.
    #[error("the master key does not open the secrets of {0}")]
    WrongKey(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`seal_stored`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sealed {
    pub channels: usize,
    pub webhooks: usize,
}

/// Checks that every stored secret opens under `secrets`, then seals those written in plain
/// text before encryption at rest. Nothing is written when one does not open.
pub async fn seal_stored(store: &dyn Store, secrets: &SecretBox) -> Result<Sealed, SealError> {
    let mut unopened = Vec::new();
    let mut channels = Vec::new();
    let mut webhooks = Vec::new();
    for tenant in store.list_tenants().await? {
        for channel in store.channels(&tenant.id).await? {
            match secrets.open_config(&channel.config) {
                Err(e) => unopened.push(format!(
                    "channel `{}` ({}) of tenant `{}` ({e})",
                    channel.name, channel.id, tenant.name
                )),
                Ok(_) => {
                    if let Some(sealed) = secrets.seal_plain_fields(&channel.config) {
                        channels.push((channel.tenant_id, channel.id, sealed));
                    }
                }
            }
        }
        for hook in store.webhooks(&tenant.id).await? {
            match secrets.open(WEBHOOK_SECRET, &hook.secret) {
                Err(e) => unopened.push(format!(
                    "webhook {} ({}) of tenant `{}` ({e})",
                    hook.id, hook.url, tenant.name
                )),
                Ok(plain) if !SecretBox::is_sealed(&hook.secret) => {
                    webhooks.push((
                        hook.tenant_id,
                        hook.id,
                        secrets.seal(WEBHOOK_SECRET, &plain),
                    ));
                }
                Ok(_) => {}
            }
        }
    }
    if !unopened.is_empty() {
        let more = unopened.len().saturating_sub(3);
        let mut named = unopened.into_iter().take(3).collect::<Vec<_>>().join(", ");
        if more > 0 {
            named.push_str(&format!(" and {more} more"));
        }
        return Err(SealError::WrongKey(named));
    }
    let done = Sealed {
        channels: channels.len(),
        webhooks: webhooks.len(),
    };
    for (tenant, id, config) in channels {
        store.update_channel_config(&tenant, &id, &config).await?;
    }
    for (tenant, id, secret) in webhooks {
        store.set_webhook_secret(&tenant, &id, &secret).await?;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use relais_store::{ChannelStore, MessageStore};
    use serde_json::json;

    #[test]
    fn derived_keys_are_stable_and_differ_by_purpose_and_master_key() {
        let master = SecretBox::new([1; 32]);
        let links = master.derive("links");
        assert_eq!(SecretBox::new([1; 32]).derive("links"), links);
        assert_ne!(master.derive("other"), links);
        assert_ne!(SecretBox::new([2; 32]).derive("links"), links);
        assert_ne!(links, [1; 32], "the master key itself is never handed out");
    }

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_field() {
        let (secrets, _) = SecretBox::generate();
        let sealed = secrets.seal("password", "s3cret");
        assert!(sealed.starts_with(PREFIX), "{sealed}");
        assert!(!sealed.contains("s3cret"));
        assert_ne!(
            sealed,
            secrets.seal("password", "s3cret"),
            "a fresh nonce each time"
        );
        assert_eq!(secrets.open("password", &sealed).unwrap(), "s3cret");
        let (other, _) = SecretBox::generate();
        assert_eq!(other.open("password", &sealed), Err(SecretError::WrongKey));
        assert_eq!(
            secrets.open("bot_token", &sealed),
            Err(SecretError::WrongKey),
            "moved to another field"
        );
        let mut altered = sealed.clone();
        altered.replace_range(sealed.len() - 2.., "AA");
        assert!(secrets.open("password", &altered).is_err());
        assert_eq!(
            secrets.open("password", "enc:v1:not base64!"),
            Err(SecretError::Malformed)
        );
        assert_eq!(
            secrets.open("password", "written before"),
            Ok("written before".to_owned()),
            "a value from before encryption reads as it is"
        );
    }

    #[test]
    fn a_key_is_32_bytes_of_base64() {
        let (secrets, key) = SecretBox::generate();
        let again = SecretBox::from_base64(&format!("  {key}\n")).unwrap();
        assert_eq!(
            again.open("password", &secrets.seal("password", "x")),
            Ok("x".into())
        );
        assert_eq!(
            SecretBox::from_base64("c2hvcnQ=").unwrap_err(),
            SecretError::BadKey
        );
        assert_eq!(
            SecretBox::from_base64("not base64").unwrap_err(),
            SecretError::BadKey
        );
    }

    #[test]
    fn only_the_secret_fields_of_a_config_are_sealed() {
        let (secrets, _) = SecretBox::generate();
        let config = json!({"host": "smsc.example", "system_id": "acme", "password": "enc:v1:",
            "access_token": "EAAG", "port": 2775});
        let sealed = secrets.seal_config(&config);
        assert_eq!(sealed["host"], "smsc.example");
        assert_eq!(sealed["system_id"], "acme");
        assert_eq!(sealed["port"], 2775);
        for key in ["password", "access_token"] {
            assert!(SecretBox::is_sealed(sealed[key].as_str().unwrap()));
        }
        assert_eq!(secrets.open_config(&sealed).unwrap(), config);
        let (other, _) = SecretBox::generate();
        assert_eq!(
            other.open_config(&sealed).unwrap_err().to_string(),
            "`password`: it does not open with this master key (sealed with another one, or altered)"
        );
    }

    #[test]
    fn a_secret_given_as_json_is_sealed_as_its_text() {
        let (secrets, _) = SecretBox::generate();
        let key_file =
            json!({"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----…"});
        let config = json!({"agent_id": "acme", "service_account": key_file});
        let sealed = secrets.seal_config(&config);
        let stored = sealed["service_account"].as_str().unwrap();
        assert!(SecretBox::is_sealed(stored));
        assert!(
            !stored.contains("PRIVATE KEY"),
            "the key is not stored in clear"
        );
        let opened = secrets.open_config(&sealed).unwrap();
        let text = opened["service_account"].as_str().unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(text).unwrap(),
            key_file
        );
    }

    #[tokio::test]
    async fn secrets_stored_in_plain_text_are_sealed_and_a_wrong_key_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = relais_store::SqliteStore::open(&dir.path().join("relais.db"))
            .await
            .unwrap();
        let now = jiff::Timestamp::now();
        let tenant = store.create_tenant("default", now).await.unwrap();
        let plain = json!({"host": "h", "system_id": "acme", "password": "s3cret"});
        let channel = store
            .create_channel(
                &relais_store::NewChannel {
                    tenant_id: tenant.id.clone(),
                    kind: "smpp".into(),
                    name: "orange".into(),
                    config: plain.clone(),
                },
                now,
            )
            .await
            .unwrap();
        let hook = store
            .create_webhook(&tenant.id, "https://example.com/h", "whsec_c2VjcmV0", now)
            .await
            .unwrap();

        let (secrets, _) = SecretBox::generate();
        let done = seal_stored(&store, &secrets).await.unwrap();
        assert_eq!(
            done,
            Sealed {
                channels: 1,
                webhooks: 1
            }
        );
        let stored = store
            .channel(&tenant.id, &channel.id)
            .await
            .unwrap()
            .unwrap();
        assert!(SecretBox::is_sealed(
            stored.config["password"].as_str().unwrap()
        ));
        assert_eq!(secrets.open_config(&stored.config).unwrap(), plain);
        let stored_hook = store.webhooks(&tenant.id).await.unwrap().remove(0);
        assert_eq!(
            secrets.open(WEBHOOK_SECRET, &stored_hook.secret).unwrap(),
            hook.secret
        );
        // A second start has nothing left to seal.
        assert_eq!(
            seal_stored(&store, &secrets).await.unwrap(),
            Sealed::default()
        );

        // Another key: refused, naming what does not open, and nothing is rewritten.
        let (other, _) = SecretBox::generate();
        let e = seal_stored(&store, &other).await.unwrap_err().to_string();
        assert!(e.contains("channel `orange`"), "{e}");
        assert!(e.contains(&channel.id), "{e}");
        assert!(e.contains(&hook.id), "{e}");
        assert_eq!(
            store
                .channel(&tenant.id, &channel.id)
                .await
                .unwrap()
                .unwrap(),
            stored
        );
    }
}
