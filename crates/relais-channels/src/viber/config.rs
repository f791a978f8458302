//! A `viber` channel's `config`, read and checked once where it enters.
//!
//! Every key is checked here and an unknown key is refused, so a typo (`auth_tokn`) never
//! leaves a channel half-configured. Errors point at the key with a JSON pointer
//! (`/auth_token`). The token never shows in `Debug` output.

use crate::config_keys::{self, checked_url, error, refuse_unknown_keys, secret, string};
use serde_json::Value;
use std::fmt;

pub use crate::configured::ConfigError;

/// Where the REST bot API answers.
pub const DEFAULT_BASE_URL: &str = "https://chatapi.viber.com/pa";

/// Messages per second. Viber publishes no per-second quota for `send_message`; it
/// answers status 12 past it. 20 a second keeps a bot well inside what it takes.
pub const DEFAULT_MAX_RATE: f64 = 20.0;

/// `sender.name` is at most 28 characters.
pub const SENDER_NAME_CHARS: usize = 28;

const KEYS: [&str; 6] = [
    "auth_token",
    "name",
    "avatar",
    "base_url",
    "public_url",
    "max_rate",
];

/// A checked `viber` channel configuration.
#[derive(Clone, PartialEq)]
pub struct ViberConfig {
    auth_token: String,
    name: String,
    avatar: Option<String>,
    base_url: String,
    public_url: Option<String>,
    max_rate: f64,
}

impl ViberConfig {
    /// Reads and checks a channel's `config` object.
    pub fn parse(value: &Value) -> Result<ViberConfig, ConfigError> {
        let object = value
            .as_object()
            .ok_or_else(|| error("", "the config must be a JSON object"))?;
        refuse_unknown_keys(object, &KEYS)?;
        let auth_token = secret(object, "auth_token")?.trim().to_owned();
        if auth_token.is_empty() || auth_token.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(error(
                "/auth_token",
                "`auth_token` must be the bot's token from the Viber Admin Panel, such as 445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9, without spaces",
            ));
        }
        let name = string(object, "name")?
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .ok_or_else(|| config_keys::required("name"))?
            .to_owned();
        let len = name.chars().count();
        if len > SENDER_NAME_CHARS {
            return Err(error(
                "/name",
                format!(
                    "`name` is {len} characters; Viber shows a sender name of at most {SENDER_NAME_CHARS}"
                ),
            ));
        }
        let avatar = string(object, "avatar")?
            .map(|url| checked_url("/avatar", url, "https://cdn.example.com/avatar.jpg"))
            .transpose()?;
        let base_url = match string(object, "base_url")? {
            Some(url) => checked_url("/base_url", url, DEFAULT_BASE_URL)?,
            None => DEFAULT_BASE_URL.to_owned(),
        };
        let public_url = string(object, "public_url")?
            .map(|url| checked_url("/public_url", url, "https://relais.example.com"))
            .transpose()?;
        let max_rate = config_keys::max_rate(object, DEFAULT_MAX_RATE)?;
        Ok(ViberConfig {
            auth_token,
            name,
            avatar,
            base_url,
            public_url,
            max_rate,
        })
    }

    /// Sent as `X-Viber-Auth-Token` on every call, and the key of every callback's
    /// signature.
    pub fn auth_token(&self) -> &str {
        &self.auth_token
    }

    /// The sender name shown above every message.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sender avatar's URL, when there is one.
    pub fn avatar(&self) -> Option<&str> {
        self.avatar.as_deref()
    }

    /// Without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// This server's public address, when the channel registers its webhook itself.
    pub fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref()
    }

    /// Messages per second this channel may send.
    pub fn max_rate(&self) -> f64 {
        self.max_rate
    }

    /// `{base_url}/{method}`.
    pub fn method_url(&self, method: &str) -> String {
        format!("{}/{method}", self.base_url)
    }
}

impl fmt::Debug for ViberConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written by hand so that a logged config never carries the token.
        f.debug_struct("ViberConfig")
            .field("auth_token", &"<redacted>")
            .field("name", &self.name)
            .field("avatar", &self.avatar)
            .field("base_url", &self.base_url)
            .field("public_url", &self.public_url)
            .field("max_rate", &self.max_rate)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOKEN: &str = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9";

    fn minimal() -> Value {
        json!({"auth_token": TOKEN, "name": "Boutique Lyon"})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut config = minimal();
        config[key] = value;
        config
    }

    fn pointer_of(config: Value) -> String {
        ViberConfig::parse(&config)
            .err()
            .map(|e| e.pointer)
            .unwrap_or_default()
    }

    #[test]
    fn a_minimal_config_takes_vibers_defaults() {
        let config = ViberConfig::parse(&minimal()).unwrap();
        assert_eq!(config.base_url(), DEFAULT_BASE_URL);
        assert_eq!(config.avatar(), None);
        assert_eq!(config.public_url(), None);
        assert_eq!(
            config.method_url("send_message"),
            "https://chatapi.viber.com/pa/send_message"
        );
    }

    #[test]
    fn missing_bad_and_unknown_keys_are_named() {
        for key in ["auth_token", "name"] {
            let mut config = minimal();
            config.as_object_mut().unwrap().remove(key);
            assert_eq!(pointer_of(config), format!("/{key}"));
        }
        assert_eq!(pointer_of(with("auth_token", json!("a b"))), "/auth_token");
        assert_eq!(pointer_of(with("name", json!("x".repeat(29)))), "/name");
        assert_eq!(pointer_of(with("avatar", json!("avatar.jpg"))), "/avatar");
        assert_eq!(pointer_of(with("base_url", json!("ftp://x"))), "/base_url");
        assert_eq!(pointer_of(with("token", json!("x"))), "/token");
        assert_eq!(pointer_of(json!([])), "");
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let shown = format!("{:?}", ViberConfig::parse(&minimal()).unwrap());
        assert!(!shown.contains("445da6az"), "{shown}");
        assert!(shown.contains("Boutique Lyon"));
    }
}
