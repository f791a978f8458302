//! [`FcmChannel`]: one Firebase project behind [`ChannelAdapter`], sending by
//! `POST {base_url}/v1/projects/{project_id}/messages:send` with a bearer token bought
//! with the service account (the RCS channel's [`TokenSource`], with FCM's scope).
//!
//! The provider id is the `name` FCM answers (`projects/{id}/messages/{n}`). A throttled
//! answer holds the channel for its delay; refused credentials drop the cached token and
//! hold it for a minute: in both cases the adapter is not ready, so waiting messages
//! spend no attempts.

use super::config::FcmConfig;
use super::errors::{Refusal, classify, excerpt};
use super::send::request_body;
use crate::adapter::{ChannelAdapter, OutboundMessage, ProviderAck, SendError};
use crate::pace::{AuthPause, Pace};
use crate::rcs::auth::TokenSource;
use crate::rcs::http::{read_answer, unanswered};
use crate::rcs::jwt::FCM_SCOPE;
use crate::whatsapp::adapter::{AUTH_PAUSE, ClientError, http_client};
use async_trait::async_trait;
use relais_core::channel::ChannelKind;
use relais_core::retry::ErrorClass;
use serde_json::Value;

/// One configured Firebase project.
pub struct FcmChannel {
    config: FcmConfig,
    client: reqwest::Client,
    tokens: TokenSource,
    pace: Pace,
    auth: AuthPause,
    throttle: AuthPause,
}

impl std::fmt::Debug for FcmChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmChannel")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl FcmChannel {
    pub fn new(config: FcmConfig) -> Result<FcmChannel, ClientError> {
        let client = http_client()?;
        Ok(FcmChannel {
            tokens: TokenSource::with_scope(
                client.clone(),
                config.service_account().clone(),
                config.token_uri(),
                FCM_SCOPE,
            ),
            client,
            pace: Pace::new(config.max_rate()),
            auth: AuthPause::default(),
            throttle: AuthPause::default(),
            config,
        })
    }

    pub fn config(&self) -> &FcmConfig {
        &self.config
    }

    async fn post(&self, body: &Value) -> Result<String, Refusal> {
        let plain = |error: SendError| Refusal {
            error,
            retry_after: None,
        };
        let bearer = self.tokens.bearer().await.map_err(plain)?;
        let response = self
            .client
            .post(self.config.send_url())
            .bearer_auth(bearer)
            .json(body)
            .send()
            .await
            .map_err(|e| plain(unanswered("FCM messages:send", e)))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let answer = read_answer(response)
            .await
            .map_err(|e| plain(unanswered("FCM messages:send", e)))?;
        if !(200..300).contains(&status) {
            return Err(classify(status, &answer, retry_after.as_deref()));
        }
        serde_json::from_slice::<Value>(&answer)
            .ok()
            .and_then(|a| a.get("name").and_then(Value::as_str).map(str::to_owned))
            .filter(|name| !name.is_empty())
            .ok_or_else(|| {
                plain(SendError::transient(
                    "no_message_id",
                    format!(
                        "FCM answered {status} without the message's name: {}",
                        excerpt(String::from_utf8_lossy(&answer).trim(), 200)
                    ),
                ))
            })
    }
}

#[async_trait]
impl ChannelAdapter for FcmChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Fcm
    }

    /// Not ready while a throttled answer's delay runs, or for a minute after the
    /// credentials were refused.
    fn is_ready(&self) -> bool {
        self.auth.is_over() && self.throttle.is_over()
    }

    /// `message.to` is the device's registration token.
    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError> {
        let body = request_body(&message.to, &message.message_id, &message.content)?;
        self.pace.wait_for_turn().await;
        match self.post(&body).await {
            Ok(provider_id) => Ok(ProviderAck { provider_id }),
            Err(refusal) => {
                if let Some(wait) = refusal.retry_after {
                    self.throttle.pause(wait);
                }
                if refusal.error.class == ErrorClass::NotSent {
                    self.tokens.forget().await;
                    self.auth.pause(AUTH_PAUSE);
                }
                Err(refusal.error)
            }
        }
    }
}
