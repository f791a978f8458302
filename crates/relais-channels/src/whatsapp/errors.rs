//! What a Graph API error answer means for the message: retry later, give up, or wait for
//! the operator.
//!
//! Meta answers errors as `{"error": {"message", "type", "code", "error_subcode",
//! "error_data": {"details"}, "fbtrace_id"}}` and asks integrators to decide on `code`,
//! not on the HTTP status or the subcode. So the code decides first; the HTTP status
//! decides only when the code is unknown or the body is not JSON (a proxy's HTML page):
//!
//! | Meta code                              | class     | stable code            |
//! |----------------------------------------|-----------|------------------------|
//! | 4, 80007, 130429, 131048, 131056       | transient | `throttled`            |
//! | 131047 (more than 24 h since the customer wrote) | permanent | `outside_window` |
//! | 131026 (undeliverable)                 | permanent | `undeliverable`        |
//! | 131030 (recipient not in the allowed list) | permanent | `recipient_not_allowed` |
//! | 132000–132016 (template missing, not approved, parameters, paused, disabled) | permanent | `template_error` |
//! | 190 (token expired or invalid), 10 and 200–299 (permissions) | not sent | `auth_failed` |
//! | 100 (invalid parameter)                | permanent | `invalid_request`      |
//! | 2, 131000, 131016 (service unavailable)| transient | `provider_unavailable` |
//! | any other code, or no JSON: HTTP 429   | transient | `throttled`            |
//! | …HTTP 408 or 5xx                       | transient | `provider_unavailable` |
//! | …anything else                         | permanent | `provider_error`       |
//!
//! `auth_failed` is "not sent": no attempt is spent, and the channel says it is not ready
//! for a while, so messages wait for the operator to fix the token instead of failing.
//! The reason carries Meta's message, details, code and `fbtrace_id` (what Meta's support
//! asks for).

use crate::adapter::SendError;
use relais_core::retry::ErrorClass;

/// The stable codes this channel reports in the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Throttled,
    OutsideWindow,
    Undeliverable,
    RecipientNotAllowed,
    TemplateError,
    AuthFailed,
    InvalidRequest,
    ProviderUnavailable,
    ProviderError,
    /// The content cannot be carried by WhatsApp (the engine should have degraded it).
    BadContent,
    /// The recipient is not a phone number.
    InvalidNumber,
    /// A 2xx answer without a `wamid`.
    NoMessageId,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Throttled => "throttled",
            ErrorCode::OutsideWindow => "outside_window",
            ErrorCode::Undeliverable => "undeliverable",
            ErrorCode::RecipientNotAllowed => "recipient_not_allowed",
            ErrorCode::TemplateError => "template_error",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::ProviderUnavailable => "provider_unavailable",
            ErrorCode::ProviderError => "provider_error",
            ErrorCode::BadContent => "bad_content",
            ErrorCode::InvalidNumber => "invalid_number",
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
            | ErrorCode::RecipientNotAllowed
            | ErrorCode::TemplateError
            | ErrorCode::InvalidRequest
            | ErrorCode::ProviderError
            | ErrorCode::BadContent
            | ErrorCode::InvalidNumber => ErrorClass::Permanent,
        }
    }

    /// A [`SendError`] of this code's class.
    pub fn error(self, reason: impl Into<String>) -> SendError {
        SendError::new(self.class(), self.as_str(), reason)
    }
}

/// The code a Graph API error answer means, from Meta's code first, then the HTTP status.
pub fn code_of(http_status: u16, meta_code: Option<i64>) -> ErrorCode {
    let by_meta = meta_code.and_then(|code| match code {
        4 | 80007 | 130429 | 131048 | 131056 => Some(ErrorCode::Throttled),
        131047 => Some(ErrorCode::OutsideWindow),
        131026 => Some(ErrorCode::Undeliverable),
        131030 => Some(ErrorCode::RecipientNotAllowed),
        132000..=132016 => Some(ErrorCode::TemplateError),
        10 | 190 | 200..=299 => Some(ErrorCode::AuthFailed),
        100 => Some(ErrorCode::InvalidRequest),
        // 2: "Temporary due to downtime or due to being overloaded" in Meta's table.
        2 | 131000 | 131016 => Some(ErrorCode::ProviderUnavailable),
        _ => None,
    });
    by_meta.unwrap_or(match http_status {
        429 => ErrorCode::Throttled,
        408 | 500..=599 => ErrorCode::ProviderUnavailable,
        _ => ErrorCode::ProviderError,
    })
}

/// Maps an error answer (its HTTP status and raw body) to the error the engine decides on.
pub fn classify(http_status: u16, body: &[u8]) -> SendError {
    let error = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|answer| answer.get("error").filter(|e| e.is_object()).cloned());
    let Some(error) = error else {
        let code = code_of(http_status, None);
        let text = String::from_utf8_lossy(body);
        return code.error(format!(
            "HTTP {http_status} from the Graph API: {}",
            excerpt(text.trim(), 200)
        ));
    };
    let text = |key: &str| error.get(key).and_then(serde_json::Value::as_str);
    let meta_code = error.get("code").and_then(|code| {
        // Documented as an integer; some relays write it as a string.
        code.as_i64()
            .or_else(|| code.as_str().and_then(|s| s.parse().ok()))
    });
    let mut reason = text("message").unwrap_or("no message").to_owned();
    if let Some(details) = error
        .get("error_data")
        .and_then(|data| data.get("details"))
        .and_then(serde_json::Value::as_str)
    {
        reason.push_str(": ");
        reason.push_str(details);
    }
    let mut facts = vec![format!("HTTP {http_status}")];
    if let Some(code) = meta_code {
        facts.push(format!("code {code}"));
    }
    if let Some(subcode) = error
        .get("error_subcode")
        .and_then(serde_json::Value::as_i64)
    {
        facts.push(format!("subcode {subcode}"));
    }
    if let Some(trace) = text("fbtrace_id") {
        facts.push(format!("fbtrace_id {trace}"));
    }
    code_of(http_status, meta_code).error(format!(
        "{} ({})",
        excerpt(&reason, 500),
        facts.join(", ")
    ))
}

/// At most `max` characters of `text`, cut on a character boundary.
fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(code: i64) -> Vec<u8> {
        json!({"error": {"message": format!("(#{code}) Something"), "type": "OAuthException",
            "code": code, "error_data": {"messaging_product": "whatsapp", "details": "Because."},
            "fbtrace_id": "AE9jPfwk6"}})
        .to_string()
        .into_bytes()
    }

    fn code(http: u16, meta: i64) -> (ErrorClass, String) {
        let e = classify(http, &answer(meta));
        (e.class, e.code)
    }

    #[test]
    fn throttling_codes_are_transient_whatever_the_http_status() {
        for meta in [4, 80007, 130429, 131048, 131056] {
            assert_eq!(
                code(400, meta),
                (ErrorClass::Transient, "throttled".into()),
                "{meta}"
            );
        }
        assert_eq!(classify(429, b"slow down").code, "throttled");
    }

    #[test]
    fn codes_the_customer_or_the_template_cause_are_permanent() {
        assert_eq!(
            code(400, 131047),
            (ErrorClass::Permanent, "outside_window".into())
        );
        assert_eq!(
            code(400, 131026),
            (ErrorClass::Permanent, "undeliverable".into())
        );
        assert_eq!(
            code(400, 131030),
            (ErrorClass::Permanent, "recipient_not_allowed".into())
        );
        for meta in [132000, 132001, 132005, 132015, 132016] {
            assert_eq!(
                code(400, meta),
                (ErrorClass::Permanent, "template_error".into()),
                "{meta}"
            );
        }
        assert_eq!(
            code(400, 100),
            (ErrorClass::Permanent, "invalid_request".into())
        );
        assert_eq!(
            code(400, 132017).1,
            "provider_error",
            "outside the template range"
        );
    }

    #[test]
    fn a_bad_token_or_a_missing_permission_waits_for_the_operator() {
        for meta in [190, 10, 200, 299] {
            assert_eq!(
                code(401, meta),
                (ErrorClass::NotSent, "auth_failed".into()),
                "{meta}"
            );
        }
    }

    #[test]
    fn server_side_trouble_is_transient() {
        assert_eq!(
            code(500, 131000),
            (ErrorClass::Transient, "provider_unavailable".into())
        );
        assert_eq!(code(503, 131016).1, "provider_unavailable");
        assert_eq!(
            code(502, 999_999).1,
            "provider_unavailable",
            "unknown code, 5xx"
        );
        assert_eq!(
            classify(502, b"<html>Bad Gateway</html>").class,
            ErrorClass::Transient
        );
        assert_eq!(
            code(400, 999_999),
            (ErrorClass::Permanent, "provider_error".into())
        );
    }

    #[test]
    fn the_reason_carries_metas_message_details_code_and_trace() {
        let e = classify(400, &answer(131047));
        assert_eq!(
            e.reason,
            "(#131047) Something: Because. (HTTP 400, code 131047, fbtrace_id AE9jPfwk6)"
        );
        let long = classify(500, "é".repeat(300).as_bytes());
        assert!(
            long.reason.ends_with('…') && long.reason.chars().count() < 240,
            "{}",
            long.reason
        );
    }
}
