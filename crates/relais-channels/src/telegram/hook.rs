//! A call from Telegram to the channel's `/hooks/{channel}` address: one update, posted
//! with the `X-Telegram-Bot-Api-Secret-Token` header the channel gave `setWebhook`.
//!
//! The header is checked first, in constant time; a call without it or with another
//! value is refused (401) and nothing of it is read. An update that concerns no one here
//! is answered 200 with nothing stored, since Telegram delivers again whatever is not
//! answered 2xx. A tap on a button is answered with `answerCallbackQuery` once the
//! engine has stored it (best effort: the spinner on the person's button stops; a failed
//! answer only leaves it spinning a few seconds).

use super::api::BotApi;
use super::update::{Inbound, parse_update};
use crate::configured::{
    ChannelEvent, ChannelIdentity, WebhookAnswer, WebhookError, WebhookRequest,
};
use crate::event::{Confirm, NewInbound};
use crate::secret::same_secret;
use relais_core::channel::ChannelKind;
use std::sync::Arc;

/// The header Telegram sets to the webhook's `secret_token` on every call.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

pub(crate) fn receive(
    identity: &ChannelIdentity,
    api: &Arc<BotApi>,
    request: &WebhookRequest<'_>,
) -> Result<WebhookAnswer, WebhookError> {
    let config = api.config();
    match request.header(SECRET_HEADER) {
        Some(given) if same_secret(config.secret_token(), given) => {}
        Some(_) => {
            return Err(WebhookError::Unauthorized(
                "`X-Telegram-Bot-Api-Secret-Token` is not this channel's secret_token".into(),
            ));
        }
        None => {
            return Err(WebhookError::Unauthorized(
                "no `X-Telegram-Bot-Api-Secret-Token` header".into(),
            ));
        }
    }
    if request.is_get {
        return Err(WebhookError::Malformed(
            "Telegram posts its updates; there is nothing to answer a GET with".into(),
        ));
    }
    let inbound = parse_update(request.body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let Some(inbound) = inbound else {
        return Ok(WebhookAnswer::Deliver(Vec::new()));
    };
    let confirm = match &inbound.callback_query_id {
        Some(id) => answer_once_stored(api.clone(), id.clone()),
        None => Confirm::none(),
    };
    Ok(WebhookAnswer::Deliver(vec![ChannelEvent::Inbound(
        new_inbound(identity, config.bot_id(), inbound),
        confirm,
    )]))
}

fn new_inbound(identity: &ChannelIdentity, bot_id: &str, inbound: Inbound) -> NewInbound {
    NewInbound {
        answers: Vec::new(),
        tenant_id: identity.tenant_id.clone(),
        channel: ChannelKind::Telegram,
        channel_id: Some(identity.id.clone()),
        from: inbound.chat_id,
        to: bot_id.to_owned(),
        text: inbound.text,
        payload: inbound.payload,
        media: None,
        provider_id: Some(inbound.provider_id),
    }
}

/// Calls `answerCallbackQuery` in the background once the tap is stored.
fn answer_once_stored(api: Arc<BotApi>, callback_query_id: String) -> Confirm {
    Confirm::new(move || {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            if let Err(refusal) = api.answer_callback_query(&callback_query_id).await {
                tracing::debug!(error = %refusal.error, "answerCallbackQuery failed; the button spins until Telegram gives up");
            }
        });
    })
}
