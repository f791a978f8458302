//! A `messenger` or `instagram` channel's `config`, read and checked once where it enters.
//!
//! Every key is checked here and an unknown key is refused, so a typo (`acces_token`)
//! never leaves a channel half-configured. Errors point at the key with a JSON pointer
//! (`/access_token`). The three secrets never show in `Debug` output.

use super::platform::Platform;
use super::tag::{MessagingTag, messaging_tag};
use crate::config_keys::{
    self, checked_url, error, is_graph_api_version, pointer, refuse_unknown_keys, required, secret,
    string,
};
use crate::whatsapp::config::{DEFAULT_API_VERSION, DEFAULT_BASE_URL};
use jiff::SignedDuration;
use serde_json::{Map, Value};
use std::fmt;

pub use crate::configured::ConfigError;

/// Messages per second: Meta lets an app make 300 Send API calls a second per Page (and
/// per Instagram professional account) for text, links, reactions and stickers.
pub const DEFAULT_MAX_RATE: f64 = 300.0;

const KEYS: [&str; 8] = [
    "page_id",
    "access_token",
    "app_secret",
    "verify_token",
    "base_url",
    "api_version",
    "max_rate",
    "human_agent_tag",
];

/// `human_agent_tag` when the config does not say.
const DEFAULT_HUMAN_AGENT_TAG: bool = true;

/// Whether a stored (already checked) config lets agents answer with the `HUMAN_AGENT`
/// tag: read without the rest of the config, whose secrets may be sealed.
pub fn human_agent_tag_of(config: &Value) -> bool {
    config
        .get("human_agent_tag")
        .and_then(Value::as_bool)
        .unwrap_or(DEFAULT_HUMAN_AGENT_TAG)
}

/// A checked `messenger` or `instagram` channel configuration.
#[derive(Clone, PartialEq)]
pub struct MessengerConfig {
    platform: Platform,
    page_id: String,
    access_token: String,
    app_secret: String,
    verify_token: String,
    base_url: String,
    api_version: String,
    max_rate: f64,
    human_agent_tag: bool,
}

impl MessengerConfig {
    /// Reads and checks a channel's `config` object for `platform`.
    pub fn parse(platform: Platform, value: &Value) -> Result<MessengerConfig, ConfigError> {
        let object = value
            .as_object()
            .ok_or_else(|| error("", "the config must be a JSON object"))?;
        refuse_unknown_keys(object, &KEYS)?;
        let page_id = numeric_id(platform, object, "page_id")?;
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
        let human_agent_tag =
            config_keys::flag(object, "human_agent_tag", DEFAULT_HUMAN_AGENT_TAG)?;
        Ok(MessengerConfig {
            platform,
            page_id,
            access_token,
            app_secret,
            verify_token,
            base_url,
            api_version,
            max_rate,
            human_agent_tag,
        })
    }

    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The Page (Messenger) or Instagram professional account (Instagram) the channel
    /// speaks for: the `entry[].id` of its webhooks.
    pub fn page_id(&self) -> &str {
        &self.page_id
    }

    /// The Page access token (or Instagram user access token) of every Send API request.
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

    /// Without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// Messages per second this channel may send.
    pub fn max_rate(&self) -> f64 {
        self.max_rate
    }

    /// Whether agents' replies past the 24-hour window go with the `HUMAN_AGENT` tag
    /// (which Meta allows for 7 days after the customer wrote, once the app has the
    /// Human Agent permission).
    pub fn human_agent_tag(&self) -> bool {
        self.human_agent_tag
    }

    /// The messaging type of an agent's reply on this channel, given how long ago the
    /// customer last wrote: [`messaging_tag`], unless the operator turned the tag off.
    pub fn agent_reply_tag(&self, last_inbound_age: SignedDuration) -> MessagingTag {
        if self.human_agent_tag {
            messaging_tag(last_inbound_age)
        } else {
            MessagingTag::Response
        }
    }

    /// `{base_url}/{api_version}/me/messages`. `me` is the token's owner: the Page for a
    /// Page access token, the Instagram account for an Instagram user token, so one URL
    /// serves both platforms and `page_id` need not be the Page behind an Instagram account.
    pub fn messages_url(&self) -> String {
        format!("{}/{}/me/messages", self.base_url, self.api_version)
    }
}

impl fmt::Debug for MessengerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written by hand so that a logged config never carries a secret.
        f.debug_struct("MessengerConfig")
            .field("platform", &self.platform)
            .field("page_id", &self.page_id)
            .field("access_token", &"<redacted>")
            .field("app_secret", &"<redacted>")
            .field("verify_token", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("api_version", &self.api_version)
            .field("max_rate", &self.max_rate)
            .field("human_agent_tag", &self.human_agent_tag)
            .finish()
    }
}

/// Meta's ids are digits; written as a string, or as a JSON integer (which serde_json keeps
/// exact up to u64, so an id never loses digits to a float).
fn numeric_id(
    platform: Platform,
    object: &Map<String, Value>,
    key: &str,
) -> Result<String, ConfigError> {
    let text = match object.get(key) {
        None | Some(Value::Null) => return Err(required(key)),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        Some(_) => String::new(),
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        Ok(text)
    } else {
        Err(error(
            &pointer(key),
            format!(
                "`{key}` must be the numeric id of the {}, such as \"17841405822304914\"",
                platform.account_label()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({"page_id": "106540352242922", "access_token": "EAAG-page-token",
               "app_secret": "s3cret", "verify_token": "handshake"})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut config = minimal();
        config[key] = value;
        config
    }

    fn parse(config: &Value) -> Result<MessengerConfig, ConfigError> {
        MessengerConfig::parse(Platform::Messenger, config)
    }

    fn pointer_of(config: Value) -> String {
        parse(&config).err().map(|e| e.pointer).unwrap_or_default()
    }

    #[test]
    fn a_minimal_config_takes_meta_defaults() {
        let config = parse(&minimal()).unwrap();
        assert_eq!(config.platform(), Platform::Messenger);
        assert_eq!(config.page_id(), "106540352242922");
        assert_eq!(config.base_url(), DEFAULT_BASE_URL);
        assert_eq!(config.api_version(), DEFAULT_API_VERSION);
        assert_eq!(config.max_rate(), 300.0);
        assert!(config.human_agent_tag());
        assert_eq!(
            config.messages_url(),
            format!("https://graph.facebook.com/{DEFAULT_API_VERSION}/me/messages")
        );
    }

    #[test]
    fn each_required_key_is_named_when_missing() {
        for key in ["page_id", "access_token", "app_secret", "verify_token"] {
            let mut config = minimal();
            config.as_object_mut().unwrap().remove(key);
            assert_eq!(pointer_of(config), format!("/{key}"));
        }
        assert_eq!(pointer_of(json!(["not", "an", "object"])), "");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_pointer() {
        assert_eq!(pointer_of(with("acces_token", json!("x"))), "/acces_token");
        assert_eq!(
            pointer_of(with("phone_number_id", json!("1"))),
            "/phone_number_id"
        );
    }

    #[test]
    fn the_id_must_be_digits_and_names_the_instagram_account_on_instagram() {
        assert_eq!(pointer_of(with("page_id", json!("my-page"))), "/page_id");
        let config = parse(&with("page_id", json!(17841405822304914u64))).unwrap();
        assert_eq!(config.page_id(), "17841405822304914");
        let e = MessengerConfig::parse(Platform::Instagram, &with("page_id", json!("@shop")))
            .unwrap_err();
        assert!(e.detail.contains("Instagram account"), "{e}");
    }

    #[test]
    fn base_url_must_be_http_and_loses_its_trailing_slash() {
        let config = parse(&with("base_url", json!("http://127.0.0.1:9000/"))).unwrap();
        assert_eq!(config.base_url(), "http://127.0.0.1:9000");
        for bad in ["ftp://x", "https://", "graph.facebook.com", "https://x?y=1"] {
            assert_eq!(
                pointer_of(with("base_url", json!(bad))),
                "/base_url",
                "{bad}"
            );
        }
    }

    #[test]
    fn api_version_max_rate_and_the_tag_switch_are_checked() {
        assert_eq!(
            pointer_of(with("api_version", json!("23.0"))),
            "/api_version"
        );
        assert_eq!(pointer_of(with("max_rate", json!(0))), "/max_rate");
        assert_eq!(pointer_of(with("max_rate", json!(20_000))), "/max_rate");
        assert_eq!(
            parse(&with("max_rate", json!(10))).unwrap().max_rate(),
            10.0
        );
        assert_eq!(
            pointer_of(with("human_agent_tag", json!("yes"))),
            "/human_agent_tag"
        );
        assert!(
            !parse(&with("human_agent_tag", json!(false)))
                .unwrap()
                .human_agent_tag()
        );
    }

    #[test]
    fn with_the_tag_off_an_agent_reply_is_always_a_response() {
        let on = parse(&minimal()).unwrap();
        let off = parse(&with("human_agent_tag", json!(false))).unwrap();
        let two_days = SignedDuration::from_hours(48);
        assert_eq!(on.agent_reply_tag(two_days), MessagingTag::HumanAgent);
        assert_eq!(off.agent_reply_tag(two_days), MessagingTag::Response);
    }

    #[test]
    fn empty_secrets_and_tokens_with_spaces_are_refused() {
        assert_eq!(pointer_of(with("app_secret", json!(" "))), "/app_secret");
        assert_eq!(
            pointer_of(with("access_token", json!("EAA G"))),
            "/access_token"
        );
        assert_eq!(pointer_of(with("verify_token", json!(7))), "/verify_token");
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let shown = format!("{:?}", parse(&minimal()).unwrap());
        for secret in ["EAAG-page-token", "s3cret", "handshake"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("106540352242922"));
    }
}
