//! A call from Meta to the channel's `/hooks/{channel}` address: the subscription
//! handshake (`GET`), or a signed delivery of events (`POST`) read into the channel's
//! events. A delivery is taken whole or refused whole: unsigned, wrongly signed,
//! malformed, or with an entry about another Page or Instagram account than this
//! channel's.

use super::{MessengerConfig, Notification, parse_webhook};
use crate::configured::{
    ChannelEvent, ChannelIdentity, WebhookAnswer, WebhookError, WebhookRequest,
};
use crate::event::Confirm;
use crate::whatsapp::handshake::{self, SubscriptionRequest};
use crate::whatsapp::signature::{self, SIGNATURE_HEADER};

pub(crate) fn receive(
    identity: &ChannelIdentity,
    config: &MessengerConfig,
    request: &WebhookRequest<'_>,
) -> Result<WebhookAnswer, WebhookError> {
    if request.is_get {
        let subscription = SubscriptionRequest::from_pairs(request.query.iter().cloned());
        return handshake::answer(config.verify_token(), &subscription)
            .map(WebhookAnswer::Echo)
            .map_err(|e| WebhookError::Unauthorized(e.to_string()));
    }
    signature::verify(
        config.app_secret(),
        request.header(SIGNATURE_HEADER),
        request.body,
    )
    .map_err(|e| WebhookError::Unauthorized(e.to_string()))?;
    let entries = parse_webhook(config.platform(), request.body)
        .map_err(|e| WebhookError::Malformed(e.to_string()))?;
    if let Some(other) = entries
        .iter()
        .find(|entry| entry.account_id != config.page_id())
    {
        return Err(WebhookError::OtherAccount(format!(
            "the delivery is about {} {}, not this channel's",
            config.platform().account_label(),
            other.account_id
        )));
    }
    let mut events = Vec::new();
    for notification in entries.into_iter().flat_map(|entry| entry.notifications) {
        match notification {
            Notification::Message(message) => events.push(ChannelEvent::Inbound(
                message.to_new_inbound(&identity.tenant_id, &identity.id),
                Confirm::none(),
            )),
            Notification::Receipt(receipt) => events.extend(
                receipt
                    .to_status_reports(&identity.tenant_id, &identity.id)
                    .into_iter()
                    .map(|report| ChannelEvent::Status(report, Confirm::none())),
            ),
            // Messenger's `read` is always a watermark: it names no message.
            Notification::UpTo(watermark) => events.push(ChannelEvent::Status(
                watermark.to_status_report(
                    &identity.tenant_id,
                    &identity.id,
                    config.platform().kind(),
                ),
                Confirm::none(),
            )),
        }
    }
    Ok(WebhookAnswer::Deliver(events))
}

#[cfg(test)]
mod tests {
    use super::super::Platform;
    use super::*;
    use crate::event::MessageRef;
    use relais_core::status::MessageStatus;
    use serde_json::json;

    const PAGE: &str = "106540352242922";
    const SECRET: &str = "app-secret";

    fn config() -> MessengerConfig {
        MessengerConfig::parse(
            Platform::Messenger,
            &json!({"page_id": PAGE, "access_token": "EAAG", "app_secret": SECRET,
                "verify_token": "meatyhamhock"}),
        )
        .unwrap()
    }

    fn identity() -> ChannelIdentity {
        ChannelIdentity {
            id: "ch-fb".into(),
            tenant_id: "default".into(),
            name: "page".into(),
        }
    }

    fn post(body: &[u8], signature: Option<String>) -> Result<WebhookAnswer, WebhookError> {
        let headers: Vec<(String, String)> = signature
            .map(|value| ("x-hub-signature-256".to_owned(), value))
            .into_iter()
            .collect();
        let request = WebhookRequest {
            is_get: false,
            query: &[],
            headers: &headers,
            body,
        };
        receive(&identity(), &config(), &request)
    }

    fn signed(body: &[u8]) -> Result<WebhookAnswer, WebhookError> {
        post(body, Some(signature::sign(SECRET, body)))
    }

    fn page_delivery(page: &str) -> Vec<u8> {
        json!({"object": "page", "entry": [{"id": page, "time": 1458692752478u64, "messaging": [
            {"sender": {"id": "1254477777772919"}, "recipient": {"id": page}, "timestamp": 1458692752478u64,
             "message": {"mid": "m_IN", "text": "hello, world!"}},
            {"sender": {"id": "1254477777772919"}, "recipient": {"id": page},
             "delivery": {"mids": ["m_OUT1", "m_OUT2"], "watermark": 1458668856253u64}},
            {"sender": {"id": "1254477777772919"}, "recipient": {"id": page}, "timestamp": 1458668856463u64,
             "read": {"watermark": 1458668856253u64}}]}]})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn the_handshake_echoes_the_challenge_to_the_owner_of_the_verify_token() {
        let query = [
            ("hub.mode".to_owned(), "subscribe".to_owned()),
            ("hub.verify_token".to_owned(), "meatyhamhock".to_owned()),
            ("hub.challenge".to_owned(), "1158201444".to_owned()),
        ];
        let request = WebhookRequest {
            is_get: true,
            query: &query,
            headers: &[],
            body: b"",
        };
        assert!(matches!(
            receive(&identity(), &config(), &request),
            Ok(WebhookAnswer::Echo(challenge)) if challenge == "1158201444"
        ));
        let wrong = [
            ("hub.mode".to_owned(), "subscribe".to_owned()),
            ("hub.verify_token".to_owned(), "guess".to_owned()),
            ("hub.challenge".to_owned(), "1".to_owned()),
        ];
        let request = WebhookRequest {
            query: &wrong,
            ..request
        };
        assert!(matches!(
            receive(&identity(), &config(), &request),
            Err(WebhookError::Unauthorized(_))
        ));
    }

    #[test]
    fn a_signed_delivery_becomes_an_inbound_and_one_status_per_delivered_mid() {
        let Ok(WebhookAnswer::Deliver(events)) = signed(&page_delivery(PAGE)) else {
            panic!("the delivery should be taken")
        };
        assert_eq!(events.len(), 4, "{events:?}");
        let ChannelEvent::Inbound(inbound, _) = &events[0] else {
            panic!("an inbound first")
        };
        assert_eq!(
            (
                inbound.from.as_str(),
                inbound.to.as_str(),
                inbound.text.as_str()
            ),
            ("1254477777772919", PAGE, "hello, world!")
        );
        let ChannelEvent::Status(report, _) = &events[2] else {
            panic!("statuses after")
        };
        assert_eq!(report.status, MessageStatus::Delivered);
        assert_eq!(report.channel_id, "ch-fb");
        // The read names no message: everything sent to the customer before it was read.
        let ChannelEvent::Status(read, _) = &events[3] else {
            panic!("the read watermark last")
        };
        assert_eq!(read.status, MessageStatus::Read);
        assert_eq!(
            read.message,
            MessageRef::SentBefore {
                kind: relais_core::channel::ChannelKind::Messenger,
                recipient: "1254477777772919".into(),
                before: jiff::Timestamp::from_millisecond(1_458_668_856_253).unwrap(),
            }
        );
    }

    #[test]
    fn unsigned_wrongly_signed_or_changed_deliveries_are_refused() {
        let body = page_delivery(PAGE);
        assert!(matches!(
            post(&body, None),
            Err(WebhookError::Unauthorized(_))
        ));
        let wrong = signature::sign("another-secret", &body);
        assert!(matches!(
            post(&body, Some(wrong)),
            Err(WebhookError::Unauthorized(_))
        ));
        let mut changed = body.clone();
        changed.push(b' ');
        assert!(matches!(
            post(&changed, Some(signature::sign(SECRET, &body))),
            Err(WebhookError::Unauthorized(_))
        ));
    }

    #[test]
    fn another_pages_entry_or_a_malformed_body_is_refused_whole() {
        assert!(matches!(
            signed(&page_delivery("999999999")),
            Err(WebhookError::OtherAccount(_))
        ));
        assert!(matches!(
            signed(b"{\"object\": \"page\""),
            Err(WebhookError::Malformed(_))
        ));
        let instagram = json!({"object": "instagram", "entry": []}).to_string();
        assert!(matches!(
            signed(instagram.as_bytes()),
            Err(WebhookError::Malformed(_))
        ));
    }
}
