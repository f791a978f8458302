//! A `webpush` channel's `config`, read and checked once where it enters.
//!
//! Keys: `vapid_private_key` (secret; PKCS#8 PEM or raw base64url scalar, see
//! [`super::vapid`]), `vapid_subject` (`mailto:` or `https:` contact the push services
//! may write to), `vapid_public_key` (optional; when given it must match the private key,
//! and it stays readable in the channel's config for the page that subscribes), `ttl`
//! (seconds a push service keeps an undelivered message, 0 to 2419200, default 86400),
//! `urgency` (`very-low`, `low`, `normal`, `high`; default `normal`), `title` (the title
//! of notifications whose content has none), `public_url` (this server's address as
//! browsers reach it; when set, notifications carry what their service worker needs to
//! report them shown and clicked, see [`super::report`]), `allow_http_endpoints` (for a
//! local push service in tests; default false) and `max_rate`. Unknown keys are refused.

use super::report::ReportKey;
use super::vapid::VapidKey;
use crate::config_keys::{self, checked_url, error, flag, refuse_unknown_keys, secret, string};
use serde_json::Value;
use std::sync::Arc;

pub use crate::configured::ConfigError;

/// Messages per second: push services take far more; this bounds a burst.
pub const DEFAULT_MAX_RATE: f64 = 100.0;

/// A day: long enough for a phone that is off overnight.
pub const DEFAULT_TTL: u32 = 86_400;

/// 28 days, the longest push services keep a message.
pub const MAX_TTL: u32 = 2_419_200;

const URGENCIES: [&str; 4] = ["very-low", "low", "normal", "high"];

const KEYS: [&str; 9] = [
    "vapid_private_key",
    "public_url",
    "vapid_subject",
    "vapid_public_key",
    "ttl",
    "urgency",
    "title",
    "allow_http_endpoints",
    "max_rate",
];

/// A checked `webpush` channel configuration.
#[derive(Debug, Clone)]
pub struct WebpushConfig {
    key: Arc<VapidKey>,
    report_key: ReportKey,
    public_url: Option<String>,
    subject: String,
    ttl: u32,
    urgency: &'static str,
    title: String,
    allow_http_endpoints: bool,
    max_rate: f64,
}

impl WebpushConfig {
    pub fn parse(value: &Value) -> Result<WebpushConfig, ConfigError> {
        let object = value
            .as_object()
            .ok_or_else(|| error("", "the config must be a JSON object"))?;
        refuse_unknown_keys(object, &KEYS)?;
        let private_key = secret(object, "vapid_private_key")?;
        let key = VapidKey::parse(&private_key).map_err(|e| {
            error(
                "/vapid_private_key",
                format!(
                    "`vapid_private_key` must be a P-256 key, the PEM of `openssl ecparam -genkey -name prime256v1 | openssl pkcs8 -topk8 -nocrypt` or a raw 32-byte key in base64url: {e}"
                ),
            )
        })?;
        let public = string(object, "vapid_public_key")?;
        if public.is_some_and(|public| public.trim().trim_end_matches('=') != key.public_key()) {
            return Err(error(
                "/vapid_public_key",
                format!(
                    "`vapid_public_key` does not match `vapid_private_key`, whose public key is {}",
                    key.public_key()
                ),
            ));
        }
        let subject = secret(object, "vapid_subject")?.trim().to_owned();
        let subject_ok = (subject.starts_with("mailto:") && subject.len() > 7)
            || (subject.starts_with("https://") && subject.len() > 8);
        if !subject_ok || subject.chars().any(char::is_whitespace) {
            return Err(error(
                "/vapid_subject",
                "`vapid_subject` must be a mailto: or https: contact, such as mailto:ops@example.com",
            ));
        }
        let ttl = match object.get("ttl") {
            None | Some(Value::Null) => DEFAULT_TTL,
            Some(ttl) => ttl
                .as_u64()
                .filter(|ttl| *ttl <= u64::from(MAX_TTL))
                .map(|ttl| ttl as u32)
                .ok_or_else(|| {
                    error(
                        "/ttl",
                        format!("`ttl` must be whole seconds from 0 to {MAX_TTL}"),
                    )
                })?,
        };
        let urgency = match string(object, "urgency")? {
            None => "normal",
            Some(given) => URGENCIES
                .into_iter()
                .find(|known| *known == given)
                .ok_or_else(|| {
                    error(
                        "/urgency",
                        format!("`urgency` must be one of {}", URGENCIES.join(", ")),
                    )
                })?,
        };
        let title = string(object, "title")?.unwrap_or_default().to_owned();
        let public_url = string(object, "public_url")?
            .map(|url| checked_url("/public_url", url, "https://relais.example.com"))
            .transpose()?;
        Ok(WebpushConfig {
            key: Arc::new(key),
            report_key: ReportKey::derive(&private_key),
            public_url,
            subject,
            ttl,
            urgency,
            title,
            allow_http_endpoints: flag(object, "allow_http_endpoints", false)?,
            max_rate: config_keys::max_rate(object, DEFAULT_MAX_RATE)?,
        })
    }

    pub fn key(&self) -> &VapidKey {
        &self.key
    }

    /// The key of the tokens with which browsers report notifications.
    pub fn report_key(&self) -> &ReportKey {
        &self.report_key
    }

    /// This server's address as browsers reach it, when configured.
    pub fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref()
    }

    /// The public key a page passes as `applicationServerKey`.
    pub fn public_key(&self) -> &str {
        self.key.public_key()
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    pub fn urgency(&self) -> &'static str {
        self.urgency
    }

    /// The notification title of a content without one (may be empty).
    pub fn title(&self) -> &str {
        &self.title
    }

    pub fn allow_http_endpoints(&self) -> bool {
        self.allow_http_endpoints
    }

    pub fn max_rate(&self) -> f64 {
        self.max_rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RAW: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";

    fn minimal() -> Value {
        json!({"vapid_private_key": RAW, "vapid_subject": "mailto:ops@example.com"})
    }

    fn pointer_of(key: &str, value: Value) -> String {
        let mut config = minimal();
        config[key] = value;
        WebpushConfig::parse(&config)
            .err()
            .map(|e| e.pointer)
            .unwrap_or_default()
    }

    #[test]
    fn a_minimal_config_takes_the_defaults() {
        let config = WebpushConfig::parse(&minimal()).unwrap();
        assert_eq!(config.public_key(), PUBLIC);
        assert_eq!((config.ttl(), config.urgency()), (86_400, "normal"));
        assert!(!config.allow_http_endpoints());
        assert_eq!(config.max_rate(), 100.0);
        assert!(!format!("{config:?}").contains(RAW));
    }

    #[test]
    fn each_key_is_checked_and_named() {
        for key in ["vapid_private_key", "vapid_subject"] {
            let mut config = minimal();
            config.as_object_mut().unwrap().remove(key);
            assert_eq!(
                WebpushConfig::parse(&config).unwrap_err().pointer,
                format!("/{key}")
            );
        }
        assert_eq!(
            pointer_of("vapid_private_key", json!("AAAA")),
            "/vapid_private_key"
        );
        assert_eq!(
            pointer_of("vapid_subject", json!("ops@example.com")),
            "/vapid_subject"
        );
        assert_eq!(
            pointer_of("vapid_subject", json!("mailto:")),
            "/vapid_subject"
        );
        assert_eq!(
            pointer_of("vapid_public_key", json!("BAAA")),
            "/vapid_public_key"
        );
        assert_eq!(pointer_of("vapid_public_key", json!(PUBLIC)), "");
        assert_eq!(pointer_of("ttl", json!(-1)), "/ttl");
        assert_eq!(pointer_of("ttl", json!(2_419_201)), "/ttl");
        assert_eq!(pointer_of("urgency", json!("urgent")), "/urgency");
        assert_eq!(pointer_of("urgency", json!("very-low")), "");
        assert_eq!(pointer_of("vapid_key", json!("x")), "/vapid_key");
        assert_eq!(pointer_of("max_rate", json!(0)), "/max_rate");
    }
}
