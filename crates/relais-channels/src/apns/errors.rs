//! What an APNs error answer means. APNs answers `{"reason": "…"}` (and a `timestamp`
//! with 410); the reason decides, then the HTTP status:
//!
//! | answer                                                    | class     | stable code            |
//! |-----------------------------------------------------------|-----------|------------------------|
//! | 410 `Unregistered`, 400 `BadDeviceToken`                   | permanent | `subscription_gone`    |
//! | 400 `DeviceTokenNotForTopic`                               | permanent | `invalid_recipient`    |
//! | 429 `TooManyProviderTokenUpdates` (holds the channel 60 s) | transient | `throttled`            |
//! | 429 `TooManyRequests` (this device)                        | transient | `throttled`            |
//! | 403 `ExpiredProviderToken`, `InvalidProviderToken`, other 403 (after one token refresh) | not sent | `auth_failed` |
//! | 413 `PayloadTooLarge`                                      | permanent | `bad_content`          |
//! | any other 400, 404, 405                                    | permanent | `invalid_request`      |
//! | 5xx or no answer                                           | transient | `provider_unavailable` |
//! | anything else                                              | permanent | `provider_error`       |
//!
//! `subscription_gone` says the token will never work again ([`SendError::address_gone`]):
//! the engine removes it from the contact.

use crate::adapter::SendError;
use relais_core::retry::ErrorClass;
use serde_json::Value;
use std::time::Duration;

/// How long `TooManyProviderTokenUpdates` holds the channel.
pub const TOKEN_UPDATES_HOLD: Duration = Duration::from_secs(60);

/// The `reason` of an error answer, or an empty string.
pub fn reason_of(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|a| a.get("reason").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

/// Whether APNs refused the provider token itself (worth one refresh).
pub fn is_token_refused(http_status: u16, reason: &str) -> bool {
    http_status == 403 && matches!(reason, "ExpiredProviderToken" | "InvalidProviderToken")
}

/// The error, and how long to hold the channel when it should be held.
pub fn classify(http_status: u16, body: &[u8]) -> (SendError, Option<Duration>) {
    let reason = reason_of(body);
    let said = if reason.is_empty() {
        super::super::fcm::errors::excerpt(String::from_utf8_lossy(body).trim(), 200)
    } else {
        reason.clone()
    };
    let mut text = format!("HTTP {http_status} from APNs: {said}");
    let (class, code, hold) = match (http_status, reason.as_str()) {
        (410, _) | (_, "Unregistered" | "BadDeviceToken") => {
            text.push_str(
                " (the device token is gone: the app was uninstalled or the token is not valid)",
            );
            return (SendError::address_gone(text), None);
        }
        (_, "DeviceTokenNotForTopic") => (ErrorClass::Permanent, "invalid_recipient", None),
        (429, "TooManyProviderTokenUpdates") => {
            (ErrorClass::Transient, "throttled", Some(TOKEN_UPDATES_HOLD))
        }
        (429, _) => (ErrorClass::Transient, "throttled", None),
        (403, _) => (ErrorClass::NotSent, "auth_failed", None),
        (413, _) => (ErrorClass::Permanent, "bad_content", None),
        (400 | 404 | 405, _) => (ErrorClass::Permanent, "invalid_request", None),
        (500..=599, _) => (ErrorClass::Transient, "provider_unavailable", None),
        _ => (ErrorClass::Permanent, "provider_error", None),
    };
    (SendError::new(class, code, text), hold)
}
