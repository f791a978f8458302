//! [`ViberChannel`]: one bot behind [`ChannelAdapter`], sending through `send_message`
//! ([`super::send`]).
//!
//! The provider id of a sent message is Viber's `message_token`, which its `delivered`,
//! `seen` and `failed` callbacks name. Two answers hold the whole channel (not ready, so
//! its messages wait in the outbox without spending attempts): status 12 for
//! [`THROTTLE_PAUSE`], and a refused token or account (or no webhook set) for a minute,
//! until the operator fixes it.

use super::api::ViberApi;
use super::errors::{ErrorCode, THROTTLE_PAUSE, excerpt};
use super::send::{file_to_size, request};
use crate::adapter::{ChannelAdapter, OutboundMessage, ProviderAck, SendError};
use crate::pace::{AuthPause, Pace};
use crate::whatsapp::adapter::AUTH_PAUSE;
use async_trait::async_trait;
use relais_core::channel::ChannelKind;
use relais_core::retry::ErrorClass;
use serde_json::Value;
use std::sync::Arc;

/// One configured bot.
#[derive(Debug)]
pub struct ViberChannel {
    api: Arc<ViberApi>,
    pace: Pace,
    auth: AuthPause,
    throttle: AuthPause,
}

impl ViberChannel {
    pub fn new(api: Arc<ViberApi>) -> ViberChannel {
        ViberChannel {
            pace: Pace::new(api.config().max_rate()),
            api,
            auth: AuthPause::default(),
            throttle: AuthPause::default(),
        }
    }

    pub fn api(&self) -> &Arc<ViberApi> {
        &self.api
    }

    fn held_by(&self, error: &SendError) {
        if error.code == ErrorCode::Throttled.as_str() {
            self.throttle.pause(THROTTLE_PAUSE);
        }
        if error.class == ErrorClass::NotSent {
            self.auth.pause(AUTH_PAUSE);
        }
    }
}

#[async_trait]
impl ChannelAdapter for ViberChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Viber
    }

    /// Not ready for a while after status 12, or for a minute after the token or the
    /// account was refused.
    fn is_ready(&self) -> bool {
        self.auth.is_over() && self.throttle.is_over()
    }

    /// `message.to` is the person's Viber user id; `message.from` is not read (the token
    /// is the bot).
    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError> {
        let size = match file_to_size(&message.content) {
            Some(media) => self.api.file_size(&media.url).await,
            None => None,
        };
        let body = request(self.api.config(), &message.to, &message.content, size)?;
        self.pace.wait_for_turn().await;
        match self.api.call("send_message", &body).await {
            Ok(answer) => provider_id(&answer).map(|provider_id| ProviderAck { provider_id }),
            Err(error) => {
                self.held_by(&error);
                Err(error)
            }
        }
    }
}

/// The `message_token` of a `send_message` answer.
fn provider_id(answer: &Value) -> Result<String, SendError> {
    match answer.get("message_token") {
        Some(Value::Number(token)) => Ok(token.to_string()),
        Some(Value::String(token)) if !token.is_empty() => Ok(token.clone()),
        _ => Err(ErrorCode::NoMessageId.error(format!(
            "Viber answered status 0 without a message_token: {}",
            excerpt(&answer.to_string(), 200)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_provider_id_is_the_message_token() {
        let answer = json!({"status": 0, "status_message": "ok",
            "message_token": 5741311803571721087u64, "chat_hostname": "SN-CHAT-05_"});
        assert_eq!(provider_id(&answer), Ok("5741311803571721087".to_owned()));
        let e = provider_id(&json!({"status": 0})).unwrap_err();
        assert_eq!(e.code, "no_message_id");
    }
}
