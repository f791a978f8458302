//! What a refused REST bot API call means for the message: retry later, give up, or wait
//! for the operator.
//!
//! Viber answers every call HTTP 200 with `{"status", "status_message", …}`; `status` 0
//! is success and any other value an error, named by `status_message`:
//!
//! | status                                                           | class     | stable code            |
//! |------------------------------------------------------------------|-----------|------------------------|
//! | 12 `tooManyRequests`                                             | transient | `throttled`            |
//! | 5 `receiverNotRegistered`, 6 `receiverNotSubscribed`, 11 `receiverNoSuitableDevice` | permanent | `undeliverable` |
//! | 2 `invalidAuthToken`, 7 `publicAccountBlocked`, 8 `publicAccountNotFound`, 9 `publicAccountSuspended`, 15 `publicAccountNotAuthorized` | not sent | `auth_failed` |
//! | 10 `webhookNotSet` (Viber sends nothing before a webhook is set) | not sent  | `webhook_not_set`      |
//! | 1, 3, 4, 13, 14 (a bad URL, bad or missing data, an API version)  | permanent | `invalid_request`      |
//! | HTTP 408, 5xx, or no answer                                       | transient | `provider_unavailable` |
//! | anything else                                                    | permanent | `provider_error`       |
//!
//! "Not sent" holds the whole channel (not ready) for a minute so that the outbox keeps
//! its messages without spending their attempts, as Telegram's refused token does; a
//! 12 holds it for [`THROTTLE_PAUSE`].

use crate::adapter::SendError;
use relais_core::retry::ErrorClass;
use serde_json::Value;
use std::time::Duration;

/// Viber's status 12 gives no delay to wait; ten seconds lets its window pass.
pub const THROTTLE_PAUSE: Duration = Duration::from_secs(10);

/// The stable codes this channel reports in the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Throttled,
    /// The person is not on Viber, has not subscribed, unsubscribed, or has no device
    /// that can show the message.
    Undeliverable,
    AuthFailed,
    WebhookNotSet,
    InvalidRequest,
    ProviderUnavailable,
    ProviderError,
    /// The content cannot be carried by Viber (the engine should have degraded it).
    BadContent,
    /// The address is not a Viber user id.
    InvalidRecipient,
    /// A status 0 answer without `message_token`.
    NoMessageId,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Throttled => "throttled",
            ErrorCode::Undeliverable => "undeliverable",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::WebhookNotSet => "webhook_not_set",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::ProviderUnavailable => "provider_unavailable",
            ErrorCode::ProviderError => "provider_error",
            ErrorCode::BadContent => "bad_content",
            ErrorCode::InvalidRecipient => "invalid_recipient",
            ErrorCode::NoMessageId => "no_message_id",
        }
    }

    /// Whether trying again can help.
    pub fn class(self) -> ErrorClass {
        match self {
            ErrorCode::Throttled | ErrorCode::ProviderUnavailable | ErrorCode::NoMessageId => {
                ErrorClass::Transient
            }
            ErrorCode::AuthFailed | ErrorCode::WebhookNotSet => ErrorClass::NotSent,
            ErrorCode::Undeliverable
            | ErrorCode::InvalidRequest
            | ErrorCode::ProviderError
            | ErrorCode::BadContent
            | ErrorCode::InvalidRecipient => ErrorClass::Permanent,
        }
    }

    /// A [`SendError`] of this code's class.
    pub fn error(self, reason: impl Into<String>) -> SendError {
        SendError::new(self.class(), self.as_str(), reason)
    }
}

/// The code of a nonzero `status`.
pub fn code_of(status: u64) -> ErrorCode {
    match status {
        12 => ErrorCode::Throttled,
        5 | 6 | 11 => ErrorCode::Undeliverable,
        2 | 7 | 8 | 9 | 15 => ErrorCode::AuthFailed,
        10 => ErrorCode::WebhookNotSet,
        1 | 3 | 4 | 13 | 14 => ErrorCode::InvalidRequest,
        _ => ErrorCode::ProviderError,
    }
}

/// Maps a refused call (its HTTP status and raw body) to what the engine decides on.
pub fn classify(http_status: u16, body: &[u8]) -> SendError {
    let answer = serde_json::from_slice::<Value>(body).ok();
    let status = answer
        .as_ref()
        .and_then(|a| a.get("status"))
        .and_then(Value::as_u64);
    match (http_status, status) {
        (200..=299, Some(status)) if status != 0 => {
            let message = answer
                .as_ref()
                .and_then(|a| a.get("status_message"))
                .and_then(Value::as_str)
                .unwrap_or("no status_message");
            code_of(status).error(format!("{} (status {status})", excerpt(message, 300)))
        }
        (408 | 500..=599, _) => ErrorCode::ProviderUnavailable.error(format!(
            "HTTP {http_status} from the Viber API: {}",
            excerpt(String::from_utf8_lossy(body).trim(), 200)
        )),
        _ => ErrorCode::ProviderError.error(format!(
            "HTTP {http_status} from the Viber API: {}",
            excerpt(String::from_utf8_lossy(body).trim(), 200)
        )),
    }
}

/// At most `max` characters of `text`, cut on a character boundary.
pub(super) fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(status: u64, message: &str) -> (ErrorClass, String) {
        let body = json!({"status": status, "status_message": message});
        let e = classify(200, body.to_string().as_bytes());
        (e.class, e.code)
    }

    #[test]
    fn the_status_decides_and_the_reason_names_it() {
        assert_eq!(
            code(6, "receiverNotSubscribed"),
            (ErrorClass::Permanent, "undeliverable".into())
        );
        assert_eq!(code(5, "receiverNotRegistered").1, "undeliverable");
        assert_eq!(code(11, "receiverNoSuitableDevice").1, "undeliverable");
        assert_eq!(
            code(2, "invalidAuthToken"),
            (ErrorClass::NotSent, "auth_failed".into())
        );
        assert_eq!(
            code(12, "tooManyRequests"),
            (ErrorClass::Transient, "throttled".into())
        );
        assert_eq!(code(10, "webhookNotSet").0, ErrorClass::NotSent);
        assert_eq!(code(3, "badData").1, "invalid_request");
        assert_eq!(code(99, "generalError").1, "provider_error");
        let e = classify(200, br#"{"status":6,"status_message":"notSubscribed"}"#);
        assert!(
            e.reason.contains("notSubscribed (status 6)"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn server_trouble_is_transient() {
        let e = classify(502, b"<html>Bad Gateway</html>");
        assert_eq!(e.class, ErrorClass::Transient);
        assert!(e.reason.contains("HTTP 502"), "{}", e.reason);
        assert_eq!(classify(404, b"").class, ErrorClass::Permanent);
    }
}
