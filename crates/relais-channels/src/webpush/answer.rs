//! What a push service's answer means for the message (RFC 8030 §5, RFC 8292 §4):
//!
//! | answer                        | class     | stable code            |
//! |-------------------------------|-----------|------------------------|
//! | 2xx (201 Created)             | sent; `Location` is the provider id when given |
//! | 404, 410                      | permanent | `subscription_gone`    |
//! | 413                           | permanent | `bad_content`          |
//! | 429 (`Retry-After`)           | transient | `throttled`            |
//! | 401, 403                      | not sent  | `auth_failed`          |
//! | 400                           | permanent | `invalid_request`      |
//! | 408, 5xx, or no answer        | transient | `provider_unavailable` |
//! | anything else                 | permanent | `provider_error`       |
//!
//! `subscription_gone` means the browser unsubscribed or the subscription expired: the
//! address will never work again, and the error says so ([`SendError::address_gone`]):
//! the engine removes it from the contact.

use crate::adapter::SendError;
use std::time::Duration;

/// The longest a 429 holds the channel; a larger `Retry-After` is bounded to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How long a 429 without a readable `Retry-After` holds the channel.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

/// A refused push: the error, and how long the push service asked us to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: SendError,
    pub retry_after: Option<Duration>,
}

/// The refusal an error answer means. `retry_after` is the `Retry-After` header's value
/// (delay-seconds; an HTTP date is not read and takes the default), `body` an excerpt of
/// the answer.
pub fn classify(status: u16, retry_after: Option<&str>, body: &str) -> Refusal {
    let said = if body.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", excerpt(body.trim(), 200))
    };
    let mut wait = None;
    let error = match status {
        404 | 410 => SendError::address_gone(format!(
            "the push service answered {status}: the subscription no longer exists (the browser unsubscribed or it expired){said}"
        )),
        413 => SendError::permanent(
            "bad_content",
            format!("the push service answered 413: the encrypted payload is too large{said}"),
        ),
        429 => {
            let seconds = retry_after.and_then(|v| v.trim().parse::<u64>().ok());
            let pause = seconds
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_RETRY_AFTER)
                .min(MAX_RETRY_AFTER);
            wait = Some(pause);
            SendError::transient(
                "throttled",
                format!(
                    "the push service answered 429; waiting {} s{said}",
                    pause.as_secs()
                ),
            )
        }
        401 | 403 => SendError::not_sent(
            "auth_failed",
            format!(
                "the push service refused the VAPID credentials ({status}); check `vapid_private_key` and that the page subscribed with this channel's public key{said}"
            ),
        ),
        400 => SendError::permanent(
            "invalid_request",
            format!("the push service answered 400{said}"),
        ),
        408 | 500..=599 => SendError::transient(
            "provider_unavailable",
            format!("the push service answered {status}{said}"),
        ),
        other => SendError::permanent(
            "provider_error",
            format!("the push service answered {other}{said}"),
        ),
    };
    Refusal {
        error,
        retry_after: wait,
    }
}

/// At most `max` characters of `text`.
pub fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relais_core::retry::ErrorClass;

    #[test]
    fn each_answer_has_its_class_and_code() {
        let cases = [
            (404, "subscription_gone", ErrorClass::Permanent),
            (410, "subscription_gone", ErrorClass::Permanent),
            (413, "bad_content", ErrorClass::Permanent),
            (429, "throttled", ErrorClass::Transient),
            (401, "auth_failed", ErrorClass::NotSent),
            (403, "auth_failed", ErrorClass::NotSent),
            (400, "invalid_request", ErrorClass::Permanent),
            (500, "provider_unavailable", ErrorClass::Transient),
            (503, "provider_unavailable", ErrorClass::Transient),
            (418, "provider_error", ErrorClass::Permanent),
        ];
        for (status, code, class) in cases {
            let refusal = classify(status, None, "");
            assert_eq!(
                (refusal.error.code.as_str(), refusal.error.class),
                (code, class),
                "{status}"
            );
        }
    }

    #[test]
    fn a_429_holds_for_its_retry_after_bounded() {
        assert_eq!(
            classify(429, Some("7"), "").retry_after,
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            classify(429, Some("99999"), "").retry_after,
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            classify(429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), "").retry_after,
            Some(DEFAULT_RETRY_AFTER)
        );
        assert_eq!(classify(500, Some("7"), "").retry_after, None);
    }
}
