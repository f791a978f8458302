//! [`TokenSource`]: the bearer token of the channel's RBM API requests, traded for a
//! signed assertion ([`super::jwt`]) at the token endpoint and kept until shortly before
//! it expires.
//!
//! Invariants:
//! - One exchange at a time: a send that finds no usable token holds the cache's lock
//!   while it asks, so a burst of sends after a restart makes one request, not hundreds.
//! - A token is used until [`REFRESH_MARGIN`] before Google says it dies (tokens live an
//!   hour), so no send carries one that expires on the way.
//! - A refused exchange (`invalid_grant`: a deleted key, a skewed clock) is `auth_failed`,
//!   "not sent", like a refused token; a token endpoint that does not answer is transient.

use super::errors::{ErrorCode, excerpt};
use super::http::{form, read_answer, unanswered};
use super::jwt::{GRANT_TYPE, SCOPE, scoped_assertion};
use super::service_account::ServiceAccount;
use crate::adapter::SendError;
use jiff::Timestamp;
use serde_json::Value;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long before its expiry a token is replaced.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The lifetime assumed when the token endpoint does not say: short, so a token of
/// unknown life is soon replaced rather than used dead.
const UNSAID_LIFETIME: Duration = Duration::from_secs(600);

/// Longer lifetimes are read as a day: Google's tokens live an hour, and a bogus
/// `expires_in` must not pin a token for years.
const MAX_LIFETIME: Duration = Duration::from_secs(86_400);

/// A token and when to stop using it.
#[derive(Debug, Clone)]
struct Cached {
    token: String,
    refresh_at: Instant,
}

/// When a token obtained at `obtained` that lives `lifetime` is replaced: the margin
/// before its end, or half-way through a life shorter than twice the margin.
pub fn refresh_at(obtained: Instant, lifetime: Duration) -> Instant {
    let margin = REFRESH_MARGIN.min(lifetime / 2);
    obtained + (lifetime - margin)
}

/// The channel's access tokens.
pub struct TokenSource {
    client: reqwest::Client,
    account: ServiceAccount,
    token_uri: String,
    scope: &'static str,
    cached: Mutex<Option<Cached>>,
}

impl TokenSource {
    pub fn new(client: reqwest::Client, account: ServiceAccount, token_uri: &str) -> Self {
        Self::with_scope(client, account, token_uri, SCOPE)
    }

    /// Tokens for another Google API than RBM's (FCM's `firebase.messaging`).
    pub fn with_scope(
        client: reqwest::Client,
        account: ServiceAccount,
        token_uri: &str,
        scope: &'static str,
    ) -> Self {
        TokenSource {
            client,
            account,
            token_uri: token_uri.to_owned(),
            scope,
            cached: Mutex::new(None),
        }
    }

    /// A token to send with, from the cache or a new exchange.
    pub async fn bearer(&self) -> Result<String, SendError> {
        let mut cached = self.cached.lock().await;
        if let Some(usable) = cached
            .as_ref()
            .filter(|cached| Instant::now() < cached.refresh_at)
        {
            return Ok(usable.token.clone());
        }
        let (token, lifetime) = self.exchange().await?;
        *cached = Some(Cached {
            token: token.clone(),
            refresh_at: refresh_at(Instant::now(), lifetime),
        });
        Ok(token)
    }

    /// Drops the cached token: the API refused it (revoked, or the key was rotated).
    pub async fn forget(&self) {
        *self.cached.lock().await = None;
    }

    /// One assertion traded for a token and its lifetime.
    async fn exchange(&self) -> Result<(String, Duration), SendError> {
        let jwt = scoped_assertion(&self.account, &self.token_uri, self.scope, Timestamp::now())
            .map_err(|e| ErrorCode::AuthFailed.error(e.to_string()))?;
        let response = self
            .client
            .post(&self.token_uri)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form(&[("grant_type", GRANT_TYPE), ("assertion", &jwt)]))
            .send()
            .await
            .map_err(|e| unanswered("token endpoint", e))?;
        let status = response.status().as_u16();
        let answer = read_answer(response)
            .await
            .map_err(|e| unanswered("token endpoint", e))?;
        if !(200..300).contains(&status) {
            return Err(token_error(status, &answer));
        }
        read_token(&answer)
    }
}

/// The `access_token` and lifetime of a 2xx answer `{"access_token", "expires_in",
/// "token_type": "Bearer"}`.
pub fn read_token(answer: &[u8]) -> Result<(String, Duration), SendError> {
    let answer: Value = serde_json::from_slice(answer).map_err(|_| {
        ErrorCode::ProviderUnavailable.error("the token endpoint answered 2xx without JSON")
    })?;
    let token = answer
        .get("access_token")
        .and_then(Value::as_str)
        // It goes into an `Authorization` header, where a space or a newline breaks it.
        .filter(|token| {
            !token.is_empty() && !token.chars().any(|c| c.is_whitespace() || c.is_control())
        })
        .ok_or_else(|| {
            ErrorCode::ProviderUnavailable
                .error("the token endpoint answered 2xx without a usable access_token")
        })?;
    let lifetime = answer
        .get("expires_in")
        .and_then(|seconds| {
            // Documented as a number of seconds; some proxies write it as a string.
            seconds
                .as_u64()
                .or_else(|| seconds.as_str().and_then(|s| s.trim().parse().ok()))
        })
        .map_or(UNSAID_LIFETIME, |seconds| {
            Duration::from_secs(seconds).min(MAX_LIFETIME)
        });
    Ok((token.to_owned(), lifetime))
}

/// What a refused exchange means. OAuth answers `{"error", "error_description"}`
/// (RFC 6749 §5.2): 400 and 401 say the account or its assertion is refused.
pub fn token_error(http_status: u16, body: &[u8]) -> SendError {
    let code = match http_status {
        400 | 401 | 403 => ErrorCode::AuthFailed,
        429 => ErrorCode::Throttled,
        408 | 500..=599 => ErrorCode::ProviderUnavailable,
        _ => ErrorCode::ProviderError,
    };
    let said = serde_json::from_slice::<Value>(body)
        .ok()
        .map(|answer| {
            let text = |key: &str| answer.get(key).and_then(Value::as_str).map(str::to_owned);
            match (text("error"), text("error_description")) {
                (Some(error), Some(description)) => format!("{error}: {description}"),
                (Some(error), None) => error,
                (None, _) => answer.to_string(),
            }
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    code.error(format!(
        "the token endpoint refused the service account (HTTP {http_status}): {}",
        excerpt(&said, 300)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use relais_core::retry::ErrorClass;

    #[test]
    fn a_token_is_replaced_five_minutes_before_it_dies_or_half_way_when_short() {
        let now = Instant::now();
        assert_eq!(
            refresh_at(now, Duration::from_secs(3599)),
            now + Duration::from_secs(3299)
        );
        assert_eq!(
            refresh_at(now, Duration::from_secs(120)),
            now + Duration::from_secs(60)
        );
        assert_eq!(refresh_at(now, Duration::ZERO), now);
    }

    #[test]
    fn the_token_and_its_lifetime_are_read_from_googles_answer() {
        let answer =
            br#"{"access_token": "ya29.c.b0Aaek", "expires_in": 3599, "token_type": "Bearer"}"#;
        assert_eq!(
            read_token(answer),
            Ok(("ya29.c.b0Aaek".to_owned(), Duration::from_secs(3599)))
        );
        let unsaid = br#"{"access_token": "ya29.x"}"#;
        assert_eq!(read_token(unsaid).map(|t| t.1), Ok(UNSAID_LIFETIME));
        let huge = br#"{"access_token": "ya29.x", "expires_in": "99999999"}"#;
        assert_eq!(read_token(huge).map(|t| t.1), Ok(MAX_LIFETIME));
    }

    #[test]
    fn an_answer_without_a_usable_token_is_transient() {
        for answer in [
            &b"<html>"[..],
            b"{}",
            br#"{"access_token": ""}"#,
            br#"{"access_token": "a b"}"#,
        ] {
            let e = read_token(answer).unwrap_err();
            assert_eq!(
                (e.class, e.code.as_str()),
                (ErrorClass::Transient, "provider_unavailable")
            );
        }
    }

    #[test]
    fn a_refused_assertion_waits_for_the_operator() {
        let e = token_error(
            400,
            br#"{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}"#,
        );
        assert_eq!(
            (e.class, e.code.as_str()),
            (ErrorClass::NotSent, "auth_failed")
        );
        assert!(
            e.reason.contains("invalid_grant: Invalid JWT Signature."),
            "{}",
            e.reason
        );
        assert_eq!(token_error(503, b"busy").class, ErrorClass::Transient);
        assert_eq!(token_error(429, b"").code, "throttled");
    }
}
