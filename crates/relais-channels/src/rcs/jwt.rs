//! The assertion a service account trades for an access token: a JWT signed `RS256`
//! with the account's key (RFC 7523, as Google's "OAuth 2.0 for server to server
//! applications" describes it).
//!
//! `iss` is the account's email, `scope` the RBM API's, `aud` the token endpoint it is
//! sent to, and it lives an hour from `iat`, the most Google accepts. Time comes in as an
//! argument, so the claims are tested without a clock.

use super::service_account::{ServiceAccount, SignError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use serde_json::{Value, json};

/// The scope the RCS channel asks for.
pub const SCOPE: &str = "https://www.googleapis.com/auth/rcsbusinessmessaging";

/// The scope the FCM channel asks for (the same service-account flow, another API).
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// The `grant_type` of an assertion exchange (RFC 7523).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Seconds an assertion lives: Google refuses any that lives longer than an hour.
pub const LIFETIME_SECS: i64 = 3600;

/// The signed assertion for `audience` (the token endpoint), made at `now`, asking for
/// RBM's [`SCOPE`].
pub fn assertion(
    account: &ServiceAccount,
    audience: &str,
    now: Timestamp,
) -> Result<String, SignError> {
    scoped_assertion(account, audience, SCOPE, now)
}

/// The signed assertion for `audience`, asking for `scope`, made at `now`.
pub fn scoped_assertion(
    account: &ServiceAccount,
    audience: &str,
    scope: &str,
    now: Timestamp,
) -> Result<String, SignError> {
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = account.private_key_id() {
        header["kid"] = json!(kid);
    }
    let issued = now.as_second();
    let claims = json!({
        "iss": account.client_email(),
        "scope": scope,
        "aud": audience,
        "iat": issued,
        "exp": issued + LIFETIME_SECS,
    });
    let signing_input = format!("{}.{}", segment(&header), segment(&claims));
    let signature = account.sign_rs256(signing_input.as_bytes())?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// A JWT segment: the JSON, base64url without padding.
fn segment(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::service_account::tests::key_file;
    use super::*;
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    fn decoded(segment: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
    }

    #[test]
    fn the_assertion_carries_googles_claims_and_verifies_with_the_public_key() {
        let account = ServiceAccount::parse(&key_file()).unwrap();
        let now = Timestamp::from_second(1_750_000_000).unwrap();
        let jwt = assertion(&account, "https://oauth2.googleapis.com/token", now).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            decoded(parts[0]),
            json!({"alg": "RS256", "typ": "JWT", "kid": "3f1a"})
        );
        assert_eq!(
            decoded(parts[1]),
            json!({"iss": "relais@relais-test.iam.gserviceaccount.com", "scope": SCOPE,
                "aud": "https://oauth2.googleapis.com/token",
                "iat": 1_750_000_000, "exp": 1_750_003_600})
        );
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, account.public_key_der())
            .verify(signed.as_bytes(), &signature)
            .expect("the signature verifies");
    }

    #[test]
    fn a_key_file_without_a_key_id_gives_a_header_without_kid() {
        let mut file = key_file();
        file.as_object_mut().unwrap().remove("private_key_id");
        let account = ServiceAccount::parse(&file).unwrap();
        let jwt = assertion(&account, "aud", Timestamp::UNIX_EPOCH).unwrap();
        let header = jwt.split('.').next().unwrap();
        assert_eq!(decoded(header), json!({"alg": "RS256", "typ": "JWT"}));
    }
}
