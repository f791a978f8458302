//! [`TelegramChannel`]: one bot behind [`ChannelAdapter`], sending through the Bot API's
//! `send*` methods ([`super::send`]).
//!
//! The provider id of a sent message is `{chat_id}:{message_id}`: Telegram numbers
//! messages per chat, so the chat makes it unique. Errors are mapped by
//! [`super::errors`]. Two answers hold the whole channel (not ready, so its messages
//! wait in the outbox without spending attempts): a 429 for the `retry_after` it gives,
//! and a refused token for a minute, until the operator fixes it.

use super::api::BotApi;
use super::errors::{ErrorCode, Refusal};
use super::send::request;
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
pub struct TelegramChannel {
    api: Arc<BotApi>,
    /// Every send waits for its turn at `max_rate`.
    pace: Pace,
    /// The pause after an `auth_failed` answer.
    auth: AuthPause,
    /// The pause a 429's `retry_after` asked for.
    throttle: AuthPause,
}

impl TelegramChannel {
    pub fn new(api: Arc<BotApi>) -> TelegramChannel {
        TelegramChannel {
            pace: Pace::new(api.config().max_rate()),
            api,
            auth: AuthPause::default(),
            throttle: AuthPause::default(),
        }
    }

    pub fn api(&self) -> &Arc<BotApi> {
        &self.api
    }

    fn held_by(&self, refusal: &Refusal) {
        if let Some(wait) = refusal.retry_after {
            self.throttle.pause(wait);
        }
        if refusal.error.class == ErrorClass::NotSent {
            self.auth.pause(AUTH_PAUSE);
        }
    }
}

#[async_trait]
impl ChannelAdapter for TelegramChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Telegram
    }

    /// Not ready while a 429's `retry_after` runs, or for a minute after the token was
    /// refused.
    fn is_ready(&self) -> bool {
        self.auth.is_over() && self.throttle.is_over()
    }

    /// `message.to` is the chat id; `message.from` is not read (the token is the bot).
    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError> {
        let call = request(&message.to, &message.content)?;
        self.pace.wait_for_turn().await;
        match self.api.call(call.method, &call.body).await {
            Ok(result) => provider_id(&result).map(|provider_id| ProviderAck { provider_id }),
            Err(refusal) => {
                self.held_by(&refusal);
                Err(refusal.error)
            }
        }
    }
}

/// `{chat_id}:{message_id}` of the sent `Message` a `send*` method answers.
fn provider_id(result: &Value) -> Result<String, SendError> {
    let message_id = result.get("message_id").and_then(Value::as_i64);
    let chat_id = result
        .get("chat")
        .and_then(|chat| chat.get("id"))
        .and_then(Value::as_i64);
    match (chat_id, message_id) {
        (Some(chat), Some(message)) => Ok(format!("{chat}:{message}")),
        _ => Err(ErrorCode::NoMessageId.error(format!(
            "the Bot API answered ok without the sent message's chat and message_id: {}",
            super::errors::excerpt(&result.to_string(), 200)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_provider_id_is_the_chat_and_the_message_number() {
        let sent = json!({"message_id": 42, "date": 1764840000,
            "chat": {"id": -1001234567890i64, "type": "supergroup"}, "text": "Bonjour"});
        assert_eq!(provider_id(&sent), Ok("-1001234567890:42".to_owned()));
        let e = provider_id(&json!(true)).unwrap_err();
        assert_eq!(
            (e.class, e.code.as_str()),
            (ErrorClass::Transient, "no_message_id")
        );
    }
}
