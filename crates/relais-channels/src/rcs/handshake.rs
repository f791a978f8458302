//! Google's webhook verification: when an operator registers the channel's address in
//! the Business Communications Developer Console and clicks Verify, Google posts
//! `{"clientToken": "…", "secret": "…"}` and expects `200 OK` with the plain text of
//! `secret` as the body. Only the owner of the agent knows the client token.
//!
//! The token is compared in constant time, so the answer's timing says nothing about how
//! much of a guess was right. The secret is echoed only when it is a short token of
//! letters, digits and base64 punctuation (Google sends digits): our server never
//! reflects arbitrary text.

use crate::secret::same_secret;

/// Secrets longer than this are refused; Google's are about ten digits.
const MAX_SECRET_LEN: usize = 256;

/// The verification call's members, as the request carried them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    pub client_token: Option<String>,
    pub secret: Option<String>,
}

impl Verification {
    /// Reads a JSON body as a verification call; `None` when it is not one (no
    /// `clientToken` member), such as a delivery.
    pub fn from_body(body: &serde_json::Value) -> Option<Verification> {
        let object = body.as_object()?;
        if !object.contains_key("clientToken") || object.contains_key("message") {
            return None;
        }
        let text = |key: &str| {
            object
                .get(key)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        Some(Verification {
            client_token: text("clientToken"),
            secret: text("secret"),
        })
    }
}

/// Why a verification is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("the verification has no `{0}` string")]
    Missing(&'static str),
    #[error("`clientToken` does not match the channel's `client_token`")]
    WrongToken,
    #[error("`secret` must be 1 to 256 letters, digits, `-`, `_`, `+`, `/` or `=`")]
    BadSecret,
}

/// The secret to answer with, when the call carries our client token.
pub fn answer(expected_token: &str, call: &Verification) -> Result<String, HandshakeError> {
    let token = call
        .client_token
        .as_deref()
        .ok_or(HandshakeError::Missing("clientToken"))?;
    if !same_secret(expected_token, token) {
        return Err(HandshakeError::WrongToken);
    }
    let secret = call
        .secret
        .as_deref()
        .ok_or(HandshakeError::Missing("secret"))?;
    let plain = !secret.is_empty()
        && secret.len() <= MAX_SECRET_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/' | b'='));
    if plain {
        Ok(secret.to_owned())
    } else {
        Err(HandshakeError::BadSecret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(token: &str, secret: &str) -> Verification {
        Verification::from_body(&json!({"clientToken": token, "secret": secret})).unwrap()
    }

    #[test]
    fn a_verification_with_our_token_gets_its_secret_back() {
        assert_eq!(
            answer("SJENCPGJESMGUFPY", &call("SJENCPGJESMGUFPY", "1234567890")),
            Ok("1234567890".to_owned())
        );
    }

    #[test]
    fn a_wrong_or_missing_token_is_refused() {
        assert_eq!(
            answer("SJENCPGJESMGUFPY", &call("SJENCPGJ", "1")),
            Err(HandshakeError::WrongToken)
        );
        assert_eq!(
            answer("SJENCPGJESMGUFPY", &call("", "1")),
            Err(HandshakeError::WrongToken)
        );
        let no_token = Verification::from_body(&json!({"clientToken": 7, "secret": "1"})).unwrap();
        assert_eq!(
            answer("t", &no_token),
            Err(HandshakeError::Missing("clientToken"))
        );
    }

    #[test]
    fn a_secret_that_is_not_a_plain_token_is_not_echoed() {
        for bad in ["", "<script>alert(1)</script>", "a b", &"9".repeat(300)] {
            assert_eq!(
                answer("t", &call("t", bad)),
                Err(HandshakeError::BadSecret),
                "{bad}"
            );
        }
        let no_secret = Verification::from_body(&json!({"clientToken": "t"})).unwrap();
        assert_eq!(
            answer("t", &no_secret),
            Err(HandshakeError::Missing("secret"))
        );
    }

    #[test]
    fn a_delivery_is_not_a_verification() {
        assert_eq!(
            Verification::from_body(&json!({"message": {"data": "e30="}, "subscription": "s"})),
            None
        );
        assert_eq!(Verification::from_body(&json!([1])), None);
    }
}
