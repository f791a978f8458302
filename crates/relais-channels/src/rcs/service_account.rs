//! A Google service account, as the JSON key file Google gives for it: who the channel
//! authenticates as (`client_email`), where it trades a signed assertion for an access
//! token (`token_uri`), and the RSA key it signs with (`private_key`, PEM).
//!
//! The key is parsed once, where the config enters, so a channel with a key Google would
//! refuse never starts; it never shows in `Debug` output. The file's other members
//! (`project_id`, `client_id`, `auth_uri`…) are not needed and are let through, so a key
//! file pasted whole is taken as it is.

use super::config::ConfigError;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;

/// Google's token endpoint, for a key file that does not name one.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// A checked service account key.
#[derive(Clone)]
pub struct ServiceAccount {
    client_email: String,
    private_key_id: Option<String>,
    token_uri: String,
    /// Shared so that the config stays `Clone`: ring's key pair is not.
    key: Arc<RsaKeyPair>,
}

/// Why a PEM private key was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no `-----BEGIN PRIVATE KEY-----` block; paste the key file's `private_key` as it is")]
    NoPemBlock,
    #[error("the PEM block is not base64")]
    NotBase64,
    #[error("the key is not an RSA private key ring accepts: {0}")]
    Rejected(String),
}

/// The signature could not be made (ring reports no more than that).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the service account key could not sign the assertion")]
pub struct SignError;

/// Reads an RSA private key from PEM: PKCS#8 (`PRIVATE KEY`, what Google's key files
/// hold) or PKCS#1 (`RSA PRIVATE KEY`). Text around the block is ignored, as RFC 7468
/// asks of parsers.
pub fn parse_pem_key(pem: &str) -> Result<RsaKeyPair, KeyError> {
    for (label, parse) in [
        (
            "PRIVATE KEY",
            RsaKeyPair::from_pkcs8 as fn(&[u8]) -> Result<RsaKeyPair, _>,
        ),
        ("RSA PRIVATE KEY", RsaKeyPair::from_der),
    ] {
        let Some(der) = pem_block(pem, label)? else {
            continue;
        };
        return parse(&der).map_err(|e| KeyError::Rejected(e.to_string()));
    }
    Err(KeyError::NoPemBlock)
}

/// The bytes of the `label` block, when there is one.
pub(crate) fn pem_block(pem: &str, label: &str) -> Result<Option<Vec<u8>>, KeyError> {
    // Key files carry the PEM with `\n` escapes, which JSON decoding already turned into
    // newlines; a key pasted through a form may have kept them literally.
    let pem = pem.replace("\\n", "\n");
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let Some(start) = pem.find(&begin).map(|at| at + begin.len()) else {
        return Ok(None);
    };
    let Some(stop) = pem[start..].find(&end).map(|at| start + at) else {
        return Err(KeyError::NoPemBlock);
    };
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map(Some)
        .map_err(|_| KeyError::NotBase64)
}

impl ServiceAccount {
    /// Reads the key file, given as its JSON object or as a string holding it. Errors
    /// point under `/service_account`.
    pub(crate) fn parse(value: &Value) -> Result<ServiceAccount, ConfigError> {
        let parsed;
        let object = match value {
            Value::Object(object) => object,
            Value::String(text) => {
                parsed = serde_json::from_str::<Value>(text)
                    .map_err(|e| invalid("", format!("is not the key file's JSON: {e}")))?;
                parsed
                    .as_object()
                    .ok_or_else(|| invalid("", "must be the key file's JSON object"))?
            }
            _ => {
                return Err(invalid(
                    "",
                    "must be the service account's JSON key file (an object, or a string holding it)",
                ));
            }
        };
        if let Some(kind) = object.get("type").and_then(Value::as_str)
            && kind != "service_account"
        {
            return Err(invalid(
                "/type",
                format!("is `{kind}`; a service account's key file says `service_account`"),
            ));
        }
        let client_email = field(object, "client_email")?
            .filter(|email| email.contains('@') && !email.chars().any(char::is_whitespace))
            .ok_or_else(|| invalid("/client_email", "must be the service account's email"))?;
        let private_key_id = field(object, "private_key_id")?;
        let token_uri = match field(object, "token_uri")? {
            Some(uri) => crate::config_keys::checked_url(
                "/service_account/token_uri",
                &uri,
                "https://oauth2.googleapis.com/token",
            )?,
            None => DEFAULT_TOKEN_URI.to_owned(),
        };
        let pem =
            field(object, "private_key")?.ok_or_else(|| invalid("/private_key", "is required"))?;
        let key = parse_pem_key(&pem).map_err(|e| invalid("/private_key", e.to_string()))?;
        Ok(ServiceAccount {
            client_email,
            private_key_id,
            token_uri,
            key: Arc::new(key),
        })
    }

    /// Who the channel authenticates as: the `iss` of its assertions.
    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    /// Which of the account's keys signs (the assertion's `kid`), when the file says.
    pub fn private_key_id(&self) -> Option<&str> {
        self.private_key_id.as_deref()
    }

    /// Where assertions are traded for access tokens, as the key file names it.
    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// The public half of the key (a DER `RSAPublicKey`), which verifies its signatures.
    pub fn public_key_der(&self) -> &[u8] {
        self.key.public().as_ref()
    }

    /// An RSASSA-PKCS1-v1_5 SHA-256 signature of `message` (JWT's `RS256`).
    pub fn sign_rs256(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| SignError)?;
        Ok(signature)
    }
}

impl PartialEq for ServiceAccount {
    fn eq(&self, other: &Self) -> bool {
        // Two keys are the same key when their public halves are.
        self.client_email == other.client_email
            && self.private_key_id == other.private_key_id
            && self.token_uri == other.token_uri
            && self.public_key_der() == other.public_key_der()
    }
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written by hand so that a logged config never carries the private key.
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

fn invalid(under: &str, detail: impl Into<String>) -> ConfigError {
    let pointer = format!("/service_account{under}");
    let detail = detail.into();
    let key = under.trim_start_matches('/');
    if key.is_empty() {
        ConfigError::new(&pointer, format!("`service_account` {detail}"))
    } else {
        ConfigError::new(&pointer, format!("`service_account.{key}` {detail}"))
    }
}

/// A string member, trimmed; `None` when absent, null or empty.
fn field(object: &Map<String, Value>, key: &str) -> Result<Option<String>, ConfigError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(invalid(&format!("/{key}"), "must be a string")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use serde_json::json;

    /// The test-only key (see the fixture's header).
    pub(crate) const TEST_KEY: &str =
        include_str!("../../tests/fixtures/rcs-service-account-key.pem");

    pub(crate) fn key_file() -> Value {
        json!({"type": "service_account", "project_id": "relais-test",
            "private_key_id": "3f1a", "private_key": TEST_KEY,
            "client_email": "relais@relais-test.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token",
            "universe_domain": "googleapis.com"})
    }

    fn pointer_of(value: Value) -> String {
        ServiceAccount::parse(&value)
            .err()
            .map(|e| e.pointer)
            .unwrap_or_default()
    }

    #[test]
    fn a_key_file_is_read_whole_or_from_a_string_holding_it() {
        let account = ServiceAccount::parse(&key_file()).unwrap();
        assert_eq!(
            account.client_email(),
            "relais@relais-test.iam.gserviceaccount.com"
        );
        assert_eq!(account.private_key_id(), Some("3f1a"));
        assert_eq!(account.token_uri(), DEFAULT_TOKEN_URI);
        let as_text = ServiceAccount::parse(&json!(key_file().to_string())).unwrap();
        assert_eq!(as_text, account);
    }

    #[test]
    fn what_signs_is_verified_by_the_public_half() {
        let account = ServiceAccount::parse(&key_file()).unwrap();
        let signature = account.sign_rs256(b"header.claims").unwrap();
        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, account.public_key_der());
        assert!(public.verify(b"header.claims", &signature).is_ok());
        assert!(public.verify(b"header.claimz", &signature).is_err());
    }

    #[test]
    fn a_key_that_does_not_parse_is_refused_at_its_pointer() {
        let mut file = key_file();
        file["private_key"] =
            json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
        assert_eq!(pointer_of(file.clone()), "/service_account/private_key");
        file["private_key"] = json!("not a key");
        assert_eq!(pointer_of(file.clone()), "/service_account/private_key");
        file["private_key"] = json!("-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----");
        assert_eq!(pointer_of(file), "/service_account/private_key");
        assert_eq!(parse_pem_key("x").err(), Some(KeyError::NoPemBlock));
    }

    #[test]
    fn escaped_newlines_in_a_pasted_key_are_taken() {
        assert!(parse_pem_key(&TEST_KEY.replace('\n', "\\n")).is_ok());
    }

    #[test]
    fn missing_or_wrong_members_are_named() {
        let mut file = key_file();
        file.as_object_mut().unwrap().remove("client_email");
        assert_eq!(pointer_of(file), "/service_account/client_email");
        let mut file = key_file();
        file["type"] = json!("authorized_user");
        assert_eq!(pointer_of(file), "/service_account/type");
        let mut file = key_file();
        file["token_uri"] = json!("ftp://x");
        assert_eq!(pointer_of(file), "/service_account/token_uri");
        assert_eq!(pointer_of(json!(42)), "/service_account");
        assert_eq!(pointer_of(json!("{not json")), "/service_account");
    }

    #[test]
    fn debug_output_never_shows_the_private_key() {
        let shown = format!("{:?}", ServiceAccount::parse(&key_file()).unwrap());
        assert!(!shown.contains("BEGIN PRIVATE KEY"), "{shown}");
        assert!(shown.contains("relais@relais-test"), "{shown}");
    }
}
