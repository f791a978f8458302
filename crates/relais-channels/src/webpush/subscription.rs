//! A `webpush` identity's address: the browser's push subscription, as
//! `JSON.stringify(subscription)` writes it: `{"endpoint", "expirationTime", "keys":
//! {"p256dh", "auth"}}` (compact JSON has no whitespace, so it is a valid opaque address).
//!
//! Checked where it is read: an `https://` endpoint (`http://` only when the channel's
//! `allow_http_endpoints` is set, for a local push service), `p256dh` an uncompressed
//! P-256 point (65 bytes, `0x04` first), `auth` 16 bytes, both base64url.

use super::ece::ReceiverKeys;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// A subscription read from an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub endpoint: reqwest::Url,
    pub keys: ReceiverKeys,
}

#[derive(Deserialize)]
struct Wire {
    endpoint: String,
    keys: WireKeys,
}

#[derive(Deserialize)]
struct WireKeys {
    p256dh: String,
    auth: String,
}

/// Why an address is not a usable subscription.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error(
        "the address must be the subscription's JSON, {{\"endpoint\": …, \"keys\": {{\"p256dh\": …, \"auth\": …}}}}: {0}"
    )]
    Shape(String),
    #[error("the endpoint must be an https:// URL")]
    Endpoint,
    #[error("`keys.p256dh` must be a base64url uncompressed P-256 point (65 bytes)")]
    P256dh,
    #[error("`keys.auth` must be 16 bytes in base64url")]
    Auth,
}

impl Subscription {
    pub fn parse(address: &str, allow_http: bool) -> Result<Subscription, SubscriptionError> {
        let wire: Wire =
            serde_json::from_str(address).map_err(|e| SubscriptionError::Shape(e.to_string()))?;
        let endpoint =
            reqwest::Url::parse(&wire.endpoint).map_err(|_| SubscriptionError::Endpoint)?;
        let scheme_ok = endpoint.scheme() == "https" || (allow_http && endpoint.scheme() == "http");
        if !scheme_ok || endpoint.host_str().is_none() {
            return Err(SubscriptionError::Endpoint);
        }
        let decode = |text: &str| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok();
        let p256dh: [u8; 65] = decode(&wire.keys.p256dh)
            .and_then(|bytes| bytes.try_into().ok())
            .filter(|point: &[u8; 65]| point[0] == 0x04)
            .ok_or(SubscriptionError::P256dh)?;
        let auth: [u8; 16] = decode(&wire.keys.auth)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(SubscriptionError::Auth)?;
        Ok(Subscription {
            endpoint,
            keys: ReceiverKeys { p256dh, auth },
        })
    }

    /// The endpoint's origin (`https://fcm.googleapis.com`): the VAPID token's audience.
    pub fn audience(&self) -> String {
        self.endpoint.origin().ascii_serialization()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P256DH: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

    fn address(endpoint: &str, p256dh: &str, auth: &str) -> String {
        serde_json::json!({"endpoint": endpoint, "expirationTime": null,
            "keys": {"p256dh": p256dh, "auth": auth}})
        .to_string()
    }

    #[test]
    fn a_browsers_subscription_json_is_read() {
        let sub = Subscription::parse(
            &address("https://fcm.googleapis.com/fcm/send/abc:def", P256DH, AUTH),
            false,
        )
        .unwrap();
        assert_eq!(sub.audience(), "https://fcm.googleapis.com");
        assert_eq!(sub.keys.auth.len(), 16);
        assert_eq!(sub.keys.p256dh[0], 4);
    }

    #[test]
    fn bad_endpoints_and_keys_are_refused() {
        let https = "https://push.example.net/x";
        let cases = [
            (
                address("http://push.example.net/x", P256DH, AUTH),
                SubscriptionError::Endpoint,
            ),
            (
                address("push.example.net/x", P256DH, AUTH),
                SubscriptionError::Endpoint,
            ),
            (
                address(https, &P256DH[..43], AUTH),
                SubscriptionError::P256dh,
            ),
            (
                address(https, &format!("A{}", &P256DH[1..]), AUTH),
                SubscriptionError::P256dh,
            ),
            (address(https, P256DH, "AAAA"), SubscriptionError::Auth),
            (
                address(https, P256DH, "not base64!"),
                SubscriptionError::Auth,
            ),
        ];
        for (address, expected) in cases {
            assert_eq!(
                Subscription::parse(&address, false).unwrap_err(),
                expected,
                "{address}"
            );
        }
        assert!(matches!(
            Subscription::parse("1234", false).unwrap_err(),
            SubscriptionError::Shape(_)
        ));
        assert!(Subscription::parse(&address("http://127.0.0.1:9/x", P256DH, AUTH), true).is_ok());
    }
}
