//! What an FCM HTTP v1 error answer means. FCM answers
//! `{"error": {"code", "message", "status", "details": [{"@type": "…FcmError",
//! "errorCode": "UNREGISTERED"}]}}`; the `errorCode` decides, then the HTTP status:
//!
//! | answer                                                        | class     | stable code            |
//! |---------------------------------------------------------------|-----------|------------------------|
//! | 404 `UNREGISTERED` (app uninstalled, token expired)            | permanent | `subscription_gone`    |
//! | 400 `INVALID_ARGUMENT` about the registration token            | permanent | `subscription_gone`    |
//! | 403 `SENDER_ID_MISMATCH` (the token is another project's)      | permanent | `invalid_recipient`    |
//! | 429 `QUOTA_EXCEEDED`, or 503 with `Retry-After`                | transient | `throttled`            |
//! | 401, 403 (`THIRD_PARTY_AUTH_ERROR`, a refused access token)    | not sent  | `auth_failed`          |
//! | any other 400                                                  | permanent | `invalid_request`      |
//! | 408, 5xx, or no answer                                         | transient | `provider_unavailable` |
//! | anything else                                                  | permanent | `provider_error`       |
//!
//! `subscription_gone` is the code the Web Push channel gives a dead subscription: the
//! device token will never work again ([`SendError::address_gone`]), and the engine
//! drops the contact's identity.
//! A throttled answer holds the whole channel for its delay (the adapter is not ready),
//! and `auth_failed` holds it for a minute, so that waiting messages spend no attempts.

use crate::adapter::SendError;
use relais_core::retry::ErrorClass;
use serde_json::Value;
use std::time::Duration;

/// The delay of a 429 that gives no `Retry-After`: FCM asks for at least a minute.
pub const DEFAULT_THROTTLE: Duration = Duration::from_secs(60);

/// The longest a `Retry-After` holds the channel.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A refused send: the error, and how long to hold the channel when FCM said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: SendError,
    pub retry_after: Option<Duration>,
}

/// `Retry-After` in seconds (FCM sends seconds; a date is not read).
pub fn retry_after(header: Option<&str>) -> Option<Duration> {
    header
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// Maps an error answer to what the engine decides on.
pub fn classify(http_status: u16, body: &[u8], retry_after_header: Option<&str>) -> Refusal {
    let answer = serde_json::from_slice::<Value>(body).ok();
    let error_body = answer.as_ref().and_then(|a| a.get("error"));
    let text = |key: &str| {
        error_body
            .and_then(|e| e.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let (status, message) = (text("status"), text("message"));
    let fcm_code = error_body
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array)
        .and_then(|details| {
            details
                .iter()
                .find_map(|d| d.get("errorCode").and_then(Value::as_str))
        })
        .unwrap_or("")
        .to_owned();
    let said = if error_body.is_some() {
        let code = if fcm_code.is_empty() {
            &status
        } else {
            &fcm_code
        };
        format!("{code}: {}", excerpt(&message, 300))
    } else {
        excerpt(String::from_utf8_lossy(body).trim(), 200)
    };
    let mut reason = format!("HTTP {http_status} from FCM: {said}");
    let wait = retry_after(retry_after_header);
    let about_token = message.to_ascii_lowercase().contains("registration token");
    let (class, code, held) = match (http_status, fcm_code.as_str()) {
        (_, "UNREGISTERED") | (404, _) => {
            reason.push_str(
                " (the device token is unregistered: the app was uninstalled or the token expired)",
            );
            return gone(reason);
        }
        (400, "INVALID_ARGUMENT" | "") if about_token => {
            reason.push_str(" (the device token is not a valid registration token)");
            return gone(reason);
        }
        (_, "SENDER_ID_MISMATCH") => (ErrorClass::Permanent, "invalid_recipient", None),
        (429, _) | (_, "QUOTA_EXCEEDED") => (
            ErrorClass::Transient,
            "throttled",
            Some(wait.unwrap_or(DEFAULT_THROTTLE)),
        ),
        (503, _) if wait.is_some() => (ErrorClass::Transient, "throttled", wait),
        (401 | 403, _) => (ErrorClass::NotSent, "auth_failed", None),
        (400, _) => (ErrorClass::Permanent, "invalid_request", None),
        (408 | 500..=599, _) => (ErrorClass::Transient, "provider_unavailable", None),
        _ => (ErrorClass::Permanent, "provider_error", None),
    };
    if let Some(wait) = held {
        reason.push_str(&format!(", retry after {} s", wait.as_secs()));
    }
    Refusal {
        error: SendError::new(class, code, reason),
        retry_after: held,
    }
}

/// The refusal of a device token that will never work again.
fn gone(reason: String) -> Refusal {
    Refusal {
        error: SendError::address_gone(reason),
        retry_after: None,
    }
}

/// At most `max` characters of `text`.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(code: u16, status: &str, fcm: &str, message: &str) -> Vec<u8> {
        json!({"error": {"code": code, "message": message, "status": status,
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": fcm}]}})
        .to_string()
        .into_bytes()
    }

    fn code(refusal: Refusal) -> (ErrorClass, String) {
        (refusal.error.class, refusal.error.code)
    }

    #[test]
    fn a_dead_token_is_gone_for_good() {
        let gone = classify(
            404,
            &answer(
                404,
                "NOT_FOUND",
                "UNREGISTERED",
                "Requested entity was not found.",
            ),
            None,
        );
        assert!(
            gone.error.reason.contains("UNREGISTERED"),
            "{}",
            gone.error.reason
        );
        assert_eq!(
            code(gone),
            (ErrorClass::Permanent, "subscription_gone".into())
        );
        let invalid = classify(
            400,
            &answer(
                400,
                "INVALID_ARGUMENT",
                "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
            ),
            None,
        );
        assert_eq!(
            code(invalid),
            (ErrorClass::Permanent, "subscription_gone".into())
        );
        let payload = classify(
            400,
            &answer(
                400,
                "INVALID_ARGUMENT",
                "INVALID_ARGUMENT",
                "Invalid JSON payload received.",
            ),
            None,
        );
        assert_eq!(
            code(payload),
            (ErrorClass::Permanent, "invalid_request".into())
        );
    }

    #[test]
    fn quota_and_busy_answers_hold_the_channel_for_their_delay() {
        let quota = classify(
            429,
            &answer(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "q"),
            Some("17"),
        );
        assert_eq!(quota.retry_after, Some(Duration::from_secs(17)));
        assert_eq!(code(quota), (ErrorClass::Transient, "throttled".into()));
        let unsaid = classify(429, b"", None);
        assert_eq!(unsaid.retry_after, Some(DEFAULT_THROTTLE));
        let busy = classify(
            503,
            &answer(503, "UNAVAILABLE", "UNAVAILABLE", "busy"),
            Some("5"),
        );
        assert_eq!(busy.retry_after, Some(Duration::from_secs(5)));
        let down = classify(503, b"<html>", None);
        assert_eq!(
            code(down),
            (ErrorClass::Transient, "provider_unavailable".into())
        );
    }

    #[test]
    fn refused_credentials_wait_for_the_operator() {
        for status in [401, 403] {
            let refusal = classify(
                status,
                &answer(status, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "no"),
                None,
            );
            assert_eq!(code(refusal), (ErrorClass::NotSent, "auth_failed".into()));
        }
        let mismatch = classify(
            403,
            &answer(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "x"),
            None,
        );
        assert_eq!(
            code(mismatch),
            (ErrorClass::Permanent, "invalid_recipient".into())
        );
    }
}
