//! What an RBM API error answer means for the message: retry later, give up, move on to
//! the next channel, or wait for the operator.
//!
//! Google answers errors as `{"error": {"code", "message", "status"}}`, `status` being the
//! canonical name of the error (`NOT_FOUND`, `RESOURCE_EXHAUSTED`…). The status decides
//! first; the HTTP code decides when the body is not JSON (a proxy's HTML page) or names
//! a status this table does not know:
//!
//! | status / HTTP                                  | class     | stable code            |
//! |------------------------------------------------|-----------|------------------------|
//! | `NOT_FOUND`: the phone has no RCS, or the agent is not launched on its carrier | permanent | `not_reachable` |
//! | `RESOURCE_EXHAUSTED` / 429                      | transient | `throttled`            |
//! | `UNAUTHENTICATED` / 401, `PERMISSION_DENIED` / 403 | not sent | `auth_failed`        |
//! | `INVALID_ARGUMENT`, `OUT_OF_RANGE` / 400        | permanent | `invalid_request`      |
//! | `UNAVAILABLE`, `INTERNAL`, `DEADLINE_EXCEEDED`, `ABORTED`, `UNKNOWN` / 408, 5xx | transient | `provider_unavailable` |
//! | anything else (a 404 without `NOT_FOUND`: a wrong `base_url`) | permanent | `provider_error` |
//!
//! `not_reachable` is permanent so that a fallback chain moves on to SMS at once, instead
//! of retrying a phone that will not grow RCS in the next minutes. `auth_failed` is "not
//! sent": no attempt is spent, and the channel says it is not ready for a while, so
//! messages wait for the operator to fix the service account instead of failing.
//!
//! An `ALREADY_EXISTS` answer to a send is not an error: the message id was taken by an
//! earlier attempt, so the adapter takes it as sent (see [`is_already_sent`]).

use crate::adapter::SendError;
use relais_core::retry::ErrorClass;
use serde_json::Value;

/// The stable codes this channel reports in the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Throttled,
    /// The phone cannot take RCS from this agent; SMS may still reach it.
    NotReachable,
    AuthFailed,
    InvalidRequest,
    ProviderUnavailable,
    ProviderError,
    /// The content cannot be carried by RCS (the engine should have degraded it).
    BadContent,
    /// The recipient is not a phone number in international form.
    InvalidNumber,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Throttled => "throttled",
            ErrorCode::NotReachable => "not_reachable",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::ProviderUnavailable => "provider_unavailable",
            ErrorCode::ProviderError => "provider_error",
            ErrorCode::BadContent => "bad_content",
            ErrorCode::InvalidNumber => "invalid_number",
        }
    }

    /// Whether trying again can help.
    pub fn class(self) -> ErrorClass {
        match self {
            ErrorCode::Throttled | ErrorCode::ProviderUnavailable => ErrorClass::Transient,
            ErrorCode::AuthFailed => ErrorClass::NotSent,
            ErrorCode::NotReachable
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

/// The code an error answer means, from Google's status name first, then the HTTP code.
pub fn code_of(http_status: u16, status: Option<&str>) -> ErrorCode {
    let by_status = status.and_then(|status| match status {
        "NOT_FOUND" => Some(ErrorCode::NotReachable),
        "RESOURCE_EXHAUSTED" => Some(ErrorCode::Throttled),
        "UNAUTHENTICATED" | "PERMISSION_DENIED" => Some(ErrorCode::AuthFailed),
        "INVALID_ARGUMENT" | "OUT_OF_RANGE" => Some(ErrorCode::InvalidRequest),
        "UNAVAILABLE" | "INTERNAL" | "DEADLINE_EXCEEDED" | "ABORTED" | "UNKNOWN" => {
            Some(ErrorCode::ProviderUnavailable)
        }
        _ => None,
    });
    by_status.unwrap_or(match http_status {
        // A 404 without Google's `NOT_FOUND` is no answer about the phone: a wrong
        // `base_url` or a proxy, which must not send every message to the fallback.
        429 => ErrorCode::Throttled,
        401 | 403 => ErrorCode::AuthFailed,
        400 => ErrorCode::InvalidRequest,
        408 | 500..=599 => ErrorCode::ProviderUnavailable,
        _ => ErrorCode::ProviderError,
    })
}

/// `{"error": {…}}` of an answer, when it is one.
fn error_object(body: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|answer| answer.get("error").filter(|e| e.is_object()).cloned())
}

/// Maps an error answer (its HTTP status and raw body) to the error the engine decides on.
pub fn classify(http_status: u16, body: &[u8]) -> SendError {
    let Some(error) = error_object(body) else {
        let text = String::from_utf8_lossy(body);
        return code_of(http_status, None).error(format!(
            "HTTP {http_status} from the RBM API: {}",
            excerpt(text.trim(), 200)
        ));
    };
    let status = error.get("status").and_then(Value::as_str);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("no message");
    let facts = match status {
        Some(status) => format!("HTTP {http_status}, {status}"),
        None => format!("HTTP {http_status}"),
    };
    code_of(http_status, status).error(format!("{} ({facts})", excerpt(message, 500)))
}

/// Whether an answer to a send says its message id was already used: Google keeps the
/// first message with an id and refuses the others, so a retry after a crash that cut
/// the first answer short lands here, and the message is already on its way.
pub fn is_already_sent(http_status: u16, body: &[u8]) -> bool {
    let status = error_object(body).and_then(|error| {
        error
            .get("status")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    // Only Google's own word counts: a proxy's bare 409 says nothing about the message.
    http_status == 409 && status.as_deref() == Some("ALREADY_EXISTS")
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

    fn answer(code: u16, status: &str, message: &str) -> Vec<u8> {
        json!({"error": {"code": code, "message": message, "status": status}})
            .to_string()
            .into_bytes()
    }

    fn code(http: u16, status: &str) -> (ErrorClass, String) {
        let e = classify(http, &answer(http, status, "Because."));
        (e.class, e.code)
    }

    #[test]
    fn a_phone_without_rcs_is_permanently_not_reachable() {
        assert_eq!(
            code(404, "NOT_FOUND"),
            (ErrorClass::Permanent, "not_reachable".into())
        );
        let bare = classify(404, b"<html>Not Found</html>");
        assert_eq!(
            (bare.class, bare.code.as_str()),
            (ErrorClass::Permanent, "provider_error"),
            "a 404 that is not Google's says nothing about the phone"
        );
    }

    #[test]
    fn quota_exhaustion_is_a_transient_throttle() {
        assert_eq!(
            code(429, "RESOURCE_EXHAUSTED"),
            (ErrorClass::Transient, "throttled".into())
        );
        assert_eq!(classify(429, b"slow down").code, "throttled");
    }

    #[test]
    fn a_refused_account_waits_for_the_operator() {
        for (http, status) in [(401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED")] {
            assert_eq!(
                code(http, status),
                (ErrorClass::NotSent, "auth_failed".into())
            );
        }
    }

    #[test]
    fn a_bad_request_is_permanent_and_server_trouble_transient() {
        assert_eq!(
            code(400, "INVALID_ARGUMENT"),
            (ErrorClass::Permanent, "invalid_request".into())
        );
        for (http, status) in [
            (503, "UNAVAILABLE"),
            (500, "INTERNAL"),
            (504, "DEADLINE_EXCEEDED"),
        ] {
            assert_eq!(
                code(http, status),
                (ErrorClass::Transient, "provider_unavailable".into())
            );
        }
        assert_eq!(
            classify(502, b"<html>Bad Gateway</html>").class,
            ErrorClass::Transient
        );
        assert_eq!(
            code(400, "FAILED_PRECONDITION"),
            (ErrorClass::Permanent, "invalid_request".into()),
            "an unknown status falls back on the HTTP code"
        );
        assert_eq!(code(409, "CONFLICTING").1, "provider_error");
    }

    #[test]
    fn the_status_wins_over_the_http_code() {
        assert_eq!(code(400, "RESOURCE_EXHAUSTED").1, "throttled");
        assert_eq!(code(500, "NOT_FOUND").1, "not_reachable");
    }

    #[test]
    fn the_reason_carries_googles_message_and_status() {
        let e = classify(
            404,
            &answer(404, "NOT_FOUND", "Requested entity was not found."),
        );
        assert_eq!(
            e.reason,
            "Requested entity was not found. (HTTP 404, NOT_FOUND)"
        );
        let long = classify(500, "é".repeat(300).as_bytes());
        assert!(long.reason.ends_with('…'), "{}", long.reason);
    }

    #[test]
    fn an_id_already_used_means_the_message_was_taken() {
        assert!(is_already_sent(
            409,
            &answer(409, "ALREADY_EXISTS", "Message already exists")
        ));
        assert!(!is_already_sent(409, b""));
        assert!(!is_already_sent(409, &answer(409, "ABORTED", "try again")));
        assert!(!is_already_sent(400, &answer(400, "INVALID_ARGUMENT", "x")));
    }
}
