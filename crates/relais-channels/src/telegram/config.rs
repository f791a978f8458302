//! A `telegram` channel's `config`, read and checked once where it enters.
//!
//! Every key is checked here and an unknown key is refused, so a typo (`bot_tokn`) never
//! leaves a channel half-configured. Errors point at the key with a JSON pointer
//! (`/bot_token`). The two secrets never show in `Debug` output.

use crate::config_keys::{self, checked_url, error, refuse_unknown_keys, secret, string};
use serde_json::Value;
use std::fmt;

pub use crate::configured::ConfigError;

/// Where the Bot API answers.
pub const DEFAULT_BASE_URL: &str = "https://api.telegram.org";

/// Messages per second: Telegram asks bots to stay under about 30 messages a second
/// across all chats (Bot FAQ, "broadcasting to users"); past it, 429s.
pub const DEFAULT_MAX_RATE: f64 = 30.0;

/// `secret_token` of `setWebhook`: 1 to 256 characters of `A-Z`, `a-z`, `0-9`, `_`, `-`.
const SECRET_TOKEN_MAX: usize = 256;

const KEYS: [&str; 5] = [
    "bot_token",
    "secret_token",
    "base_url",
    "public_url",
    "max_rate",
];

/// A checked `telegram` channel configuration.
#[derive(Clone, PartialEq)]
pub struct TelegramConfig {
    bot_token: String,
    bot_id: String,
    secret_token: String,
    base_url: String,
    public_url: Option<String>,
    max_rate: f64,
}

impl TelegramConfig {
    /// Reads and checks a channel's `config` object.
    pub fn parse(value: &Value) -> Result<TelegramConfig, ConfigError> {
        let object = value
            .as_object()
            .ok_or_else(|| error("", "the config must be a JSON object"))?;
        refuse_unknown_keys(object, &KEYS)?;
        let bot_token = secret(object, "bot_token")?.trim().to_owned();
        let bot_id = bot_id_of(&bot_token).ok_or_else(|| {
            error(
                "/bot_token",
                "`bot_token` must be the token @BotFather gave, such as 123456789:AAE…: the bot's id, a colon, then letters, digits, `_` or `-`",
            )
        })?;
        let secret_token = secret(object, "secret_token")?;
        if secret_token.len() > SECRET_TOKEN_MAX
            || !secret_token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(error(
                "/secret_token",
                "`secret_token` must be 1 to 256 characters of A-Z, a-z, 0-9, `_` and `-` (Telegram's rule for setWebhook), such as the output of `openssl rand -hex 32`",
            ));
        }
        let base_url = match string(object, "base_url")? {
            Some(url) => checked_url("/base_url", url, DEFAULT_BASE_URL)?,
            None => DEFAULT_BASE_URL.to_owned(),
        };
        let public_url = string(object, "public_url")?
            .map(|url| checked_url("/public_url", url, "https://relais.example.com"))
            .transpose()?;
        let max_rate = config_keys::max_rate(object, DEFAULT_MAX_RATE)?;
        Ok(TelegramConfig {
            bot_token,
            bot_id,
            secret_token,
            base_url,
            public_url,
            max_rate,
        })
    }

    /// The token of every Bot API call (it is part of the URL).
    pub fn bot_token(&self) -> &str {
        &self.bot_token
    }

    /// The bot's own user id: the digits before the token's colon.
    pub fn bot_id(&self) -> &str {
        &self.bot_id
    }

    /// What Telegram puts in `X-Telegram-Bot-Api-Secret-Token` on every webhook call.
    pub fn secret_token(&self) -> &str {
        &self.secret_token
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

    /// `{base_url}/bot{token}/{method}`.
    pub fn method_url(&self, method: &str) -> String {
        format!("{}/bot{}/{method}", self.base_url, self.bot_token)
    }
}

impl fmt::Debug for TelegramConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written by hand so that a logged config never carries a secret.
        f.debug_struct("TelegramConfig")
            .field("bot_id", &self.bot_id)
            .field("bot_token", &"<redacted>")
            .field("secret_token", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("public_url", &self.public_url)
            .field("max_rate", &self.max_rate)
            .finish()
    }
}

/// The bot id of a token `123456789:AAE…`, when it has that shape. The token goes into
/// every request's path, so anything but these characters would break the URL.
fn bot_id_of(token: &str) -> Option<String> {
    let (id, key) = token.split_once(':')?;
    let id_ok = !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit());
    let key_ok = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    (id_ok && key_ok).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOKEN: &str = "123456789:AAEhBOweik6ad6PsVMRxjQ5C8o3bT2Fvd-x";

    fn minimal() -> Value {
        json!({"bot_token": TOKEN, "secret_token": "s3cret_Token-1"})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut config = minimal();
        config[key] = value;
        config
    }

    fn pointer_of(config: Value) -> String {
        TelegramConfig::parse(&config)
            .err()
            .map(|e| e.pointer)
            .unwrap_or_default()
    }

    #[test]
    fn a_minimal_config_takes_telegrams_defaults() {
        let config = TelegramConfig::parse(&minimal()).unwrap();
        assert_eq!(config.bot_id(), "123456789");
        assert_eq!(config.base_url(), DEFAULT_BASE_URL);
        assert_eq!(config.public_url(), None);
        assert_eq!(config.max_rate(), 30.0);
        assert_eq!(
            config.method_url("sendMessage"),
            format!("https://api.telegram.org/bot{TOKEN}/sendMessage")
        );
    }

    #[test]
    fn each_required_key_is_named_when_missing() {
        for key in ["bot_token", "secret_token"] {
            let mut config = minimal();
            config.as_object_mut().unwrap().remove(key);
            assert_eq!(pointer_of(config), format!("/{key}"));
        }
        assert_eq!(pointer_of(json!("token")), "");
        assert_eq!(
            pointer_of(with("webhook_secret", json!("x"))),
            "/webhook_secret"
        );
    }

    #[test]
    fn a_token_without_the_bot_id_or_with_spaces_is_refused() {
        for bad in [
            "AAEhBOweik6ad6PsVMRxjQ5C8o3bT2Fvd",
            "12:",
            ":abc",
            "12:a b",
            "x1:abc",
            "12:a/b",
        ] {
            assert_eq!(
                pointer_of(with("bot_token", json!(bad))),
                "/bot_token",
                "{bad}"
            );
        }
    }

    #[test]
    fn the_secret_token_follows_telegrams_alphabet_and_length() {
        for bad in [
            json!(""),
            json!("has space"),
            json!("é"),
            json!("x".repeat(257)),
            json!(7),
        ] {
            assert_eq!(
                pointer_of(with("secret_token", bad.clone())),
                "/secret_token",
                "{bad}"
            );
        }
        assert!(TelegramConfig::parse(&with("secret_token", json!("x".repeat(256)))).is_ok());
    }

    #[test]
    fn urls_and_rate_are_checked() {
        let config =
            TelegramConfig::parse(&with("base_url", json!("http://127.0.0.1:9/"))).unwrap();
        assert_eq!(config.base_url(), "http://127.0.0.1:9");
        assert_eq!(
            pointer_of(with("base_url", json!("api.telegram.org"))),
            "/base_url"
        );
        assert_eq!(
            pointer_of(with("public_url", json!("ftp://x"))),
            "/public_url"
        );
        assert_eq!(pointer_of(with("max_rate", json!(0))), "/max_rate");
        let config =
            TelegramConfig::parse(&with("public_url", json!("https://relais.example.com/")))
                .unwrap();
        assert_eq!(config.public_url(), Some("https://relais.example.com"));
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let shown = format!("{:?}", TelegramConfig::parse(&minimal()).unwrap());
        assert!(!shown.contains("AAEhBOweik"), "{shown}");
        assert!(!shown.contains("s3cret_Token-1"), "{shown}");
        assert!(shown.contains("123456789"));
    }
}
