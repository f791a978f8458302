//! What a Bot API error answer means for the message: retry later, give up, or wait for
//! the operator.
//!
//! Telegram answers errors as `{"ok": false, "error_code", "description", "parameters":
//! {"retry_after", "migrate_to_chat_id"}}`. The `error_code` follows HTTP's; the
//! description says which case of it:
//!
//! | answer                                                      | class     | stable code            |
//! |-------------------------------------------------------------|-----------|------------------------|
//! | 429, `parameters.retry_after` seconds                        | transient | `throttled`            |
//! | 403 (bot blocked, kicked, user deactivated)                  | permanent | `undeliverable`        |
//! | 400 "chat not found", "user not found", or a group migrated | permanent | `undeliverable`        |
//! | 400 about a file or URL ("wrong file identifier/HTTP URL", "failed to get HTTP URL content", "wrong type of the web page content") | permanent | `media_rejected` |
//! | 401, 404 (a wrong or revoked token)                          | not sent  | `auth_failed`          |
//! | any other 400                                                | permanent | `invalid_request`      |
//! | 408, 5xx, or no answer                                       | transient | `provider_unavailable` |
//! | anything else                                                | permanent | `provider_error`       |
//!
//! A 429 also tells how long to wait: the adapter holds the whole channel (not ready)
//! that long, so that the outbox keeps its messages without spending their attempts.
//! `auth_failed` is "not sent" for the same reason, as on Meta's channels.

use crate::adapter::SendError;
use relais_core::retry::ErrorClass;
use serde_json::Value;
use std::time::Duration;

/// The stable codes this channel reports in the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Throttled,
    /// The person blocked the bot, deleted their account, or the chat does not exist.
    Undeliverable,
    /// Telegram could not fetch or take the media.
    MediaRejected,
    AuthFailed,
    InvalidRequest,
    ProviderUnavailable,
    ProviderError,
    /// The content cannot be carried by Telegram (the engine should have degraded it).
    BadContent,
    /// The address is not a chat id.
    InvalidRecipient,
    /// A 2xx answer without `result.message_id`.
    NoMessageId,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Throttled => "throttled",
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
            ErrorCode::Undeliverable
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

/// The longest a 429 holds the channel: Telegram asks for seconds to minutes; a larger
/// value is a broken answer, and an hour bounds the harm.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A refused Bot API call: the error the engine decides on, and how long Telegram asked
/// us to wait before the next call, when it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: SendError,
    pub retry_after: Option<Duration>,
}

/// The code an error answer means, from its `error_code` (or the HTTP status when the
/// body has none) and its description.
pub fn code_of(error_code: u16, description: &str) -> ErrorCode {
    let description = description.to_ascii_lowercase();
    let says = |words: &[&str]| words.iter().any(|w| description.contains(w));
    match error_code {
        429 => ErrorCode::Throttled,
        403 => ErrorCode::Undeliverable,
        401 | 404 => ErrorCode::AuthFailed,
        400 if says(&[
            "chat not found",
            "user not found",
            "group chat was upgraded",
            "peer_id_invalid",
        ]) =>
        {
            ErrorCode::Undeliverable
        }
        400 if says(&[
            "wrong file identifier",
            "failed to get http url content",
            "wrong type of the web page content",
            "wrong remote file",
            "file must be non-empty",
        ]) =>
        {
            ErrorCode::MediaRejected
        }
        400 => ErrorCode::InvalidRequest,
        408 | 500..=599 => ErrorCode::ProviderUnavailable,
        _ => ErrorCode::ProviderError,
    }
}

/// Maps an error answer (its HTTP status and raw body) to what the engine decides on.
pub fn classify(http_status: u16, body: &[u8]) -> Refusal {
    let answer = serde_json::from_slice::<Value>(body)
        .ok()
        .filter(|answer| answer.get("ok") == Some(&Value::Bool(false)));
    let Some(answer) = answer else {
        let text = String::from_utf8_lossy(body);
        return Refusal {
            error: code_of(http_status, "").error(format!(
                "HTTP {http_status} from the Bot API: {}",
                excerpt(text.trim(), 200)
            )),
            retry_after: None,
        };
    };
    let error_code = answer
        .get("error_code")
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .unwrap_or(http_status);
    let description = answer
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("no description");
    let parameters = answer.get("parameters");
    let retry_after = parameters
        .and_then(|p| p.get("retry_after"))
        .and_then(Value::as_u64)
        .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    let mut reason = format!("{} (error_code {error_code})", excerpt(description, 500));
    if let Some(wait) = retry_after {
        reason.push_str(&format!(", retry after {} s", wait.as_secs()));
    }
    if let Some(to) = parameters
        .and_then(|p| p.get("migrate_to_chat_id"))
        .and_then(Value::as_i64)
    {
        // The group became a supergroup with a new id; messages must go to that one.
        reason.push_str(&format!(", the group is now chat {to}"));
        return Refusal {
            error: ErrorCode::Undeliverable.error(reason),
            retry_after,
        };
    }
    Refusal {
        error: code_of(error_code, description).error(reason),
        retry_after,
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

    fn answer(code: u16, description: &str) -> Vec<u8> {
        json!({"ok": false, "error_code": code, "description": description})
            .to_string()
            .into_bytes()
    }

    fn code(http: u16, description: &str) -> (ErrorClass, String) {
        let refusal = classify(http, &answer(http, description));
        (refusal.error.class, refusal.error.code)
    }

    #[test]
    fn a_429_is_throttled_with_the_delay_telegram_asked_for() {
        let body = json!({"ok": false, "error_code": 429,
            "description": "Too Many Requests: retry after 35", "parameters": {"retry_after": 35}});
        let refusal = classify(429, body.to_string().as_bytes());
        assert_eq!(refusal.retry_after, Some(Duration::from_secs(35)));
        assert_eq!(
            (refusal.error.class, refusal.error.code.as_str()),
            (ErrorClass::Transient, "throttled")
        );
        assert!(
            refusal.error.reason.contains("retry after 35 s"),
            "{}",
            refusal.error.reason
        );
        let absurd = json!({"ok": false, "error_code": 429, "description": "x",
            "parameters": {"retry_after": 10_000_000}});
        assert_eq!(
            classify(429, absurd.to_string().as_bytes()).retry_after,
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn a_blocked_bot_or_a_missing_chat_is_undeliverable_for_good() {
        for (http, description) in [
            (403, "Forbidden: bot was blocked by the user"),
            (403, "Forbidden: user is deactivated"),
            (400, "Bad Request: chat not found"),
        ] {
            assert_eq!(
                code(http, description),
                (ErrorClass::Permanent, "undeliverable".into()),
                "{description}"
            );
        }
        let migrated = json!({"ok": false, "error_code": 400,
            "description": "Bad Request: group chat was upgraded to a supergroup chat",
            "parameters": {"migrate_to_chat_id": -1001234567890i64}});
        let refusal = classify(400, migrated.to_string().as_bytes());
        assert_eq!(refusal.error.code, "undeliverable");
        assert!(
            refusal.error.reason.contains("-1001234567890"),
            "{}",
            refusal.error.reason
        );
    }

    #[test]
    fn a_bad_token_waits_for_the_operator() {
        assert_eq!(
            code(401, "Unauthorized"),
            (ErrorClass::NotSent, "auth_failed".into())
        );
        assert_eq!(code(404, "Not Found").1, "auth_failed");
    }

    #[test]
    fn media_and_other_bad_requests_are_permanent_and_server_trouble_transient() {
        assert_eq!(
            code(400, "Bad Request: wrong file identifier/HTTP URL specified"),
            (ErrorClass::Permanent, "media_rejected".into())
        );
        assert_eq!(
            code(400, "Bad Request: message text is empty"),
            (ErrorClass::Permanent, "invalid_request".into())
        );
        assert_eq!(
            code(502, "Bad Gateway"),
            (ErrorClass::Transient, "provider_unavailable".into())
        );
        let html = classify(502, b"<html>Bad Gateway</html>");
        assert_eq!(html.error.class, ErrorClass::Transient);
        assert!(
            html.error.reason.contains("HTTP 502"),
            "{}",
            html.error.reason
        );
    }
}
