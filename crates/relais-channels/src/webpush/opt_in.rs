//! A page's opt-in to Web Push, as data the engine keeps without knowing the channel: the
//! public key a page subscribes with ([`push_key`], from a channel's opened config), and
//! the subscription it posts ([`SubscriptionJson`]) as the contact identity it becomes.
//!
//! One subscription is one identity: its address is the same compact JSON whatever the
//! browser added (`expirationTime`), so subscribing twice changes nothing.

use super::config::WebpushConfig;
use super::subscription::{Subscription, SubscriptionError};
use relais_core::channel::ChannelKind;
use relais_core::contact::Identity;

/// What a page needs to subscribe to a Web Push channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushKey {
    /// Uncompressed P-256 point, base64url: the page's `applicationServerKey`. Never the
    /// private key.
    pub public_key: String,
    /// The channel takes `http://` endpoints (a local push service in tests).
    pub allow_http: bool,
}

/// The key of a configured channel of `kind` with `config` (secrets opened), when it is
/// a Web Push channel whose config reads.
pub fn push_key(kind: &str, config: &serde_json::Value) -> Option<PushKey> {
    if kind != super::KIND {
        return None;
    }
    let config = WebpushConfig::parse(config).ok()?;
    Some(PushKey {
        public_key: config.public_key().to_owned(),
        allow_http: config.allow_http_endpoints(),
    })
}

/// A subscription as the browser's `PushSubscription.toJSON()` gives it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SubscriptionJson {
    pub endpoint: String,
    pub keys: SubscriptionKeys,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct SubscriptionKeys {
    pub p256dh: String,
    pub auth: String,
}

impl SubscriptionJson {
    /// The contact identity the subscription becomes, once checked (an `https://`
    /// endpoint unless `allow_http`, a 65-byte P-256 `p256dh`, a 16-byte `auth`).
    pub fn identity(&self, allow_http: bool) -> Result<Identity, SubscriptionError> {
        let address = serde_json::json!({
            "endpoint": self.endpoint,
            "keys": {"p256dh": self.keys.p256dh, "auth": self.keys.auth},
        })
        .to_string();
        Subscription::parse(&address, allow_http)?;
        Ok(Identity {
            channel: ChannelKind::Webpush,
            address,
        })
    }
}

/// Whether `identity` is a Web Push subscription at `endpoint`.
pub fn subscribed_at(identity: &Identity, endpoint: &str) -> bool {
    identity.channel == ChannelKind::Webpush
        && serde_json::from_str::<serde_json::Value>(&identity.address)
            .ok()
            .and_then(|v| v.get("endpoint")?.as_str().map(|e| e == endpoint))
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P256DH: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

    fn browser(json: serde_json::Value) -> SubscriptionJson {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_subscription_is_one_identity_whatever_the_browser_adds() {
        let endpoint = "https://fcm.googleapis.com/fcm/send/abc";
        let plain = browser(serde_json::json!({"endpoint": endpoint,
            "keys": {"p256dh": P256DH, "auth": AUTH}}));
        let with_expiry = browser(serde_json::json!({"endpoint": endpoint,
            "expirationTime": null, "keys": {"auth": AUTH, "p256dh": P256DH}}));
        let identity = plain.identity(false).unwrap();
        assert_eq!(identity, with_expiry.identity(false).unwrap());
        assert_eq!(identity.channel, ChannelKind::Webpush);
        assert!(subscribed_at(&identity, endpoint));
        assert!(!subscribed_at(
            &identity,
            "https://fcm.googleapis.com/fcm/send/other"
        ));
    }

    #[test]
    fn only_a_web_push_channel_gives_a_key() {
        let config = serde_json::json!({"vapid_private_key": "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw",
            "vapid_subject": "mailto:ops@example.com"});
        let key = push_key(super::super::KIND, &config).unwrap();
        assert!(
            key.public_key
                .starts_with("BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vC")
        );
        assert!(!key.allow_http);
        assert_eq!(push_key("fcm", &config), None);
    }
}
