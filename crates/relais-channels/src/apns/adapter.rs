//! [`ApnsChannel`]: one app's APNs key behind [`ChannelAdapter`], sending by
//! `POST {base_url}/3/device/{token}` over HTTP/2 (APNs speaks nothing else: an
//! `http://` base URL, for tests, is spoken as h2c with prior knowledge).
//!
//! The provider id is the `apns-id` APNs answers. A refused provider token is replaced
//! once and the push retried; refused again, the channel holds for a minute (not ready)
//! until the operator fixes the key.

use super::config::ApnsConfig;
use super::errors::{classify, is_token_refused, reason_of};
use super::jwt::ProviderToken;
use super::send::{check_token, payload};
use crate::adapter::{ChannelAdapter, OutboundMessage, ProviderAck, SendError};
use crate::pace::{AuthPause, Pace};
use crate::rcs::http::{read_answer, unanswered};
use crate::whatsapp::adapter::{AUTH_PAUSE, ClientError, SEND_TIMEOUT};
use async_trait::async_trait;
use relais_core::channel::ChannelKind;
use relais_core::retry::ErrorClass;
use serde_json::Value;

/// How long APNs keeps trying to deliver a push to an offline device.
pub const EXPIRATION_SECS: i64 = 86_400;

/// One configured APNs key and app.
pub struct ApnsChannel {
    config: ApnsConfig,
    client: reqwest::Client,
    token: ProviderToken,
    pace: Pace,
    auth: AuthPause,
    throttle: AuthPause,
}

impl std::fmt::Debug for ApnsChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsChannel")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// An HTTP/2 client: ALPN over TLS, prior knowledge over plain `http://`.
fn http2_client(base_url: &str) -> Result<reqwest::Client, ClientError> {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .user_agent("Relais/0.1");
    if base_url.starts_with("http://") {
        builder = builder.http2_prior_knowledge();
    }
    builder.build().map_err(|e| ClientError(e.to_string()))
}

impl ApnsChannel {
    pub fn new(config: ApnsConfig) -> Result<ApnsChannel, ClientError> {
        Ok(ApnsChannel {
            client: http2_client(config.base_url())?,
            token: ProviderToken::default(),
            pace: Pace::new(config.max_rate()),
            auth: AuthPause::default(),
            throttle: AuthPause::default(),
            config,
        })
    }

    pub fn config(&self) -> &ApnsConfig {
        &self.config
    }

    /// One POST: the status, the `apns-id` and the body.
    async fn post(
        &self,
        device: &str,
        body: &Value,
        expiration: i64,
    ) -> Result<(u16, Option<String>, Vec<u8>), SendError> {
        let jwt = self
            .token
            .get(&self.config)
            .map_err(|e| SendError::not_sent("auth_failed", e.to_string()))?;
        let response = self
            .client
            .post(self.config.device_url(device))
            .header("authorization", format!("bearer {jwt}"))
            .header("apns-topic", self.config.topic())
            .header("apns-push-type", "alert")
            .header("apns-priority", "10")
            .header("apns-expiration", expiration.to_string())
            .json(body)
            .send()
            .await
            .map_err(|e| unanswered("APNs", e))?;
        let status = response.status().as_u16();
        let apns_id = response
            .headers()
            .get("apns-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let answer = read_answer(response)
            .await
            .map_err(|e| unanswered("APNs", e))?;
        Ok((status, apns_id, answer))
    }
}

#[async_trait]
impl ChannelAdapter for ApnsChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Apns
    }

    fn is_ready(&self) -> bool {
        self.auth.is_over() && self.throttle.is_over()
    }

    /// `message.to` is the device token.
    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError> {
        check_token(&message.to)?;
        let body = payload(&message.message_id, &message.content)?;
        let expiration = message.now.as_second() + EXPIRATION_SECS;
        self.pace.wait_for_turn().await;
        let mut answer = self.post(&message.to, &body, expiration).await?;
        if is_token_refused(answer.0, &reason_of(&answer.2)) && self.token.refresh_early() {
            answer = self.post(&message.to, &body, expiration).await?;
        }
        let (status, apns_id, bytes) = answer;
        if (200..300).contains(&status) {
            return apns_id
                .filter(|id| !id.is_empty())
                .map(|provider_id| ProviderAck { provider_id })
                .ok_or_else(|| {
                    SendError::transient("no_message_id", "APNs answered 200 without apns-id")
                });
        }
        let (error, hold) = classify(status, &bytes);
        if let Some(wait) = hold {
            self.throttle.pause(wait);
        }
        if error.class == ErrorClass::NotSent {
            self.auth.pause(AUTH_PAUSE);
        }
        Err(error)
    }
}
