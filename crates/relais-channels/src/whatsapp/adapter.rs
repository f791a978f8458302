//! [`WhatsAppChannel`]: one business phone number behind [`ChannelAdapter`], sending through
//! `POST {base_url}/{api_version}/{phone_number_id}/messages`.
//!
//! A 2xx answer's `messages[0].id` (the `wamid`) is the provider id that status webhooks
//! name later. Errors are mapped by [`super::errors`]; a request that never got an answer
//! (refused connection, 10 s timeout) is transient. When Meta refuses the token or a
//! permission, the channel says it is not ready for a minute, so its messages wait in the
//! outbox for the operator instead of failing or hammering Meta. Statuses come by webhook
//! ([`super::parse_webhook`]), so `poll_receipts` keeps its default (none).

use super::config::WhatsAppConfig;
use super::errors::{ErrorCode, classify};
use super::send::request_body;
use super::templates::{ApprovedTemplate, TemplateSyncError, fetch_templates};
use crate::adapter::{ChannelAdapter, OutboundMessage, ProviderAck, RecipientLimit, SendError};
use crate::pace::{AuthPause, Pace};
use async_trait::async_trait;
use relais_core::channel::ChannelKind;
use relais_core::retry::ErrorClass;
use std::time::Duration;

/// How long a send may take, connection included. Meta answers in well under a second;
/// past 10 s the message is retried later rather than holding a slot of the window.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the channel stays not ready after Meta refused its token or a permission. A
/// permission granted in Meta's business settings fixes it without a new config, so the
/// channel tries again after this.
pub const AUTH_PAUSE: Duration = Duration::from_secs(60);

/// Answers larger than this are not read further: Meta's are a few hundred bytes, and a
/// broken proxy must not make us buffer without bound.
pub(super) const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The HTTP client could not be built (no TLS provider, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientError(pub(crate) String);

/// The client every Graph API request of this channel goes through: connections kept
/// alive, a 10 s timeout, and a user agent that says who calls.
pub fn http_client() -> Result<reqwest::Client, ClientError> {
    // reqwest is built without a default crypto provider; installing ring twice is a no-op.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .user_agent("Relais/0.1")
        .build()
        .map_err(|e| ClientError(e.to_string()))
}

/// One configured WhatsApp Cloud API number.
pub struct WhatsAppChannel {
    config: WhatsAppConfig,
    client: reqwest::Client,
    messages_url: String,
    /// The pause after an `auth_failed` answer, while the channel is not ready.
    auth: AuthPause,
    /// Every send waits for its turn at `max_rate`.
    pace: Pace,
}

impl std::fmt::Debug for WhatsAppChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhatsAppChannel")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl WhatsAppChannel {
    pub fn new(config: WhatsAppConfig) -> Result<WhatsAppChannel, ClientError> {
        Ok(WhatsAppChannel {
            client: http_client()?,
            messages_url: config.messages_url(),
            pace: Pace::new(config.max_rate()),
            config,
            auth: AuthPause::default(),
        })
    }

    pub fn config(&self) -> &WhatsAppConfig {
        &self.config
    }

    /// The approved (and pending, rejected…) templates of the channel's business account.
    pub async fn fetch_templates(&self) -> Result<Vec<ApprovedTemplate>, TemplateSyncError> {
        fetch_templates(&self.client, &self.config).await
    }

    fn pause_for_auth(&self) {
        self.auth.pause(AUTH_PAUSE);
    }
}

#[async_trait]
impl ChannelAdapter for WhatsAppChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Whatsapp
    }

    fn is_ready(&self) -> bool {
        self.auth.is_over()
    }

    /// Meta counts the customers a number started conversations with over a moving 24 h.
    fn recipient_limit(&self) -> Option<RecipientLimit> {
        self.config
            .messaging_limit()
            .map(|recipients| RecipientLimit {
                recipients,
                window: jiff::SignedDuration::from_hours(24),
            })
    }

    /// `message.from` is not read: the configured phone number id decides the sender.
    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError> {
        let body = request_body(&message.to, &message.content)?;
        self.pace.wait_for_turn().await;
        let response = self
            .client
            .post(&self.messages_url)
            .bearer_auth(self.config.access_token())
            .json(&body)
            .send()
            .await
            .map_err(unanswered)?;
        let status = response.status().as_u16();
        let answer = read_answer(response).await.map_err(unanswered)?;
        if !(200..300).contains(&status) {
            let error = classify(status, &answer);
            if error.class == ErrorClass::NotSent {
                self.pause_for_auth();
            }
            return Err(error);
        }
        message_id(&answer).map(|provider_id| ProviderAck { provider_id })
    }
}

/// The `wamid` of a 2xx answer `{"messages": [{"id": "wamid…"}]}`.
fn message_id(answer: &[u8]) -> Result<String, SendError> {
    serde_json::from_slice::<serde_json::Value>(answer)
        .ok()
        .and_then(|answer| {
            answer
                .pointer("/messages/0/id")
                .and_then(serde_json::Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
        })
        .ok_or_else(|| {
            ErrorCode::NoMessageId.error(format!(
                "the Graph API answered 2xx without a message id: {}",
                String::from_utf8_lossy(&answer[..answer.len().min(200)])
            ))
        })
}

/// A request that got no answer: the network, DNS, TLS or the 10 s timeout.
pub(super) fn unanswered(error: reqwest::Error) -> SendError {
    let what = if error.is_timeout() {
        format!("no answer within {} s", SEND_TIMEOUT.as_secs())
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    ErrorCode::ProviderUnavailable.error(format!("Graph API: {what}: {error}"))
}

/// The answer's body, at most [`MAX_ANSWER_BYTES`] of it.
pub(super) async fn read_answer(
    mut response: reqwest::Response,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_wamid_is_read_from_the_first_message() {
        let answer = br#"{"messaging_product": "whatsapp",
            "contacts": [{"input": "+16505551234", "wa_id": "16505551234"}],
            "messages": [{"id": "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA"}]}"#;
        assert_eq!(
            message_id(answer),
            Ok("wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA".to_owned())
        );
    }

    #[test]
    fn an_answer_without_an_id_is_transient() {
        for answer in [
            &br#"{"messages": []}"#[..],
            b"{}",
            b"<html>",
            br#"{"messages": [{"id": ""}]}"#,
        ] {
            let e = message_id(answer).unwrap_err();
            assert_eq!(
                (e.class, e.code.as_str()),
                (ErrorClass::Transient, "no_message_id")
            );
        }
    }

    #[test]
    fn an_auth_failure_makes_the_channel_not_ready_for_a_while() {
        let config = WhatsAppConfig::parse(&serde_json::json!({"phone_number_id": "1",
            "access_token": "t", "app_secret": "s", "verify_token": "v"}))
        .unwrap();
        let channel = WhatsAppChannel::new(config).unwrap();
        assert!(channel.is_ready());
        channel.pause_for_auth();
        assert!(!channel.is_ready());
        channel.auth.pause(Duration::ZERO);
        assert!(channel.is_ready(), "ready again once the pause is over");
    }
}
