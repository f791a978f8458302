//! Outgoing webhooks, signed the Standard Webhooks way: headers `webhook-id`,
//! `webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">`, keyed with the secret `whsec_<base64 key>` given once at
//! registration. Deliveries are queued in the store in the transaction that changes a
//! message's status, retried with backoff, and logged.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use jiff::{SignedDuration, Timestamp};
use rand::RngCore;
use relais_core::clock::Clock;
use relais_core::retry::{ErrorClass, RetryDecision, RetryPolicy, WEBHOOK_RETRY_WINDOW};
use relais_store::{DeliveryOutcome, Store, StoreError};
use sha2::Sha256;
use std::sync::{Arc, Mutex};

pub const SECRET_PREFIX: &str = "whsec_";

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(
        "`{0}` is not a usable webhook URL; it must start with https:// or http:// and name a host"
    )]
    BadUrl(String),
    #[error("the webhook secret is not `whsec_` followed by base64")]
    BadSecret,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new signing secret: `whsec_` and 32 random bytes in base64.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The `webhook-signature` header value for one delivery.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Result<String, WebhookError> {
    let key = STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .map_err(|_| WebhookError::BadSecret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| WebhookError::BadSecret)?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Checks a URL before it is stored.
pub fn validate_url(url: &str) -> Result<(), WebhookError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty()
                && !rest.starts_with('/')
                && !url.chars().any(char::is_whitespace)
                && url.len() <= 2048 =>
        {
            Ok(())
        }
        _ => Err(WebhookError::BadUrl(url.to_owned())),
    }
}

/// Sends one HTTP POST; the status code, or why there was none.
#[async_trait]
pub trait WebhookPoster: Send + Sync {
    async fn post(&self, url: &str, headers: &[(&str, String)], body: &str) -> Result<u16, String>;
}

/// The real poster: HTTP/1.1 or 2 with keep-alive, 10-second timeout.
pub struct HttpPoster {
    client: reqwest::Client,
}

impl HttpPoster {
    pub fn new() -> Result<Self, String> {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .user_agent("Relais-Webhooks/1")
            .build()
            .map(|client| HttpPoster { client })
            .map_err(|e| e.to_string())
    }
}

#[async_trait]
impl WebhookPoster for HttpPoster {
    async fn post(&self, url: &str, headers: &[(&str, String)], body: &str) -> Result<u16, String> {
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        request
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    }
}

/// Delivers due webhook events.
pub struct WebhookWorker {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    poster: Arc<dyn WebhookPoster>,
    retry: RetryPolicy,
    lease_owner: String,
    rng: Mutex<rand::rngs::StdRng>,
}

impl WebhookWorker {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        poster: Arc<dyn WebhookPoster>,
        retry: RetryPolicy,
        lease_owner: String,
    ) -> Self {
        use rand::SeedableRng;
        WebhookWorker {
            store,
            clock,
            poster,
            retry,
            lease_owner,
            rng: Mutex::new(rand::rngs::StdRng::from_entropy()),
        }
    }

    /// Delivers what is due; the number of attempts made.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let due = self
            .store
            .claim_webhook_deliveries(now, 100, &self.lease_owner, SignedDuration::from_secs(60))
            .await?;
        let attempts = due.len();
        for item in due {
            let timestamp = self.clock.now().as_second();
            let d = &item.delivery;
            let outcome = match sign(&item.secret, &d.id, timestamp, &d.payload) {
                Err(e) => DeliveryOutcome::Failed {
                    code: None,
                    error: e.to_string(),
                },
                Ok(signature) => {
                    let headers = [
                        ("webhook-id", d.id.clone()),
                        ("webhook-timestamp", timestamp.to_string()),
                        ("webhook-signature", signature),
                    ];
                    let result = self.poster.post(&item.url, &headers, &d.payload).await;
                    let give_up_at = d
                        .created_at
                        .checked_add(WEBHOOK_RETRY_WINDOW)
                        .unwrap_or(Timestamp::MAX);
                    self.outcome(result, d.attempts + 1, give_up_at)
                }
            };
            self.store
                .finish_webhook_delivery(&d.id, &self.lease_owner, &outcome, self.clock.now())
                .await?;
        }
        Ok(attempts)
    }

    fn outcome(
        &self,
        result: Result<u16, String>,
        attempts: i64,
        give_up_at: Timestamp,
    ) -> DeliveryOutcome {
        let (code, error, class) = match result {
            Ok(code) if (200..300).contains(&code) => {
                return DeliveryOutcome::Delivered {
                    code: i64::from(code),
                };
            }
            // The receiver refuses this event for good (but 408 and 429 say "later").
            Ok(code) if (400..500).contains(&code) && code != 408 && code != 429 => (
                Some(i64::from(code)),
                format!("HTTP {code}"),
                ErrorClass::Permanent,
            ),
            Ok(code) => (
                Some(i64::from(code)),
                format!("HTTP {code}"),
                ErrorClass::Transient,
            ),
            Err(e) => (None, e, ErrorClass::Transient),
        };
        let now = self.clock.now();
        let decision = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            self.retry.decide(
                class,
                u32::try_from(attempts).unwrap_or(u32::MAX),
                now,
                Some(give_up_at),
                &mut *rng,
            )
        };
        match decision {
            RetryDecision::RetryAt(due_at) => DeliveryOutcome::Retry {
                due_at,
                code,
                error,
            },
            RetryDecision::GiveUp(_) => DeliveryOutcome::Failed { code, error },
        }
    }
}

/// The instant a timestamp header names, for receivers that check freshness.
pub fn timestamp_of(header: &str) -> Option<Timestamp> {
    header
        .parse::<i64>()
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, id, 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(sign("whsec_not base64!", id, 1, body).is_err());
        let fresh = generate_secret();
        assert!(fresh.starts_with(SECRET_PREFIX));
        assert_ne!(fresh, generate_secret());
    }

    #[test]
    fn urls_are_checked() {
        assert!(validate_url("https://example.com/hooks").is_ok());
        assert!(validate_url("ftp://example.com").is_err());
        assert!(validate_url("https:///path").is_err());
        assert!(validate_url("https://exa mple.com").is_err());
    }
}
