//! A call from Google to the channel's `/hooks/{channel}` address: the verification
//! handshake (a `POST` of `clientToken` and `secret`), or a signed delivery read into the
//! channel's events. A delivery is taken whole or refused whole: unsigned, wrongly
//! signed, malformed, or for another agent than this channel's.

use super::RcsConfig;
use super::handshake::{self, Verification};
use super::notification::Notification;
use super::signature::{self, SIGNATURE_HEADER, SignatureError};
use super::webhook::{self, WebhookError as PayloadError};
use crate::configured::{
    ChannelEvent, ChannelIdentity, WebhookAnswer, WebhookError, WebhookRequest,
};
use crate::event::Confirm;

/// Why a delivery was refused; nothing of it is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0}")]
    Unsigned(#[from] SignatureError),
    #[error("{0}")]
    Malformed(#[from] PayloadError),
    /// For an agent that is not this channel's.
    #[error("the delivery is for agent `{0}`, not this channel's")]
    OtherAgent(String),
}

impl RcsConfig {
    /// Reads a delivery's body: the envelope, the `X-Goog-Signature` check of its payload
    /// (given as `signature`), the payload, and whose agent it is for.
    pub fn read_delivery(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<Notification, DeliveryError> {
        // An unsigned call is refused before its body is looked at.
        if signature.is_none() {
            return Err(SignatureError::Missing.into());
        }
        let envelope = webhook::read_envelope(body)?;
        signature::verify(self.client_token(), signature, &envelope.data)?;
        let notification = webhook::parse_payload(&envelope.data)?;
        if !self.is_own_agent(notification.agent_id()) {
            return Err(DeliveryError::OtherAgent(
                notification.agent_id().to_owned(),
            ));
        }
        Ok(notification)
    }
}

pub(crate) fn receive(
    identity: &ChannelIdentity,
    config: &RcsConfig,
    request: &WebhookRequest<'_>,
) -> Result<WebhookAnswer, WebhookError> {
    if request.is_get {
        return Err(WebhookError::Malformed(
            "Google calls RBM webhooks with POST only".to_owned(),
        ));
    }
    // The verification handshake carries no signature: it is recognised by its shape,
    // and answered only to the holder of the client token.
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(request.body)
        && let Some(call) = Verification::from_body(&body)
    {
        return handshake::answer(config.client_token(), &call)
            .map(WebhookAnswer::Echo)
            .map_err(|e| WebhookError::Unauthorized(e.to_string()));
    }
    let notification = config
        .read_delivery(request.header(SIGNATURE_HEADER), request.body)
        .map_err(|e| match e {
            DeliveryError::Unsigned(e) => WebhookError::Unauthorized(e.to_string()),
            DeliveryError::Malformed(e) => WebhookError::Malformed(e.to_string()),
            e @ DeliveryError::OtherAgent(_) => WebhookError::OtherAccount(e.to_string()),
        })?;
    let event = match notification {
        Notification::Message(message) => Some(ChannelEvent::Inbound(
            message.to_new_inbound(&identity.tenant_id, &identity.id, config.agent_id()),
            Confirm::none(),
        )),
        // An unsubscription is an opt-out. Typing, subscriptions and events Google adds
        // later change nothing: they are taken (a refusal would make Google deliver them
        // again for a week) and dropped.
        Notification::Event(event) => match event.to_consent_report(&identity.tenant_id) {
            Some(consent) => Some(ChannelEvent::Consent(consent, Confirm::none())),
            None => event
                .to_status_report(&identity.tenant_id, &identity.id)
                .map(|report| ChannelEvent::Status(report, Confirm::none())),
        },
    };
    Ok(WebhookAnswer::Deliver(event.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::super::service_account::tests::key_file;
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use relais_core::status::MessageStatus;
    use serde_json::{Value, json};

    const TOKEN: &str = "SJENCPGJESMGUFPY";

    fn config() -> RcsConfig {
        RcsConfig::parse(&json!({"agent_id": "relais_ab12cd34_agent",
            "service_account": key_file(), "client_token": TOKEN}))
        .unwrap()
    }

    fn identity() -> ChannelIdentity {
        ChannelIdentity {
            id: "ch-rcs".into(),
            tenant_id: "default".into(),
            name: "rcs".into(),
        }
    }

    fn call(
        is_get: bool,
        body: &[u8],
        signature: Option<String>,
    ) -> Result<WebhookAnswer, WebhookError> {
        let headers: Vec<(String, String)> = signature
            .map(|value| ("x-goog-signature".to_owned(), value))
            .into_iter()
            .collect();
        let request = WebhookRequest {
            is_get,
            query: &[],
            headers: &headers,
            body,
        };
        receive(&identity(), &config(), &request)
    }

    /// A delivery of `payload` as Google pushes it, and its signature under `token`.
    fn pushed(payload: &Value, token: &str) -> (Vec<u8>, String) {
        let data = payload.to_string();
        let body = json!({"message": {"data": STANDARD.encode(&data), "messageId": "2070443601311540",
            "publishTime": "2025-06-15T10:00:00.749Z"}, "subscription": "projects/rbm/subscriptions/s"});
        (
            body.to_string().into_bytes(),
            signature::sign(token, data.as_bytes()),
        )
    }

    fn text_from(agent: &str) -> Value {
        json!({"senderPhoneNumber": "+33612345678", "messageId": "MxIN", "text": "Bonjour",
            "sendTime": "2025-06-15T10:00:00Z", "agentId": agent})
    }

    fn events(answer: Result<WebhookAnswer, WebhookError>) -> Vec<ChannelEvent> {
        match answer {
            Ok(WebhookAnswer::Deliver(events)) => events,
            other => panic!("expected a delivery, got {other:?}"),
        }
    }

    #[test]
    fn the_handshake_echoes_the_secret_to_the_holder_of_the_client_token() {
        let body = json!({"clientToken": TOKEN, "secret": "1234567890"}).to_string();
        assert!(matches!(
            call(false, body.as_bytes(), None),
            Ok(WebhookAnswer::Echo(secret)) if secret == "1234567890"
        ));
        let wrong = json!({"clientToken": "GUESS", "secret": "1"}).to_string();
        assert!(matches!(
            call(false, wrong.as_bytes(), None),
            Err(WebhookError::Unauthorized(_))
        ));
        assert!(matches!(
            call(true, b"", None),
            Err(WebhookError::Malformed(_))
        ));
    }

    #[test]
    fn a_signed_message_becomes_an_inbound_to_the_agent() {
        let (body, signature) = pushed(&text_from("relais_ab12cd34_agent@rbm.goog"), TOKEN);
        let events = events(call(false, &body, Some(signature)));
        let [ChannelEvent::Inbound(inbound, _)] = events.as_slice() else {
            panic!("one inbound: {events:?}")
        };
        assert_eq!(
            (
                inbound.from.as_str(),
                inbound.to.as_str(),
                inbound.text.as_str()
            ),
            ("+33612345678", "relais_ab12cd34_agent", "Bonjour")
        );
        assert_eq!(inbound.provider_id.as_deref(), Some("MxIN"));
    }

    #[test]
    fn a_read_event_reports_on_our_message_and_typing_gives_nothing() {
        let read = json!({"senderPhoneNumber": "+33612345678", "eventType": "READ", "eventId": "e",
            "messageId": "0197a1b2-msg", "agentId": "relais_ab12cd34_agent@rbm.goog"});
        let (body, signature) = pushed(&read, TOKEN);
        let events = events(call(false, &body, Some(signature)));
        let [ChannelEvent::Status(report, _)] = events.as_slice() else {
            panic!("one status: {events:?}")
        };
        assert_eq!(report.status, MessageStatus::Read);
        assert_eq!(report.channel_id, "ch-rcs");
        let typing = json!({"senderPhoneNumber": "+33612345678", "eventType": "IS_TYPING",
            "eventId": "e", "agentId": "relais_ab12cd34_agent@rbm.goog"});
        let (body, signature) = pushed(&typing, TOKEN);
        assert!(self::events(call(false, &body, Some(signature))).is_empty());
    }

    #[test]
    fn unsigned_wrongly_signed_or_changed_deliveries_are_refused() {
        let (body, signature) = pushed(&text_from("relais_ab12cd34_agent"), TOKEN);
        assert!(matches!(
            call(false, &body, None),
            Err(WebhookError::Unauthorized(_))
        ));
        let (_, forged) = pushed(&text_from("relais_ab12cd34_agent"), "OTHERTOKEN");
        assert!(matches!(
            call(false, &body, Some(forged)),
            Err(WebhookError::Unauthorized(_))
        ));
        let (changed, _) = pushed(
            &json!({"senderPhoneNumber": "+33612345678", "messageId": "MxIN",
            "text": "Bonsoir", "agentId": "relais_ab12cd34_agent"}),
            TOKEN,
        );
        assert!(matches!(
            call(false, &changed, Some(signature)),
            Err(WebhookError::Unauthorized(_))
        ));
    }

    #[test]
    fn another_agent_or_a_malformed_body_is_refused_whole() {
        let (body, signature) = pushed(&text_from("someone_else_agent@rbm.goog"), TOKEN);
        assert!(matches!(
            call(false, &body, Some(signature)),
            Err(WebhookError::OtherAccount(_))
        ));
        let sig = signature::sign(TOKEN, b"");
        assert!(matches!(
            call(false, b"{\"message\"", Some(sig.clone())),
            Err(WebhookError::Malformed(_))
        ));
        let (body, signature) = pushed(&json!({"requestId": "r"}), TOKEN);
        assert!(matches!(
            call(false, &body, Some(signature)),
            Err(WebhookError::Malformed(_))
        ));
    }
}
