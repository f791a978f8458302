//! Reading one webhook delivery. Google posts in Pub/Sub's push format,
//! `{"message": {"data": base64(payload), "messageId", "publishTime"}, "subscription"}`,
//! and the payload is one JSON object: a `UserMessage` (`senderPhoneNumber`,
//! `messageId`, `sendTime`, `agentId` and one of `text`, `suggestionResponse`,
//! `location`, `userFile`), a `UserEvent` (`senderPhoneNumber`, `eventType`, `eventId`,
//! `messageId`, `agentId`) or a `ServerEvent` (the same with `phoneNumber`).
//!
//! [`read_envelope`] only takes the payload's bytes out of the envelope: the signature is
//! over those bytes ([`super::signature`]), and [`parse_payload`] reads them once it
//! passed. A payload is read whole or refused whole, its errors naming the field by its
//! JSON pointer; a message with content this channel does not read is kept as
//! [`InboundKind::Unsupported`], and an event of a type Google adds later as
//! [`EventKind::Unknown`], rather than failing the delivery.

use super::notification::{
    Event, EventKind, InboundKind, InboundMessage, Notification, SuggestionSource,
};
use super::signature::LENIENT_BASE64;
use crate::json_node::FieldError;
use base64::Engine;
use serde_json::Value;

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("{0} is not JSON: {1}")]
    NotJson(&'static str, String),
    #[error("`{0}` is not base64")]
    NotBase64(String),
    #[error("`{0}` is missing")]
    Missing(String),
    #[error("`{pointer}`: {detail}")]
    Invalid { pointer: String, detail: String },
    #[error("the payload is neither a user message nor an event")]
    Unrecognised,
}

/// A field of the payload, read with its pointer.
type Node<'v> = crate::json_node::Node<'v, WebhookError>;

impl FieldError for WebhookError {
    fn missing(pointer: String) -> Self {
        WebhookError::Missing(pointer)
    }
    fn invalid(pointer: String, detail: String) -> Self {
        WebhookError::Invalid { pointer, detail }
    }
}

/// The Pub/Sub push envelope, its payload decoded but not yet trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The decoded `message.data`: what Google signed.
    pub data: Vec<u8>,
    /// Pub/Sub's id of the push (not the RCS message's).
    pub pubsub_message_id: Option<String>,
    pub subscription: Option<String>,
}

/// Takes the payload out of a delivery's envelope.
pub fn read_envelope(body: &[u8]) -> Result<Envelope, WebhookError> {
    let root: Value = serde_json::from_slice(body)
        .map_err(|e| WebhookError::NotJson("the body", e.to_string()))?;
    read_envelope_value(&root)
}

/// [`read_envelope`] of a body already parsed as JSON.
pub fn read_envelope_value(root: &Value) -> Result<Envelope, WebhookError> {
    let root = Node::root(root);
    let message = root.required("message")?;
    let data = message.required("data")?;
    let decoded = LENIENT_BASE64
        .decode(data.string()?.trim())
        .map_err(|_| WebhookError::NotBase64(data.pointer.clone()))?;
    Ok(Envelope {
        data: decoded,
        pubsub_message_id: message.optional_string("messageId")?,
        subscription: root.optional_string("subscription")?,
    })
}

/// Reads a payload (a verified `message.data`).
pub fn parse_payload(data: &[u8]) -> Result<Notification, WebhookError> {
    let root: Value = serde_json::from_slice(data)
        .map_err(|e| WebhookError::NotJson("`message.data`", e.to_string()))?;
    let root = Node::root(&root);
    if !root.value.is_object() {
        return Err(root.invalid("must be a JSON object"));
    }
    if root.optional("eventType").is_some() {
        return read_event(&root).map(Notification::Event);
    }
    if root.optional("senderPhoneNumber").is_some() {
        return read_message(&root).map(Notification::Message);
    }
    Err(WebhookError::Unrecognised)
}

fn read_message(root: &Node<'_>) -> Result<InboundMessage, WebhookError> {
    Ok(InboundMessage {
        agent_id: root.required_string("agentId")?,
        message_id: root.required_string("messageId")?,
        from: root.required_string("senderPhoneNumber")?,
        at: root
            .optional("sendTime")
            .map(|time| time.rfc3339())
            .transpose()?,
        kind: read_kind(root)?,
    })
}

fn read_kind(root: &Node<'_>) -> Result<InboundKind, WebhookError> {
    if let Some(text) = root.optional("text") {
        return Ok(InboundKind::Text {
            text: text.string()?.to_owned(),
        });
    }
    if let Some(response) = root.optional("suggestionResponse") {
        let source = match response.optional_string("type")?.as_deref() {
            Some("REPLY") => SuggestionSource::Reply,
            Some("ACTION") => SuggestionSource::Action,
            _ => SuggestionSource::Unspecified,
        };
        return Ok(InboundKind::Suggestion {
            source,
            text: response.optional_string("text")?.unwrap_or_default(),
            postback_data: response
                .optional_string("postbackData")?
                .unwrap_or_default(),
        });
    }
    if let Some(location) = root.optional("location") {
        let coordinate = |key: &str, bound: f64| -> Result<f64, WebhookError> {
            let node = location.required(key)?;
            let value = node.number()?;
            if (-bound..=bound).contains(&value) {
                Ok(value)
            } else {
                Err(node.invalid(&format!("must lie within -{bound} and {bound}")))
            }
        };
        return Ok(InboundKind::Location {
            latitude: coordinate("latitude", 90.0)?,
            longitude: coordinate("longitude", 180.0)?,
        });
    }
    if let Some(file) = root.optional("userFile") {
        let payload = file.required("payload")?;
        return Ok(InboundKind::File {
            uri: payload.required_string("fileUri")?,
            mime_type: payload.optional_string("mimeType")?,
            name: payload.optional_string("fileName")?,
            size_bytes: payload
                .optional("fileSizeBytes")
                .map(|size| size.count())
                .transpose()?,
        });
    }
    // A content Google adds later: named by its first member we do not know.
    let known = ["senderPhoneNumber", "messageId", "sendTime", "agentId"];
    let kind = root
        .value
        .as_object()
        .and_then(|object| object.keys().find(|key| !known.contains(&key.as_str())))
        .cloned()
        .unwrap_or_else(|| "empty message".to_owned());
    Ok(InboundKind::Unsupported { kind })
}

fn read_event(root: &Node<'_>) -> Result<Event, WebhookError> {
    let kind = EventKind::from_type(root.required("eventType")?.string()?);
    // A user event names the user `senderPhoneNumber`, a server event `phoneNumber`.
    let phone = match root.optional_string("senderPhoneNumber")? {
        Some(phone) => phone,
        None => root.required_string("phoneNumber")?,
    };
    let message_id = root.optional_string("messageId")?;
    if kind.names_a_message() && message_id.is_none() {
        return Err(WebhookError::Missing("/messageId".to_owned()));
    }
    Ok(Event {
        agent_id: root.required_string("agentId")?,
        phone,
        event_id: root.optional_string("eventId")?,
        message_id,
        at: root
            .optional("sendTime")
            .map(|time| time.rfc3339())
            .transpose()?,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;

    fn parse(payload: Value) -> Result<Notification, WebhookError> {
        parse_payload(payload.to_string().as_bytes())
    }

    fn message(content: Value) -> InboundKind {
        let mut payload = json!({"senderPhoneNumber": "+33612345678", "messageId": "MxIN",
            "sendTime": "2025-06-15T10:00:00.123456Z", "agentId": "relais_agent@rbm.goog"});
        for (key, value) in content.as_object().unwrap() {
            payload[key] = value.clone();
        }
        match parse(payload) {
            Ok(Notification::Message(message)) => message.kind,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn the_envelope_gives_the_decoded_payload() {
        let body = json!({"message": {"data": STANDARD.encode(b"{\"a\":1}"),
            "messageId": "2070443601311540", "publishTime": "2021-02-26T19:13:55.749Z"},
            "subscription": "projects/rbm-relais/subscriptions/relais-sub"});
        let envelope = read_envelope(body.to_string().as_bytes()).unwrap();
        assert_eq!(envelope.data, b"{\"a\":1}");
        assert_eq!(
            envelope.pubsub_message_id.as_deref(),
            Some("2070443601311540")
        );
        assert!(matches!(
            read_envelope(b"{"),
            Err(WebhookError::NotJson(..))
        ));
        assert_eq!(
            read_envelope(br#"{"message": {}}"#),
            Err(WebhookError::Missing("/message/data".into()))
        );
        assert_eq!(
            read_envelope(br#"{"message": {"data": "%%%"}}"#),
            Err(WebhookError::NotBase64("/message/data".into()))
        );
    }

    #[test]
    fn text_suggestions_locations_and_files_are_read() {
        assert_eq!(
            message(json!({"text": "Bonjour"})),
            InboundKind::Text {
                text: "Bonjour".into()
            }
        );
        assert_eq!(
            message(
                json!({"suggestionResponse": {"postbackData": "CONFIRM", "text": "Oui", "type": "REPLY"}})
            ),
            InboundKind::Suggestion {
                source: SuggestionSource::Reply,
                text: "Oui".into(),
                postback_data: "CONFIRM".into()
            }
        );
        assert_eq!(
            message(json!({"location": {"latitude": 48.8584, "longitude": 2.2945}})),
            InboundKind::Location {
                latitude: 48.8584,
                longitude: 2.2945
            }
        );
        let file = json!({"userFile": {"thumbnail": {"mimeType": "image/jpeg", "fileUri": "https://t"},
            "payload": {"mimeType": "image/jpeg", "fileSizeBytes": "4096",
                "fileUri": "https://rcs-user-content-eu.storage.googleapis.com/abc", "fileName": "colis.jpg"}}});
        assert_eq!(
            message(file),
            InboundKind::File {
                uri: "https://rcs-user-content-eu.storage.googleapis.com/abc".into(),
                mime_type: Some("image/jpeg".into()),
                name: Some("colis.jpg".into()),
                size_bytes: Some(4096)
            }
        );
    }

    #[test]
    fn an_unknown_content_is_kept_as_unsupported() {
        assert_eq!(
            message(json!({"contactCard": {"name": "Jo"}})),
            InboundKind::Unsupported {
                kind: "contactCard".into()
            }
        );
    }

    #[test]
    fn user_and_server_events_are_read() {
        let delivered = parse(
            json!({"senderPhoneNumber": "+33612345678", "eventType": "DELIVERED",
            "eventId": "MxEV", "messageId": "0197a1b2-msg", "sendTime": "2025-06-15T10:00:01Z",
            "agentId": "relais_agent@rbm.goog"}),
        );
        let Ok(Notification::Event(event)) = delivered else {
            panic!("an event: {delivered:?}")
        };
        assert_eq!(
            (event.kind, event.message_id.as_deref()),
            (EventKind::Delivered, Some("0197a1b2-msg"))
        );
        let revoked = parse(
            json!({"phoneNumber": "+33612345678", "eventType": "TTL_EXPIRATION_REVOKED",
            "messageId": "0197a1b2-msg", "agentId": "relais_agent@rbm.goog", "eventId": "e"}),
        );
        assert!(
            matches!(&revoked, Ok(Notification::Event(e)) if e.kind == EventKind::TtlExpirationRevoked && e.phone == "+33612345678"),
            "{revoked:?}"
        );
        let typing = parse(
            json!({"senderPhoneNumber": "+33612345678", "eventType": "IS_TYPING",
            "eventId": "e", "agentId": "relais_agent@rbm.goog"}),
        );
        assert!(matches!(typing, Ok(Notification::Event(e)) if e.kind == EventKind::IsTyping));
    }

    #[test]
    fn missing_or_wrong_fields_are_named_by_pointer() {
        let no_message_id = parse(
            json!({"senderPhoneNumber": "+33612345678", "eventType": "READ",
            "agentId": "a"}),
        );
        assert_eq!(
            no_message_id,
            Err(WebhookError::Missing("/messageId".into()))
        );
        let no_agent =
            parse(json!({"senderPhoneNumber": "+33612345678", "messageId": "m", "text": "hi"}));
        assert_eq!(no_agent, Err(WebhookError::Missing("/agentId".into())));
        let bad_time = parse(
            json!({"senderPhoneNumber": "+1", "messageId": "m", "agentId": "a",
            "sendTime": "yesterday", "text": "hi"}),
        );
        assert!(
            matches!(&bad_time, Err(WebhookError::Invalid { pointer, .. }) if pointer == "/sendTime"),
            "{bad_time:?}"
        );
        let bad_place = parse(
            json!({"senderPhoneNumber": "+1", "messageId": "m", "agentId": "a",
            "location": {"latitude": 91, "longitude": 0}}),
        );
        assert!(matches!(bad_place, Err(WebhookError::Invalid { .. })));
    }

    #[test]
    fn payloads_that_are_neither_messages_nor_events_are_refused() {
        assert_eq!(
            parse(json!({"requestId": "r", "rbmEnabled": true})),
            Err(WebhookError::Unrecognised)
        );
        assert!(matches!(
            parse(json!([1])),
            Err(WebhookError::Invalid { .. })
        ));
        assert!(matches!(
            parse_payload(b"not json"),
            Err(WebhookError::NotJson(..))
        ));
    }
}
