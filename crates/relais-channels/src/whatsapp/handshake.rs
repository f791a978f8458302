//! Meta's subscription handshake: before it sends webhooks to a URL, Meta calls it with
//! `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…` and expects the challenge
//! back, and only the owner of the channel knows the verify token.
//!
//! The token is compared in constant time, so the answer's timing says nothing about how
//! much of a guess was right. The challenge is echoed only when it is a short token of
//! letters and digits (Meta sends an integer): our server never reflects arbitrary text.

use crate::secret::same_secret;

/// Challenges longer than this are refused; Meta's are integers of about ten digits.
const MAX_CHALLENGE_LEN: usize = 256;

/// The handshake's query parameters, as the request carried them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionRequest {
    pub mode: Option<String>,
    pub verify_token: Option<String>,
    pub challenge: Option<String>,
}

impl SubscriptionRequest {
    /// Picks `hub.mode`, `hub.verify_token` and `hub.challenge` out of decoded query pairs.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> SubscriptionRequest
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut request = SubscriptionRequest::default();
        for (key, value) in pairs {
            let slot = match key.as_ref() {
                "hub.mode" => &mut request.mode,
                "hub.verify_token" => &mut request.verify_token,
                "hub.challenge" => &mut request.challenge,
                _ => continue,
            };
            *slot = Some(value.as_ref().to_owned());
        }
        request
    }
}

/// Why a handshake is refused (answer 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("the handshake has no `{0}` parameter")]
    Missing(&'static str),
    #[error("`hub.mode` is `{0}`, not `subscribe`")]
    NotSubscribe(String),
    #[error("`hub.verify_token` does not match the channel's `verify_token`")]
    WrongToken,
    #[error("`hub.challenge` must be 1 to 256 letters, digits, `-` or `_`")]
    BadChallenge,
}

/// The challenge to answer with, when the request is a subscription carrying our token.
pub fn answer(
    expected_token: &str,
    request: &SubscriptionRequest,
) -> Result<String, HandshakeError> {
    let mode = request
        .mode
        .as_deref()
        .ok_or(HandshakeError::Missing("hub.mode"))?;
    if mode != "subscribe" {
        return Err(HandshakeError::NotSubscribe(mode.to_owned()));
    }
    let token = request
        .verify_token
        .as_deref()
        .ok_or(HandshakeError::Missing("hub.verify_token"))?;
    if !same_secret(expected_token, token) {
        return Err(HandshakeError::WrongToken);
    }
    let challenge = request
        .challenge
        .as_deref()
        .ok_or(HandshakeError::Missing("hub.challenge"))?;
    let plain = !challenge.is_empty()
        && challenge.len() <= MAX_CHALLENGE_LEN
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        Ok(challenge.to_owned())
    } else {
        Err(HandshakeError::BadChallenge)
    }
}

impl super::WhatsAppConfig {
    /// The challenge to answer Meta's subscription handshake with, for this channel.
    pub fn answer_subscription(
        &self,
        request: &SubscriptionRequest,
    ) -> Result<String, HandshakeError> {
        answer(self.verify_token(), request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(mode: &str, token: &str, challenge: &str) -> SubscriptionRequest {
        SubscriptionRequest::from_pairs([
            ("hub.mode", mode),
            ("hub.verify_token", token),
            ("hub.challenge", challenge),
            ("other", "ignored"),
        ])
    }

    #[test]
    fn a_subscription_with_our_token_gets_its_challenge_back() {
        assert_eq!(
            answer(
                "meatyhamhock",
                &request("subscribe", "meatyhamhock", "1158201444")
            ),
            Ok("1158201444".to_owned())
        );
    }

    #[test]
    fn a_wrong_token_or_mode_is_refused() {
        assert_eq!(
            answer("meatyhamhock", &request("subscribe", "meatyham", "1")),
            Err(HandshakeError::WrongToken)
        );
        assert_eq!(
            answer("meatyhamhock", &request("subscribe", "", "1")),
            Err(HandshakeError::WrongToken)
        );
        assert_eq!(
            answer("meatyhamhock", &request("unsubscribe", "meatyhamhock", "1")),
            Err(HandshakeError::NotSubscribe("unsubscribe".into()))
        );
    }

    #[test]
    fn missing_parameters_are_named() {
        let no_token = SubscriptionRequest::from_pairs([("hub.mode", "subscribe")]);
        assert_eq!(
            answer("t", &no_token),
            Err(HandshakeError::Missing("hub.verify_token"))
        );
        assert_eq!(
            answer("t", &SubscriptionRequest::default()),
            Err(HandshakeError::Missing("hub.mode"))
        );
        let no_challenge =
            SubscriptionRequest::from_pairs([("hub.mode", "subscribe"), ("hub.verify_token", "t")]);
        assert_eq!(
            answer("t", &no_challenge),
            Err(HandshakeError::Missing("hub.challenge"))
        );
    }

    #[test]
    fn a_challenge_that_is_not_a_plain_token_is_not_echoed() {
        for bad in ["", "<script>alert(1)</script>", "a b", &"9".repeat(300)] {
            assert_eq!(
                answer("t", &request("subscribe", "t", bad)),
                Err(HandshakeError::BadChallenge),
                "{bad}"
            );
        }
    }
}
