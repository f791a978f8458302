//! An `apns` channel's `config`, read and checked once where it enters.
//!
//! Keys: `team_id` and `key_id` (10 characters each, from Apple's developer account),
//! `private_key` (secret: the `.p8` signing key's PEM), `topic` (the app's bundle id),
//! `base_url` (default `https://api.push.apple.com`; the sandbox is
//! `https://api.sandbox.push.apple.com`) and `max_rate`. The key is parsed here, so a
//! channel with a key ring refuses never starts; it never shows in `Debug` output.

use crate::config_keys::{self, checked_url, error, refuse_unknown_keys, secret, string};
use crate::rcs::service_account::pem_block;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

pub use crate::configured::ConfigError;

/// APNs's production endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.push.apple.com";

/// APNs's development endpoint, for apps built with a development profile.
pub const SANDBOX_BASE_URL: &str = "https://api.sandbox.push.apple.com";

/// Messages per second when `max_rate` is not given.
pub const DEFAULT_MAX_RATE: f64 = 500.0;

const KEYS: [&str; 6] = [
    "team_id",
    "key_id",
    "private_key",
    "topic",
    "base_url",
    "max_rate",
];

/// A checked `apns` channel configuration.
#[derive(Clone)]
pub struct ApnsConfig {
    team_id: String,
    key_id: String,
    key: Arc<EcdsaKeyPair>,
    topic: String,
    base_url: String,
    max_rate: f64,
}

impl ApnsConfig {
    pub fn parse(value: &Value) -> Result<ApnsConfig, ConfigError> {
        let object = value
            .as_object()
            .ok_or_else(|| error("", "the config must be a JSON object"))?;
        refuse_unknown_keys(object, &KEYS)?;
        let apple_id = |key: &str| -> Result<String, ConfigError> {
            let id = secret_or_string(object, key)?;
            if id.len() == 10 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                Ok(id)
            } else {
                Err(error(
                    &format!("/{key}"),
                    format!("`{key}` must be the 10-character id Apple shows (such as ABC123DEFG)"),
                ))
            }
        };
        let team_id = apple_id("team_id")?;
        let key_id = apple_id("key_id")?;
        let pem = secret(object, "private_key")?;
        let key = parse_p8(&pem).map_err(|detail| error("/private_key", detail))?;
        let topic = secret_or_string(object, "topic")?;
        if topic.is_empty()
            || topic.len() > 255
            || !topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
        {
            return Err(error(
                "/topic",
                "`topic` must be the app's bundle id, such as com.example.app",
            ));
        }
        let base_url = match string(object, "base_url")? {
            Some(url) => checked_url("/base_url", url, DEFAULT_BASE_URL)?,
            None => DEFAULT_BASE_URL.to_owned(),
        };
        let max_rate = config_keys::max_rate(object, DEFAULT_MAX_RATE)?;
        Ok(ApnsConfig {
            team_id,
            key_id,
            key: Arc::new(key),
            topic,
            base_url,
            max_rate,
        })
    }

    pub fn team_id(&self) -> &str {
        &self.team_id
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The signing key (its public half verifies the tokens).
    pub fn key(&self) -> &EcdsaKeyPair {
        &self.key
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn max_rate(&self) -> f64 {
        self.max_rate
    }

    /// `{base_url}/3/device/{device_token}`.
    pub fn device_url(&self, device_token: &str) -> String {
        format!("{}/3/device/{device_token}", self.base_url)
    }
}

/// A required string key, trimmed.
fn secret_or_string(
    object: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<String, ConfigError> {
    match string(object, key)? {
        Some(value) if !value.trim().is_empty() => Ok(value.trim().to_owned()),
        _ => Err(config_keys::required(key)),
    }
}

/// The `.p8` key: a PKCS#8 P-256 key in a `PRIVATE KEY` PEM block.
fn parse_p8(pem: &str) -> Result<EcdsaKeyPair, String> {
    let der = pem_block(pem, "PRIVATE KEY")
        .map_err(|e| e.to_string())?
        .ok_or("`private_key` must be the .p8 file's text, from -----BEGIN PRIVATE KEY-----")?;
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
        .map_err(|e| format!("`private_key` is not a P-256 (ES256) key ring accepts: {e}"))
}

impl PartialEq for ApnsConfig {
    fn eq(&self, other: &Self) -> bool {
        use ring::signature::KeyPair;
        self.team_id == other.team_id
            && self.key_id == other.key_id
            && self.key.public_key().as_ref() == other.key.public_key().as_ref()
            && self.topic == other.topic
            && self.base_url == other.base_url
            && self.max_rate == other.max_rate
    }
}

impl fmt::Debug for ApnsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApnsConfig")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .field("private_key", &"<redacted>")
            .field("topic", &self.topic)
            .field("base_url", &self.base_url)
            .field("max_rate", &self.max_rate)
            .finish()
    }
}
