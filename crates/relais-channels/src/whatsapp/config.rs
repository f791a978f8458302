//! A `whatsapp` channel's `config`, read and checked once where it enters.
//!
//! Every key is checked here and an unknown key is refused, so a typo (`acces_token`)
//! never leaves a channel half-configured. Errors point at the key with a JSON pointer
//! (`/access_token`). The three secrets never show in `Debug` output.

use crate::config_keys::{
    self, checked_url, error, is_graph_api_version, pointer, refuse_unknown_keys, required, secret,
    string,
};
use serde_json::{Map, Value};
use std::fmt;

/// Meta's own host for the Graph API; tests point `base_url` at a local fake instead.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";

/// The Graph API version requests name. Meta keeps a version for at least two years after
/// its release; v23.0 came out in May 2025.
pub const DEFAULT_API_VERSION: &str = "v23.0";

/// Messages per second: Meta's default throughput for one business phone number is 80.
pub const DEFAULT_MAX_RATE: f64 = 80.0;

/// Distinct customers a number may start conversations with in a moving 24 h when its
/// config says nothing: 250, the limit Meta gives a newly created business portfolio (it
/// rises to 2,000, 10,000, 100,000 and unlimited as Meta scales it). Starting low makes a
/// campaign wait rather than be refused; the operator raises it to the tier Meta shows.
pub const DEFAULT_MESSAGING_LIMIT: u64 = 250;

const KEYS: [&str; 10] = [
    "phone_number_id",
    "access_token",
    "app_secret",
    "verify_token",
    "waba_id",
    "business_account_id",
    "base_url",
    "api_version",
    "max_rate",
    "messaging_limit",
];

pub use crate::configured::ConfigError;

/// A checked `whatsapp` channel configuration.
#[derive(Clone, PartialEq)]
pub struct WhatsAppConfig {
    phone_number_id: String,
    access_token: String,
    app_secret: String,
    verify_token: String,
    business_account_id: Option<String>,
    base_url: String,
    api_version: String,
    max_rate: f64,
    /// `None`: unlimited.
    messaging_limit: Option<u64>,
}

impl WhatsAppConfig {
    /// Reads and checks a channel's `config` object.
    pub fn parse(value: &Value) -> Result<WhatsAppConfig, ConfigError> {
        let object = value
            .as_object()
            .ok_or_else(|| error("", "the config must be a JSON object"))?;
        refuse_unknown_keys(object, &KEYS)?;
        let phone_number_id =
            numeric_id(object, "phone_number_id")?.ok_or_else(|| required("phone_number_id"))?;
        let access_token = secret(object, "access_token")?;
        if access_token
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            // It goes into an `Authorization` header, where a space or a newline breaks it.
            return Err(error(
                "/access_token",
                "`access_token` must not contain spaces or control characters",
            ));
        }
        let app_secret = secret(object, "app_secret")?;
        let verify_token = secret(object, "verify_token")?;
        // `waba_id` (the WhatsApp Business Account id) and `business_account_id` name the
        // same account; either may be given, both only when they agree.
        let business_account_id = match (
            numeric_id(object, "waba_id")?,
            numeric_id(object, "business_account_id")?,
        ) {
            (Some(waba), Some(other)) if waba != other => {
                return Err(error(
                    "/waba_id",
                    "`waba_id` and `business_account_id` name the same account; give one",
                ));
            }
            (waba, other) => waba.or(other),
        };
        let base_url = match string(object, "base_url")? {
            Some(url) => checked_url("/base_url", url, DEFAULT_BASE_URL)?,
            None => DEFAULT_BASE_URL.to_owned(),
        };
        let api_version = match string(object, "api_version")? {
            Some(version) if is_graph_api_version(version) => version.to_owned(),
            Some(_) => {
                return Err(error("/api_version", "`api_version` must look like v23.0"));
            }
            None => DEFAULT_API_VERSION.to_owned(),
        };
        let max_rate = config_keys::max_rate(object, DEFAULT_MAX_RATE)?;
        let messaging_limit = messaging_limit(object)?;
        Ok(WhatsAppConfig {
            phone_number_id,
            access_token,
            app_secret,
            verify_token,
            business_account_id,
            base_url,
            api_version,
            max_rate,
            messaging_limit,
        })
    }

    /// The id Meta gave the business phone number messages are sent from.
    pub fn phone_number_id(&self) -> &str {
        &self.phone_number_id
    }

    /// The bearer token of every Graph API request.
    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    /// The app secret that signs Meta's webhooks.
    pub fn app_secret(&self) -> &str {
        &self.app_secret
    }

    /// The token Meta's subscription handshake must present.
    pub fn verify_token(&self) -> &str {
        &self.verify_token
    }

    /// The WhatsApp Business Account (`waba_id`), needed to read its templates.
    pub fn business_account_id(&self) -> Option<&str> {
        self.business_account_id.as_deref()
    }

    /// Without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// Messages per second this number may send.
    pub fn max_rate(&self) -> f64 {
        self.max_rate
    }

    /// Distinct customers this number may start conversations with (business-initiated
    /// messages) in a moving 24 h; `None` when its tier is unlimited.
    pub fn messaging_limit(&self) -> Option<u64> {
        self.messaging_limit
    }

    /// `{base_url}/{api_version}/{phone_number_id}/messages`.
    pub fn messages_url(&self) -> String {
        format!(
            "{}/{}/{}/messages",
            self.base_url, self.api_version, self.phone_number_id
        )
    }
}

impl fmt::Debug for WhatsAppConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written by hand so that a logged config never carries a secret.
        f.debug_struct("WhatsAppConfig")
            .field("phone_number_id", &self.phone_number_id)
            .field("access_token", &"<redacted>")
            .field("app_secret", &"<redacted>")
            .field("verify_token", &"<redacted>")
            .field("business_account_id", &self.business_account_id)
            .field("base_url", &self.base_url)
            .field("api_version", &self.api_version)
            .field("max_rate", &self.max_rate)
            .field("messaging_limit", &self.messaging_limit)
            .finish()
    }
}

/// `messaging_limit`: a whole number of customers from 1, or `"unlimited"`. Any number is
/// taken, not only Meta's tiers: the limit belongs to the business portfolio and is shared
/// by its numbers, so an operator may give each number a share of it.
fn messaging_limit(object: &Map<String, Value>) -> Result<Option<u64>, ConfigError> {
    match object.get("messaging_limit") {
        None | Some(Value::Null) => Ok(Some(DEFAULT_MESSAGING_LIMIT)),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("unlimited") => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => Ok(n.as_u64()),
        Some(_) => Err(error(
            "/messaging_limit",
            "`messaging_limit` must be the number of distinct customers the number may start conversations with in 24 h (250, 2000, 10000, 100000 …) or \"unlimited\"",
        )),
    }
}

/// Meta's ids are digits; written as a string, or as a JSON integer (which serde_json keeps
/// exact up to u64, so an id never loses digits to a float).
fn numeric_id(object: &Map<String, Value>, key: &str) -> Result<Option<String>, ConfigError> {
    let text = match object.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        Some(_) => String::new(),
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        Ok(Some(text))
    } else {
        Err(error(
            &pointer(key),
            format!("`{key}` must be the numeric id Meta shows, such as \"106540352242922\""),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({"phone_number_id": "106540352242922", "access_token": "EAAJB-token",
               "app_secret": "s3cret", "verify_token": "handshake"})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut config = minimal();
        config[key] = value;
        config
    }

    fn pointer_of(config: Value) -> String {
        WhatsAppConfig::parse(&config)
            .err()
            .map(|e| e.pointer)
            .unwrap_or_default()
    }

    #[test]
    fn a_minimal_config_takes_meta_defaults() {
        let config = WhatsAppConfig::parse(&minimal()).unwrap();
        assert_eq!(config.phone_number_id(), "106540352242922");
        assert_eq!(config.base_url(), DEFAULT_BASE_URL);
        assert_eq!(config.api_version(), DEFAULT_API_VERSION);
        assert_eq!(config.max_rate(), 80.0);
        assert_eq!(config.messaging_limit(), Some(250));
        assert_eq!(config.business_account_id(), None);
        assert_eq!(
            config.messages_url(),
            "https://graph.facebook.com/v23.0/106540352242922/messages"
        );
    }

    #[test]
    fn each_required_key_is_named_when_missing() {
        for key in [
            "phone_number_id",
            "access_token",
            "app_secret",
            "verify_token",
        ] {
            let mut config = minimal();
            config.as_object_mut().unwrap().remove(key);
            assert_eq!(pointer_of(config), format!("/{key}"));
        }
        assert_eq!(pointer_of(json!("not an object")), "");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_pointer() {
        assert_eq!(pointer_of(with("acces_token", json!("x"))), "/acces_token");
        assert_eq!(pointer_of(with("a/b", json!(1))), "/a~1b");
    }

    #[test]
    fn ids_must_be_digits_but_may_be_written_as_integers() {
        assert_eq!(
            pointer_of(with("phone_number_id", json!("+3361"))),
            "/phone_number_id"
        );
        assert_eq!(
            pointer_of(with("phone_number_id", json!(-5))),
            "/phone_number_id"
        );
        let config =
            WhatsAppConfig::parse(&with("business_account_id", json!(102290129340398u64))).unwrap();
        assert_eq!(config.business_account_id(), Some("102290129340398"));
    }

    #[test]
    fn base_url_must_be_http_and_loses_its_trailing_slash() {
        let config =
            WhatsAppConfig::parse(&with("base_url", json!("http://127.0.0.1:9000/"))).unwrap();
        assert_eq!(config.base_url(), "http://127.0.0.1:9000");
        for bad in [
            "ftp://x",
            "https://",
            "graph.facebook.com",
            "https://a b",
            "https://x?y=1",
        ] {
            assert_eq!(
                pointer_of(with("base_url", json!(bad))),
                "/base_url",
                "{bad}"
            );
        }
    }

    #[test]
    fn api_version_and_max_rate_are_checked() {
        assert_eq!(
            pointer_of(with("api_version", json!("21.0"))),
            "/api_version"
        );
        assert!(WhatsAppConfig::parse(&with("api_version", json!("v21.0"))).is_ok());
        assert_eq!(pointer_of(with("max_rate", json!(0))), "/max_rate");
        assert_eq!(pointer_of(with("max_rate", json!("fast"))), "/max_rate");
        let config = WhatsAppConfig::parse(&with("max_rate", json!(250))).unwrap();
        assert_eq!(config.max_rate(), 250.0);
    }

    #[test]
    fn messaging_limit_is_a_count_of_customers_or_unlimited() {
        let config = WhatsAppConfig::parse(&with("messaging_limit", json!(10_000))).unwrap();
        assert_eq!(config.messaging_limit(), Some(10_000));
        let config = WhatsAppConfig::parse(&with("messaging_limit", json!("unlimited"))).unwrap();
        assert_eq!(config.messaging_limit(), None);
        for bad in [json!(0), json!(-1), json!(2.5), json!("1k"), json!(true)] {
            assert_eq!(
                pointer_of(with("messaging_limit", bad.clone())),
                "/messaging_limit",
                "{bad}"
            );
        }
    }

    #[test]
    fn empty_secrets_and_tokens_with_spaces_are_refused() {
        assert_eq!(pointer_of(with("app_secret", json!("  "))), "/app_secret");
        assert_eq!(
            pointer_of(with("access_token", json!("EAA\nx"))),
            "/access_token"
        );
        assert_eq!(pointer_of(with("verify_token", json!(42))), "/verify_token");
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let config = WhatsAppConfig::parse(&minimal()).unwrap();
        let shown = format!("{config:?}");
        for secret in ["EAAJB-token", "s3cret", "handshake"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("106540352242922"));
    }
}
