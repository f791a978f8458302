//! What a Send API error answer means for the message: retry later, give up, or wait for
//! the operator.
//!
//! Meta answers errors as `{"error": {"message", "type", "code", "error_subcode",
//! "fbtrace_id"}}`. Messenger reuses broad codes for unrelated causes (code 10 is both a
//! missing permission and a closed 24-hour window), so the subcode decides first, then the
//! code, then the HTTP status when the code is unknown or the body is not JSON (a proxy's
//! HTML page):
//!
//! | Meta code / subcode                                   | class     | stable code            |
//! |-------------------------------------------------------|-----------|------------------------|
//! | subcode 2018065, 2018108, 2018278, 2534022, or a message "outside of allowed window" | permanent | `outside_window` |
//! | code 551, subcode 1545041 (person unavailable), subcode 2018001 (no matching user) | permanent | `undeliverable` |
//! | subcode 2018047, 2018109 (attachment upload failed or too large) | permanent | `media_rejected` |
//! | 4, 17, 32, 613 (rate limits)                          | transient | `throttled`            |
//! | 190, 102 (token), 10 and 200–299 (permissions)        | not sent  | `auth_failed`          |
//! | 100 (invalid parameter)                               | permanent | `invalid_request`      |
//! | 1, 2, 1200 (unknown or temporary failure)             | transient | `provider_unavailable` |
//! | any other code, or no JSON: HTTP 429                  | transient | `throttled`            |
//! | …HTTP 408 or 5xx                                      | transient | `provider_unavailable` |
//! | …anything else                                        | permanent | `provider_error`       |
//!
//! `auth_failed` is "not sent": no attempt is spent, and the channel says it is not ready
//! for a while, so messages wait for the operator to fix the token instead of failing.
//! The reason carries Meta's message, code, subcode and `fbtrace_id` (what Meta's support
//! asks for).

use crate::adapter::SendError;
use relais_core::retry::ErrorClass;
use serde_json::Value;

/// The stable codes this channel reports in the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Throttled,
    /// More than 24 hours (7 days with `HUMAN_AGENT`) since the customer last wrote.
    OutsideWindow,
    /// The person blocked the Page, left, or cannot be found from this Page.
    Undeliverable,
    /// Meta could not fetch or take the attachment.
    MediaRejected,
    AuthFailed,
    InvalidRequest,
    ProviderUnavailable,
    ProviderError,
    /// The content cannot be carried by the platform (the engine should have degraded it).
    BadContent,
    /// The recipient is not a page- or Instagram-scoped id.
    InvalidRecipient,
    /// A 2xx answer without a `message_id`.
    NoMessageId,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Throttled => "throttled",
            ErrorCode::OutsideWindow => "outside_window",
            ErrorCode::Undeliverable => "undeliverable",
            ErrorCode::MediaRejected => "media_rejected",
            ErrorCode::AuthFailed => "auth_failed",
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
            ErrorCode::AuthFailed => ErrorClass::NotSent,
            ErrorCode::OutsideWindow
            | ErrorCode::Undeliverable
            | ErrorCode::MediaRejected
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

/// Subcodes Meta gives a message sent outside the allowed window.
const WINDOW_SUBCODES: [i64; 4] = [2_018_065, 2_018_108, 2_018_278, 2_534_022];

/// The code an error answer means, from Meta's subcode, code and message first, then the
/// HTTP status.
pub fn code_of(
    http_status: u16,
    meta_code: Option<i64>,
    subcode: Option<i64>,
    message: &str,
) -> ErrorCode {
    let by_subcode = subcode.and_then(|subcode| match subcode {
        s if WINDOW_SUBCODES.contains(&s) => Some(ErrorCode::OutsideWindow),
        1_545_041 | 2_018_001 => Some(ErrorCode::Undeliverable),
        2_018_047 | 2_018_109 => Some(ErrorCode::MediaRejected),
        _ => None,
    });
    // Meta has renumbered window errors before; its wording has stayed.
    let by_message = message
        .to_ascii_lowercase()
        .contains("outside of allowed window")
        .then_some(ErrorCode::OutsideWindow);
    let by_code = meta_code.and_then(|code| match code {
        551 => Some(ErrorCode::Undeliverable),
        4 | 17 | 32 | 613 => Some(ErrorCode::Throttled),
        10 | 102 | 190 | 200..=299 => Some(ErrorCode::AuthFailed),
        100 => Some(ErrorCode::InvalidRequest),
        // 1200: "Temporary send message failure. Please try again later."
        1 | 2 | 1200 => Some(ErrorCode::ProviderUnavailable),
        _ => None,
    });
    by_subcode
        .or(by_message)
        .or(by_code)
        .unwrap_or(match http_status {
            429 => ErrorCode::Throttled,
            408 | 500..=599 => ErrorCode::ProviderUnavailable,
            _ => ErrorCode::ProviderError,
        })
}

/// Maps an error answer (its HTTP status and raw body) to the error the engine decides on.
pub fn classify(http_status: u16, body: &[u8]) -> SendError {
    let error = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|answer| answer.get("error").filter(|e| e.is_object()).cloned());
    let Some(error) = error else {
        let text = String::from_utf8_lossy(body);
        return code_of(http_status, None, None, "").error(format!(
            "HTTP {http_status} from the Send API: {}",
            excerpt(text.trim(), 200)
        ));
    };
    // Documented as integers; some relays write them as strings.
    let integer = |key: &str| {
        error.get(key).and_then(|value| {
            value
                .as_i64()
                .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
        })
    };
    let meta_code = integer("code");
    let subcode = integer("error_subcode");
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("no message");
    let mut facts = vec![format!("HTTP {http_status}")];
    if let Some(code) = meta_code {
        facts.push(format!("code {code}"));
    }
    if let Some(subcode) = subcode {
        facts.push(format!("subcode {subcode}"));
    }
    if let Some(trace) = error.get("fbtrace_id").and_then(Value::as_str) {
        facts.push(format!("fbtrace_id {trace}"));
    }
    code_of(http_status, meta_code, subcode, message).error(format!(
        "{} ({})",
        excerpt(message, 500),
        facts.join(", ")
    ))
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

    fn answer(code: i64, subcode: Option<i64>, message: &str) -> Vec<u8> {
        let mut error = json!({"message": message, "type": "OAuthException", "code": code,
            "fbtrace_id": "BLBz/WZt8dN"});
        if let Some(subcode) = subcode {
            error["error_subcode"] = json!(subcode);
        }
        json!({ "error": error }).to_string().into_bytes()
    }

    fn code(http: u16, meta: i64, subcode: Option<i64>) -> (ErrorClass, String) {
        let e = classify(http, &answer(meta, subcode, "(#x) Something"));
        (e.class, e.code)
    }

    #[test]
    fn rate_limits_are_transient_throttles() {
        for meta in [4, 17, 32, 613] {
            assert_eq!(
                code(400, meta, None),
                (ErrorClass::Transient, "throttled".into()),
                "{meta}"
            );
        }
        assert_eq!(code(400, 4, Some(2_018_022)).1, "throttled");
        assert_eq!(classify(429, b"Too Many Requests").code, "throttled");
    }

    #[test]
    fn a_closed_window_is_permanent_even_under_the_permission_code() {
        for subcode in WINDOW_SUBCODES {
            assert_eq!(
                code(400, 10, Some(subcode)),
                (ErrorClass::Permanent, "outside_window".into()),
                "{subcode}"
            );
        }
        let reworded = classify(
            400,
            &answer(
                10,
                Some(9_999_999),
                "(#10) This message is sent outside of allowed window.",
            ),
        );
        assert_eq!(reworded.code, "outside_window");
    }

    #[test]
    fn a_person_who_cannot_be_reached_is_undeliverable() {
        assert_eq!(
            code(400, 551, Some(1_545_041)),
            (ErrorClass::Permanent, "undeliverable".into())
        );
        assert_eq!(code(400, 551, None).1, "undeliverable");
        assert_eq!(code(400, 200, Some(1_545_041)).1, "undeliverable");
        assert_eq!(code(400, 100, Some(2_018_001)).1, "undeliverable");
    }

    #[test]
    fn a_bad_token_or_a_missing_permission_waits_for_the_operator() {
        for meta in [190, 102, 10, 200, 230, 299] {
            assert_eq!(
                code(400, meta, None),
                (ErrorClass::NotSent, "auth_failed".into()),
                "{meta}"
            );
        }
    }

    #[test]
    fn invalid_parameters_and_rejected_attachments_are_permanent() {
        assert_eq!(
            code(400, 100, None),
            (ErrorClass::Permanent, "invalid_request".into())
        );
        assert_eq!(
            code(400, 100, Some(2_018_109)),
            (ErrorClass::Permanent, "media_rejected".into())
        );
        assert_eq!(code(400, 100, Some(2_018_047)).1, "media_rejected");
    }

    #[test]
    fn server_side_trouble_is_transient_and_the_rest_permanent() {
        assert_eq!(
            code(500, 1200, None),
            (ErrorClass::Transient, "provider_unavailable".into())
        );
        assert_eq!(code(500, 2, None).1, "provider_unavailable");
        assert_eq!(code(503, 999_999, None).1, "provider_unavailable");
        assert_eq!(
            classify(502, b"<html>Bad Gateway</html>").class,
            ErrorClass::Transient
        );
        assert_eq!(
            code(400, 999_999, None),
            (ErrorClass::Permanent, "provider_error".into())
        );
    }

    #[test]
    fn the_reason_carries_metas_message_codes_and_trace() {
        let e = classify(
            400,
            &answer(
                551,
                Some(1_545_041),
                "(#551) This person isn't available right now.",
            ),
        );
        assert_eq!(
            e.reason,
            "(#551) This person isn't available right now. (HTTP 400, code 551, subcode 1545041, fbtrace_id BLBz/WZt8dN)"
        );
        let long = classify(500, "é".repeat(300).as_bytes());
        assert!(long.reason.ends_with('…'), "{}", long.reason);
    }
}
