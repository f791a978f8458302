//! A call to a Viber channel's `/hooks/{channel}` address: one callback, posted with
//! `X-Viber-Content-Signature`, the hex HMAC-SHA256 of the raw body keyed with the bot's
//! auth token.
//!
//! The signature is checked first, in constant time; a call without it or with another
//! value is refused (401) and nothing of it is read. Messages become inbound messages,
//! `delivered` / `seen` / `failed` statuses of the message whose `message_token` they
//! name. An `unsubscribed` is answered 200 with nothing stored: the engine has no channel
//! event for a consent change yet (docs/channels.md says what that means); Viber itself
//! refuses to deliver to the person from then on (status 6, `undeliverable`).

use super::api::ViberApi;
use super::callback::{Callback, Inbound, parse_callback};
use crate::configured::{
    ChannelEvent, ChannelIdentity, WebhookAnswer, WebhookError, WebhookRequest,
};
use crate::event::{Confirm, ConsentReport, MessageRef, NewInbound, StatusReport};
use crate::whatsapp::signature::keyed;
use hmac::Mac;
use relais_core::channel::ChannelKind;
use relais_core::consent::{ConsentStatus, Purpose};
use std::sync::Arc;

/// The header Viber signs every callback in.
pub const SIGNATURE_HEADER: &str = "x-viber-content-signature";

pub(crate) fn receive(
    identity: &ChannelIdentity,
    api: &Arc<ViberApi>,
    request: &WebhookRequest<'_>,
) -> Result<WebhookAnswer, WebhookError> {
    let config = api.config();
    match request.header(SIGNATURE_HEADER) {
        Some(given) if signed_by(config.auth_token(), request.body, given) => {}
        Some(_) => {
            return Err(WebhookError::Unauthorized(
                "`X-Viber-Content-Signature` is not the HMAC-SHA256 of the body under this channel's auth_token".into(),
            ));
        }
        None => {
            return Err(WebhookError::Unauthorized(
                "no `X-Viber-Content-Signature` header".into(),
            ));
        }
    }
    if request.is_get {
        return Err(WebhookError::Malformed(
            "Viber posts its callbacks; there is nothing to answer a GET with".into(),
        ));
    }
    let callback =
        parse_callback(request.body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let events = match callback {
        Callback::Message(inbound) => vec![ChannelEvent::Inbound(
            new_inbound(identity, config.name(), inbound),
            Confirm::none(),
        )],
        Callback::Status {
            message_token,
            status,
            at,
            detail,
        } => vec![ChannelEvent::Status(
            StatusReport {
                tenant_id: identity.tenant_id.clone(),
                channel_id: identity.id.clone(),
                message: MessageRef::Provider(message_token),
                status,
                at,
                detail,
                address_gone: false,
            },
            Confirm::none(),
        )],
        Callback::Unsubscribed { user_id, at } => {
            let when = at.map_or_else(|| "at an unknown time".to_owned(), |t| format!("at {t}"));
            vec![ChannelEvent::Consent(
                ConsentReport {
                    tenant_id: identity.tenant_id.clone(),
                    channel: ChannelKind::Viber,
                    proof: format!(
                        "Viber `unsubscribed` callback for user {user_id} {when}, on channel {}",
                        identity.id
                    ),
                    address: user_id,
                    // Unsubscribed from the bot: Viber delivers nothing more from it.
                    status: ConsentStatus::OptedOut,
                    purpose: Purpose::All,
                },
                Confirm::none(),
            )]
        }
        Callback::Nothing => Vec::new(),
    };
    Ok(WebhookAnswer::Deliver(events))
}

fn new_inbound(identity: &ChannelIdentity, bot_name: &str, inbound: Inbound) -> NewInbound {
    NewInbound {
        answers: Vec::new(),
        tenant_id: identity.tenant_id.clone(),
        channel: ChannelKind::Viber,
        channel_id: Some(identity.id.clone()),
        from: inbound.from,
        to: bot_name.to_owned(),
        text: inbound.text,
        payload: inbound.payload,
        media: None,
        provider_id: Some(inbound.provider_id),
    }
}

/// Whether `given` is the hex HMAC-SHA256 of `body` under `token`, compared in constant
/// time (`verify_slice`).
fn signed_by(token: &str, body: &[u8], given: &str) -> bool {
    let Ok(given) = hex::decode(given.trim()) else {
        return false;
    };
    keyed(token.as_bytes(), body).is_some_and(|mac| mac.verify_slice(&given).is_ok())
}

/// The signature Viber would put on `body` for a bot with `token` (for tests and fakes).
pub fn sign(token: &str, body: &[u8]) -> String {
    keyed(token.as_bytes(), body)
        .map(|mac| hex::encode(mac.finalize().into_bytes()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_tokens_signature_of_these_bytes_passes() {
        let body = br#"{"event":"webhook"}"#;
        let good = sign("tok", body);
        assert!(signed_by("tok", body, &good));
        assert!(signed_by("tok", body, &good.to_uppercase()));
        assert!(!signed_by("other", body, &good));
        assert!(!signed_by("tok", br#"{"event":"webhook" }"#, &good));
        assert!(!signed_by("tok", body, "zz"));
        assert!(!signed_by("tok", body, ""));
    }
}
