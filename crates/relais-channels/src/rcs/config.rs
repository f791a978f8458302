//! An `rcs` channel's `config`, read and checked once where it enters.
//!
//! Every key is checked here and an unknown key is refused, so a typo (`agentid`) never
//! leaves a channel half-configured. Errors point at the key with a JSON pointer
//! (`/service_account/private_key`). The service account's private key and the webhook's
//! client token never show in `Debug` output.

use super::service_account::ServiceAccount;
use crate::config_keys::{self, checked_url, error, refuse_unknown_keys, required, string};
use serde_json::Value;
use std::fmt;

pub use crate::configured::ConfigError;

/// Google's RBM API host for agents in North America; agents in Europe and Asia Pacific
/// set `base_url` to `https://europe-rcsbusinessmessaging.googleapis.com` or
/// `https://asia-rcsbusinessmessaging.googleapis.com`, and tests to a local fake.
pub const DEFAULT_BASE_URL: &str = "https://rcsbusinessmessaging.googleapis.com";

/// Messages per second. Google publishes no per-agent figure (its limits follow the
/// agent's reputation and answer `429 RESOURCE_EXHAUSTED` past them), so the channel
/// paces itself at 20 a second unless the operator knows their agent's quota.
pub const DEFAULT_MAX_RATE: f64 = 20.0;

/// Agent ids are short (`acme_ab12cd34_agent@rbm.goog`); longer is a paste gone wrong.
const AGENT_ID_CHARS: usize = 256;

/// The domain Google writes after an agent id in webhooks (`…_agent@rbm.goog`).
const AGENT_DOMAIN: &str = "@rbm.goog";

const KEYS: [&str; 7] = [
    "agent_id",
    "service_account",
    "client_token",
    "base_url",
    "token_uri",
    "max_rate",
    "check_capability",
];

/// A checked `rcs` channel configuration.
#[derive(Clone, PartialEq)]
pub struct RcsConfig {
    agent_id: String,
    service_account: ServiceAccount,
    client_token: String,
    base_url: String,
    token_uri: Option<String>,
    max_rate: f64,
    check_capability: bool,
}

impl RcsConfig {
    /// Reads and checks a channel's `config` object.
    pub fn parse(value: &Value) -> Result<RcsConfig, ConfigError> {
        let object = value
            .as_object()
            .ok_or_else(|| error("", "the config must be a JSON object"))?;
        refuse_unknown_keys(object, &KEYS)?;
        let agent_id = match string(object, "agent_id")?.map(str::trim) {
            Some(id) if is_agent_id(id) => id.to_owned(),
            Some(_) => {
                return Err(error(
                    "/agent_id",
                    "`agent_id` must be the agent's id as Google shows it, such as acme_ab12cd34_agent",
                ));
            }
            None => return Err(required("agent_id")),
        };
        let service_account = match object.get("service_account") {
            None | Some(Value::Null) => return Err(required("service_account")),
            Some(value) => ServiceAccount::parse(value)?,
        };
        let client_token = match string(object, "client_token")? {
            Some(token) if !token.trim().is_empty() => token.to_owned(),
            Some(_) => {
                return Err(error("/client_token", "`client_token` must not be empty"));
            }
            None => return Err(required("client_token")),
        };
        let base_url = match string(object, "base_url")? {
            Some(url) => checked_url("/base_url", url, DEFAULT_BASE_URL)?,
            None => DEFAULT_BASE_URL.to_owned(),
        };
        let token_uri = string(object, "token_uri")?
            .map(|uri| checked_url("/token_uri", uri, DEFAULT_BASE_URL))
            .transpose()?;
        let max_rate = config_keys::max_rate(object, DEFAULT_MAX_RATE)?;
        let check_capability = config_keys::flag(object, "check_capability", true)?;
        Ok(RcsConfig {
            agent_id,
            service_account,
            client_token,
            base_url,
            token_uri,
            max_rate,
            check_capability,
        })
    }

    /// The agent messages are sent as (the `agentId` of every request).
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// Whether `other` (a webhook's `agentId`) names this channel's agent. Google writes
    /// ids in webhooks with `@rbm.goog`, and operators copy them with or without it.
    pub fn is_own_agent(&self, other: &str) -> bool {
        let bare = |id: &str| {
            id.trim()
                .strip_suffix(AGENT_DOMAIN)
                .unwrap_or(id.trim())
                .to_owned()
        };
        bare(&self.agent_id) == bare(other)
    }

    /// Who the channel authenticates as.
    pub fn service_account(&self) -> &ServiceAccount {
        &self.service_account
    }

    /// The key of webhook signatures, and the token of Google's verification handshake.
    pub fn client_token(&self) -> &str {
        &self.client_token
    }

    /// Without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Where access tokens come from: the `token_uri` override, else the key file's.
    pub fn token_uri(&self) -> &str {
        self.token_uri
            .as_deref()
            .unwrap_or(self.service_account.token_uri())
    }

    /// Messages per second this agent may send.
    pub fn max_rate(&self) -> f64 {
        self.max_rate
    }

    /// Whether a send first asks Google if the phone can take RCS.
    pub fn check_capability(&self) -> bool {
        self.check_capability
    }
}

impl fmt::Debug for RcsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written by hand so that a logged config never carries a secret.
        f.debug_struct("RcsConfig")
            .field("agent_id", &self.agent_id)
            .field("service_account", &self.service_account)
            .field("client_token", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("token_uri", &self.token_uri)
            .field("max_rate", &self.max_rate)
            .field("check_capability", &self.check_capability)
            .finish()
    }
}

/// Letters, digits, `_`, `-`, `.` and one `@` (before `rbm.goog`).
fn is_agent_id(id: &str) -> bool {
    !id.is_empty()
        && id.chars().count() <= AGENT_ID_CHARS
        && id.matches('@').count() <= 1
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'))
}

#[cfg(test)]
mod tests {
    use super::super::service_account::tests::key_file;
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({"agent_id": "relais_ab12cd34_agent", "service_account": key_file(),
               "client_token": "SJENCPGJESMGUFPY"})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut config = minimal();
        config[key] = value;
        config
    }

    fn pointer_of(config: Value) -> String {
        RcsConfig::parse(&config)
            .err()
            .map(|e| e.pointer)
            .unwrap_or_default()
    }

    #[test]
    fn a_minimal_config_takes_googles_defaults() {
        let config = RcsConfig::parse(&minimal()).unwrap();
        assert_eq!(config.agent_id(), "relais_ab12cd34_agent");
        assert_eq!(config.base_url(), DEFAULT_BASE_URL);
        assert_eq!(config.token_uri(), "https://oauth2.googleapis.com/token");
        assert_eq!(config.max_rate(), DEFAULT_MAX_RATE);
        assert!(config.check_capability());
        assert_eq!(config.client_token(), "SJENCPGJESMGUFPY");
    }

    #[test]
    fn each_required_key_is_named_when_missing() {
        for key in ["agent_id", "service_account", "client_token"] {
            let mut config = minimal();
            config.as_object_mut().unwrap().remove(key);
            assert_eq!(pointer_of(config), format!("/{key}"));
        }
        assert_eq!(pointer_of(json!([])), "");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_pointer() {
        assert_eq!(pointer_of(with("agentid", json!("x"))), "/agentid");
        assert_eq!(
            pointer_of(with("access_token", json!("x"))),
            "/access_token"
        );
    }

    #[test]
    fn urls_must_be_http_and_lose_their_trailing_slash() {
        let config = RcsConfig::parse(&with("base_url", json!("http://127.0.0.1:9000/"))).unwrap();
        assert_eq!(config.base_url(), "http://127.0.0.1:9000");
        let config =
            RcsConfig::parse(&with("token_uri", json!("http://127.0.0.1:9000/token"))).unwrap();
        assert_eq!(config.token_uri(), "http://127.0.0.1:9000/token");
        for bad in ["ftp://x", "https://", "rcs.example", "https://x?y=1"] {
            assert_eq!(
                pointer_of(with("base_url", json!(bad))),
                "/base_url",
                "{bad}"
            );
            assert_eq!(
                pointer_of(with("token_uri", json!(bad))),
                "/token_uri",
                "{bad}"
            );
        }
    }

    #[test]
    fn the_agent_id_max_rate_and_capability_switch_are_checked() {
        for bad in ["", "my agent", "a@b@c", "agent?x=1"] {
            assert_eq!(
                pointer_of(with("agent_id", json!(bad))),
                "/agent_id",
                "{bad}"
            );
        }
        assert_eq!(pointer_of(with("max_rate", json!(0))), "/max_rate");
        assert_eq!(pointer_of(with("max_rate", json!(20_000))), "/max_rate");
        assert_eq!(
            RcsConfig::parse(&with("max_rate", json!(5)))
                .unwrap()
                .max_rate(),
            5.0
        );
        assert_eq!(
            pointer_of(with("check_capability", json!("no"))),
            "/check_capability"
        );
        assert!(
            !RcsConfig::parse(&with("check_capability", json!(false)))
                .unwrap()
                .check_capability()
        );
    }

    #[test]
    fn the_agent_is_recognised_with_or_without_its_domain() {
        let config = RcsConfig::parse(&minimal()).unwrap();
        assert!(config.is_own_agent("relais_ab12cd34_agent@rbm.goog"));
        assert!(config.is_own_agent("relais_ab12cd34_agent"));
        assert!(!config.is_own_agent("other_agent@rbm.goog"));
        let with_domain =
            RcsConfig::parse(&with("agent_id", json!("relais_ab12cd34_agent@rbm.goog"))).unwrap();
        assert!(with_domain.is_own_agent("relais_ab12cd34_agent"));
    }

    #[test]
    fn an_empty_client_token_is_refused() {
        assert_eq!(
            pointer_of(with("client_token", json!(" "))),
            "/client_token"
        );
        assert_eq!(pointer_of(with("client_token", json!(7))), "/client_token");
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let shown = format!("{:?}", RcsConfig::parse(&minimal()).unwrap());
        assert!(!shown.contains("SJENCPGJESMGUFPY"), "{shown}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(shown.contains("relais_ab12cd34_agent"), "{shown}");
    }
}
