//! An `fcm` channel's `config`, read and checked once where it enters.
//!
//! Keys: `service_account` (secret: the Firebase project's service account JSON key, an
//! object or a string holding it), `project_id` (defaults to the key file's own
//! `project_id`), `base_url`, `token_uri` (overrides the key file's) and `max_rate`.
//! Unknown keys are refused; errors point at the key with a JSON pointer. The private key
//! never shows in `Debug` output.

use crate::config_keys::{self, checked_url, error, refuse_unknown_keys, required, string};
use crate::rcs::ServiceAccount;
use serde_json::Value;

pub use crate::configured::ConfigError;

/// Where the FCM HTTP v1 API answers.
pub const DEFAULT_BASE_URL: &str = "https://fcm.googleapis.com";

/// Messages per second: FCM's default quota is 600 000 a minute per project; a channel
/// stays far under it unless told otherwise.
pub const DEFAULT_MAX_RATE: f64 = 500.0;

const KEYS: [&str; 5] = [
    "service_account",
    "project_id",
    "base_url",
    "token_uri",
    "max_rate",
];

/// A checked `fcm` channel configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct FcmConfig {
    service_account: ServiceAccount,
    project_id: String,
    base_url: String,
    token_uri: Option<String>,
    max_rate: f64,
}

impl FcmConfig {
    /// Reads and checks a channel's `config` object.
    pub fn parse(value: &Value) -> Result<FcmConfig, ConfigError> {
        let object = value
            .as_object()
            .ok_or_else(|| error("", "the config must be a JSON object"))?;
        refuse_unknown_keys(object, &KEYS)?;
        let key_file = match object.get("service_account") {
            None | Some(Value::Null) => return Err(required("service_account")),
            Some(value) => value,
        };
        let service_account = ServiceAccount::parse(key_file)?;
        let project_id = match string(object, "project_id")? {
            Some(id) => id.trim().to_owned(),
            None => project_of_key_file(key_file).unwrap_or_default(),
        };
        // It goes into the URL's path: Firebase project ids are lowercase letters,
        // digits and hyphens.
        if project_id.is_empty()
            || project_id.len() > 64
            || !project_id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(error(
                "/project_id",
                "`project_id` must be the Firebase project's id (lowercase letters, digits and `-`, such as `my-app-1a2b3`); it is read from the key file when absent",
            ));
        }
        let base_url = match string(object, "base_url")? {
            Some(url) => checked_url("/base_url", url, DEFAULT_BASE_URL)?,
            None => DEFAULT_BASE_URL.to_owned(),
        };
        let token_uri = string(object, "token_uri")?
            .map(|uri| checked_url("/token_uri", uri, "https://oauth2.googleapis.com/token"))
            .transpose()?;
        let max_rate = config_keys::max_rate(object, DEFAULT_MAX_RATE)?;
        Ok(FcmConfig {
            service_account,
            project_id,
            base_url,
            token_uri,
            max_rate,
        })
    }

    pub fn service_account(&self) -> &ServiceAccount {
        &self.service_account
    }

    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// Without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Where assertions are traded for access tokens: the `token_uri` key, else the key
    /// file's.
    pub fn token_uri(&self) -> &str {
        self.token_uri
            .as_deref()
            .unwrap_or(self.service_account.token_uri())
    }

    pub fn max_rate(&self) -> f64 {
        self.max_rate
    }

    /// `{base_url}/v1/projects/{project_id}/messages:send`.
    pub fn send_url(&self) -> String {
        format!(
            "{}/v1/projects/{}/messages:send",
            self.base_url, self.project_id
        )
    }
}

/// The `project_id` member of the key file, given as an object or a string holding it.
fn project_of_key_file(key_file: &Value) -> Option<String> {
    let parsed;
    let object = match key_file {
        Value::String(text) => {
            parsed = serde_json::from_str::<Value>(text).ok()?;
            &parsed
        }
        other => other,
    };
    object
        .get("project_id")
        .and_then(Value::as_str)
        .map(|id| id.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rcs::service_account::tests::key_file;
    use serde_json::json;

    fn pointer_of(config: Value) -> String {
        FcmConfig::parse(&config)
            .err()
            .map(|e| e.pointer)
            .unwrap_or_default()
    }

    #[test]
    fn the_project_comes_from_the_key_file_unless_given() {
        let config = FcmConfig::parse(&json!({"service_account": key_file()})).unwrap();
        assert_eq!(config.project_id(), "relais-test");
        assert_eq!(
            config.send_url(),
            "https://fcm.googleapis.com/v1/projects/relais-test/messages:send"
        );
        assert_eq!(config.token_uri(), "https://oauth2.googleapis.com/token");
        let config = FcmConfig::parse(&json!({"service_account": key_file().to_string(),
            "project_id": "other-1", "base_url": "http://127.0.0.1:9/",
            "token_uri": "http://127.0.0.1:9/token"}))
        .unwrap();
        assert_eq!(
            config.send_url(),
            "http://127.0.0.1:9/v1/projects/other-1/messages:send"
        );
        assert_eq!(config.token_uri(), "http://127.0.0.1:9/token");
    }

    #[test]
    fn bad_keys_are_named() {
        assert_eq!(pointer_of(json!({})), "/service_account");
        let mut file = key_file();
        file.as_object_mut().unwrap().remove("project_id");
        assert_eq!(pointer_of(json!({"service_account": file})), "/project_id");
        assert_eq!(
            pointer_of(json!({"service_account": key_file(), "project_id": "a/b"})),
            "/project_id"
        );
        assert_eq!(
            pointer_of(json!({"service_account": key_file(), "server_key": "x"})),
            "/server_key"
        );
        let mut file = key_file();
        file["private_key"] = json!("nope");
        assert_eq!(
            pointer_of(json!({"service_account": file})),
            "/service_account/private_key"
        );
    }

    #[test]
    fn debug_output_never_shows_the_private_key() {
        let config = FcmConfig::parse(&json!({"service_account": key_file()})).unwrap();
        assert!(!format!("{config:?}").contains("PRIVATE KEY"));
    }
}
