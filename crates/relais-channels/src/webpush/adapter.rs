//! [`WebpushChannel`]: one VAPID key behind [`ChannelAdapter`], pushing an encrypted
//! notification to each subscription's endpoint.
//!
//! A send reads the address as a subscription ([`super::subscription`]), turns the
//! content into the notification JSON ([`super::payload`]), seals it
//! ([`super::ece::encrypt`]) and POSTs it with `Content-Encoding: aes128gcm`, `TTL`,
//! `Urgency` and `Authorization: vapid t=…, k=…` (a token per endpoint origin). Answers
//! are read by [`super::answer`]; a 429 holds the channel for its `Retry-After`, a refused
//! VAPID key for a minute.

use super::answer::{Refusal, classify, excerpt};
use super::config::WebpushConfig;
use super::ece;
use super::payload::notification;
use super::report::stamp;
use super::subscription::Subscription;
use crate::adapter::{ChannelAdapter, OutboundMessage, ProviderAck, SendError};
use crate::pace::{AuthPause, Pace};
use crate::whatsapp::adapter::{AUTH_PAUSE, ClientError, http_client};
use async_trait::async_trait;
use relais_core::channel::ChannelKind;
use relais_core::retry::ErrorClass;

/// Answers are read up to this many bytes (push services answer a few hundred).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// One configured Web Push sender.
#[derive(Debug)]
pub struct WebpushChannel {
    config: WebpushConfig,
    /// Where browsers report this channel's notifications (`{public_url}/hooks/{id}`),
    /// when the config names a `public_url`.
    report_url: Option<String>,
    client: reqwest::Client,
    pace: Pace,
    auth: AuthPause,
    throttle: AuthPause,
}

impl WebpushChannel {
    /// The sender of the configured channel `channel_id`.
    pub fn new(config: WebpushConfig, channel_id: &str) -> Result<WebpushChannel, ClientError> {
        Ok(WebpushChannel {
            client: http_client()?,
            report_url: config
                .public_url()
                .map(|public_url| crate::configured::hook_address(public_url, channel_id)),
            pace: Pace::new(config.max_rate()),
            config,
            auth: AuthPause::default(),
            throttle: AuthPause::default(),
        })
    }

    pub fn config(&self) -> &WebpushConfig {
        &self.config
    }

    async fn push(&self, message: &OutboundMessage) -> Result<ProviderAck, Refusal> {
        let refuse = |error: SendError| Refusal {
            error,
            retry_after: None,
        };
        let subscription = Subscription::parse(&message.to, self.config.allow_http_endpoints())
            .map_err(|e| refuse(SendError::permanent("invalid_recipient", e.to_string())))?;
        let mut notification = notification(
            &message.content,
            self.config.title(),
            self.report_url.is_some(),
        )
        .map_err(|reason| refuse(SendError::permanent("bad_content", reason)))?;
        if let Some(report_url) = &self.report_url {
            notification["relais"] =
                stamp(self.config.report_key(), report_url, &message.message_id);
        }
        let body =
            ece::encrypt(notification.to_string().as_bytes(), &subscription.keys).map_err(|e| {
                match e {
                    ece::EceError::TooLarge(_) => {
                        refuse(SendError::permanent("bad_content", e.to_string()))
                    }
                    ece::EceError::BadPublicKey => {
                        refuse(SendError::permanent("invalid_recipient", e.to_string()))
                    }
                    _ => refuse(SendError::transient("encryption_failed", e.to_string())),
                }
            })?;
        let authorization = self
            .config
            .key()
            .authorization(
                &subscription.audience(),
                self.config.subject(),
                message.now.as_second(),
            )
            .map_err(|e| refuse(SendError::transient("encryption_failed", e.to_string())))?;
        self.pace.wait_for_turn().await;
        let response = self
            .client
            .post(subscription.endpoint.clone())
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header("TTL", self.config.ttl().to_string())
            .header("Urgency", self.config.urgency())
            .header("Authorization", authorization)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                refuse(SendError::transient(
                    "provider_unavailable",
                    format!(
                        "no answer from the push service at {}: {}",
                        subscription.audience(),
                        e.without_url()
                    ),
                ))
            })?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let location = header("location");
        let retry_after = header("retry-after");
        if (200..300).contains(&status) {
            // The message's own id, which its notification carries: a browser's report,
            // and an answer by one of its buttons, name it.
            tracing::debug!(message = %message.message_id, location = ?location, "pushed");
            return Ok(ProviderAck {
                provider_id: message.message_id.clone(),
            });
        }
        let answer = read_answer(response).await;
        Err(classify(status, retry_after.as_deref(), &answer))
    }
}

async fn read_answer(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    excerpt(&String::from_utf8_lossy(&bytes), 500)
}

#[async_trait]
impl ChannelAdapter for WebpushChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Webpush
    }

    /// With browsers' reports (a `public_url`), reads come back and reply buttons are
    /// answers.
    fn capabilities(&self) -> relais_core::content::ChannelCapabilities {
        super::capabilities(self.report_url.is_some())
    }

    /// Not ready while a 429's `Retry-After` runs, or for a minute after the push service
    /// refused the VAPID credentials.
    fn is_ready(&self) -> bool {
        self.auth.is_over() && self.throttle.is_over()
    }

    /// `message.to` is the subscription JSON; `message.from` is not read.
    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError> {
        self.push(message).await.map_err(|refusal| {
            if let Some(wait) = refusal.retry_after {
                self.throttle.pause(wait);
            }
            if refusal.error.class == ErrorClass::NotSent {
                self.auth.pause(AUTH_PAUSE);
            }
            refusal.error
        })
    }
}
