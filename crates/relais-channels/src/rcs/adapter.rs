//! [`RcsChannel`]: one RBM agent behind [`ChannelAdapter`], sending through
//! `POST {base_url}/v1/phones/{msisdn}/agentMessages?messageId={id}&agentId={agent}`.
//!
//! The message id Google is given is Relais's own, so a send retried after a crash that
//! cut its answer short is not delivered twice: Google keeps the first message with an
//! id and refuses the next with `ALREADY_EXISTS`, which is taken as sent. The provider id
//! is that same id, which delivery and read events name later.
//!
//! Before a send, unless `check_capability` is off, the channel asks
//! `GET {base_url}/v1/phones/{msisdn}/capabilities` whether the phone can take RCS from
//! this agent, and remembers the answer for an hour ([`super::capability`]). A phone
//! without RCS (a `404`, there or on the send) is a permanent `not_reachable`, so a
//! fallback chain moves on to SMS at once.
//!
//! Every request carries the service account's bearer token ([`super::auth`]) and waits
//! its turn at `max_rate`. Errors are mapped by [`super::errors`]; a request that never
//! got an answer (refused connection, 10 s timeout) is transient. When Google refuses the
//! account, the cached token is dropped and the channel says it is not ready for a
//! minute, so its messages wait in the outbox for the operator instead of failing.

use super::auth::TokenSource;
use super::capability::CapabilityCache;
use super::config::RcsConfig;
use super::errors::{ErrorCode, classify, is_already_sent};
use super::http::{encode, read_answer, unanswered};
use super::send::{msisdn, request_body};
use crate::adapter::{ChannelAdapter, OutboundMessage, ProviderAck, SendError};
use crate::pace::{AuthPause, Pace};
use crate::whatsapp::adapter::{AUTH_PAUSE, ClientError, http_client};
use async_trait::async_trait;
use relais_core::channel::ChannelKind;
use relais_core::retry::ErrorClass;
use std::sync::Mutex;
use tokio::time::Instant;

/// One configured RBM agent.
pub struct RcsChannel {
    config: RcsConfig,
    client: reqwest::Client,
    tokens: TokenSource,
    capabilities: Mutex<CapabilityCache>,
    /// The pause after an `auth_failed` answer, while the channel is not ready.
    auth: AuthPause,
    pace: Pace,
}

impl std::fmt::Debug for RcsChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RcsChannel")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RcsChannel {
    pub fn new(config: RcsConfig) -> Result<RcsChannel, ClientError> {
        let client = http_client()?;
        Ok(RcsChannel {
            tokens: TokenSource::new(
                client.clone(),
                config.service_account().clone(),
                config.token_uri(),
            ),
            client,
            capabilities: Mutex::new(CapabilityCache::default()),
            auth: AuthPause::default(),
            pace: Pace::new(config.max_rate()),
            config,
        })
    }

    pub fn config(&self) -> &RcsConfig {
        &self.config
    }

    /// Whether `phone` can take RCS from this agent: from the last hour's answer, or
    /// Google's.
    pub async fn is_reachable(&self, phone: &str) -> Result<bool, SendError> {
        if let Some(known) = self.remembered(phone) {
            return Ok(known);
        }
        // Each check needs its own UUID: Google ignores a request id it has seen.
        let url = format!(
            "{}/v1/phones/{phone}/capabilities?requestId={}&agentId={}",
            self.config.base_url(),
            encode(&relais_core::ids::new_id()),
            encode(self.config.agent_id()),
        );
        let (status, answer) = self.call(self.client.get(url)).await?;
        let reachable = if (200..300).contains(&status) {
            true
        } else {
            let error = self.refused(status, &answer).await;
            if error.code != ErrorCode::NotReachable.as_str() {
                return Err(error);
            }
            false
        };
        self.remember(phone, reachable);
        Ok(reachable)
    }

    /// One request to Google with the bearer token, at its turn; its status and body.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), SendError> {
        let token = self.tokens.bearer().await.inspect_err(|error| {
            if error.class == ErrorClass::NotSent {
                self.pause_for_auth();
            }
        })?;
        self.pace.wait_for_turn().await;
        let response = request
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| unanswered("RBM API", e))?;
        let status = response.status().as_u16();
        let answer = read_answer(response)
            .await
            .map_err(|e| unanswered("RBM API", e))?;
        Ok((status, answer))
    }

    /// The error an answer means, after what it says about the channel is acted on.
    async fn refused(&self, status: u16, answer: &[u8]) -> SendError {
        let error = classify(status, answer);
        if error.class == ErrorClass::NotSent {
            // A revoked token or a rotated key: the next try starts with a new token.
            self.tokens.forget().await;
            self.pause_for_auth();
        }
        error
    }

    fn remembered(&self, phone: &str) -> Option<bool> {
        let cache = self.capabilities.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(phone, Instant::now())
    }

    fn remember(&self, phone: &str, reachable: bool) {
        let mut cache = self.capabilities.lock().unwrap_or_else(|p| p.into_inner());
        cache.put(phone, reachable, Instant::now());
    }

    fn pause_for_auth(&self) {
        self.auth.pause(AUTH_PAUSE);
    }
}

#[async_trait]
impl ChannelAdapter for RcsChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Rcs
    }

    fn is_ready(&self) -> bool {
        self.auth.is_over()
    }

    /// `message.from` is not read: the configured agent is the sender.
    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError> {
        let phone = msisdn(&message.to)?;
        let body = request_body(&message.content)?;
        if self.config.check_capability() && !self.is_reachable(&phone).await? {
            return Err(ErrorCode::NotReachable.error(format!(
                "{phone} cannot take RCS from this agent (capability check)"
            )));
        }
        // The number is `+` and digits (checked by `msisdn`), which a path carries as is.
        let url = format!(
            "{}/v1/phones/{phone}/agentMessages?messageId={}&agentId={}",
            self.config.base_url(),
            encode(&message.message_id),
            encode(self.config.agent_id()),
        );
        let (status, answer) = self.call(self.client.post(url).json(&body)).await?;
        if (200..300).contains(&status) || is_already_sent(status, &answer) {
            return Ok(ProviderAck {
                provider_id: message.message_id.clone(),
            });
        }
        let error = self.refused(status, &answer).await;
        if error.code == ErrorCode::NotReachable.as_str() {
            // RCS went away since the last check: the next message goes to SMS at once.
            self.remember(&phone, false);
        }
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::super::service_account::tests::key_file;
    use super::*;
    use std::time::Duration;

    fn channel() -> RcsChannel {
        let config = RcsConfig::parse(&serde_json::json!({"agent_id": "relais_agent",
            "service_account": key_file(), "client_token": "t"}))
        .unwrap();
        RcsChannel::new(config).unwrap()
    }

    #[test]
    fn the_channel_carries_rcs() {
        assert_eq!(channel().kind(), ChannelKind::Rcs);
    }

    #[test]
    fn an_auth_failure_makes_the_channel_not_ready_for_a_while() {
        let channel = channel();
        assert!(channel.is_ready());
        channel.pause_for_auth();
        assert!(!channel.is_ready());
        channel.auth.pause(Duration::ZERO);
        assert!(channel.is_ready(), "ready again once the pause is over");
    }

    #[tokio::test]
    async fn a_remembered_answer_is_used_without_asking_google() {
        let channel = channel();
        channel.remember("+33600000404", false);
        assert_eq!(channel.is_reachable("+33600000404").await, Ok(false));
    }
}
