//! Reading one webhook delivery: `{"object": "page" | "instagram", "entry": [{"id",
//! "time", "messaging": [{"sender", "recipient", "timestamp", "message" | "postback" |
//! "delivery" | "read"}]}]}`.
//!
//! A delivery is read whole or refused whole: a body that is not JSON, about the other
//! platform, or missing a field Meta documents as always there is an error naming the
//! field by its JSON pointer, and nothing of it is stored (Meta delivers it again).
//! What concerns no one here is skipped, not refused: echoes of our own sends
//! (`is_echo`), messages the customer took back (`is_deleted`), other events (reactions,
//! referrals, opt-ins, handovers), `standby` events (another app owns the conversation)
//! and entries of other fields (`changes`).

use super::notification::{
    Attachment, Entry, InboundKind, InboundMessage, Notification, Receipt, ReceiptState, Watermark,
};
use super::platform::Platform;
use crate::json_node::FieldError;
use jiff::Timestamp;
use serde_json::Value;

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("`object` is `{found}`, not `{expected}`")]
    WrongObject {
        expected: &'static str,
        found: String,
    },
    #[error("`{0}` is missing")]
    Missing(String),
    #[error("`{pointer}`: {detail}")]
    Invalid { pointer: String, detail: String },
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

/// Every entry of a delivery for `platform`, with its events in the order they came.
pub fn parse_webhook(platform: Platform, body: &[u8]) -> Result<Vec<Entry>, WebhookError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::NotJson(e.to_string()))?;
    let root = Node::root(&root);
    let object = root.required("object")?.string()?;
    if object != platform.webhook_object() {
        return Err(WebhookError::WrongObject {
            expected: platform.webhook_object(),
            found: object.to_owned(),
        });
    }
    let mut entries = Vec::new();
    for entry in root.required("entry")?.items()? {
        let account_id = entry.required("id")?.id()?;
        let time = entry
            .optional("time")
            .map(|t| t.unix_millis())
            .transpose()?;
        let mut notifications = Vec::new();
        if let Some(events) = entry.optional("messaging") {
            for event in events.items()? {
                let read = read_event(platform, &account_id, time, &event)?;
                notifications.extend(read);
            }
        }
        entries.push(Entry {
            account_id,
            notifications,
        });
    }
    Ok(entries)
}

/// One `messaging[]` event, or `None` for an event that concerns no one here.
fn read_event(
    platform: Platform,
    account_id: &str,
    entry_time: Option<Timestamp>,
    event: &Node<'_>,
) -> Result<Option<Notification>, WebhookError> {
    let sender = event.required("sender")?.required("id")?.id()?;
    // A receipt's `timestamp` may be absent (Meta's delivery example has none); the
    // entry's `time` is when Meta sent it.
    let timestamp = event
        .optional("timestamp")
        .map(|t| t.unix_millis())
        .transpose()?;
    let at = || {
        timestamp
            .or(entry_time)
            .ok_or_else(|| WebhookError::Missing(format!("{}/timestamp", event.pointer)))
    };
    let inbound = |mid: String, at: Timestamp, reply_to: Option<String>, kind: InboundKind| {
        Notification::Message(InboundMessage {
            platform,
            account_id: account_id.to_owned(),
            mid,
            from: sender.clone(),
            at,
            reply_to,
            kind,
        })
    };
    if let Some(message) = event.optional("message") {
        if message.flag("is_echo")? || message.flag("is_deleted")? {
            return Ok(None);
        }
        let mid = message.required("mid")?.id()?;
        let reply_to = match message.optional("reply_to") {
            Some(reply) => reply.optional_string("mid")?,
            None => None,
        };
        return Ok(Some(inbound(
            mid,
            event.required("timestamp")?.unix_millis()?,
            reply_to,
            read_message(&message)?,
        )));
    }
    if let Some(postback) = event.optional("postback") {
        let at = event.required("timestamp")?.unix_millis()?;
        let payload = postback.required("payload")?.string()?.to_owned();
        // The inbound pipeline reads the title; a tap without one says its payload.
        let title = postback
            .optional_string("title")?
            .filter(|title| !title.trim().is_empty())
            .unwrap_or_else(|| payload.clone());
        // Older postbacks carry no `mid`; this id is the same on every redelivery, so the
        // engine still stores the tap once.
        let mid = match postback.optional("mid") {
            Some(mid) => mid.id()?,
            None => format!("postback:{sender}:{}", at.as_millisecond()),
        };
        return Ok(Some(inbound(
            mid,
            at,
            None,
            InboundKind::Postback { title, payload },
        )));
    }
    if let Some(delivery) = event.optional("delivery") {
        let watermark = delivery.required("watermark")?.unix_millis()?;
        let mut mids = Vec::new();
        if let Some(list) = delivery.optional("mids") {
            for mid in list.items()? {
                mids.push(mid.id()?);
            }
        }
        return Ok(Some(receipt(
            account_id,
            sender,
            ReceiptState::Delivered,
            mids,
            watermark,
        )));
    }
    if let Some(read) = event.optional("read") {
        // Instagram names the message it read (`messaging_seen`); Messenger gives a
        // watermark.
        if let Some(mid) = read.optional("mid") {
            return Ok(Some(receipt(
                account_id,
                sender,
                ReceiptState::Read,
                vec![mid.id()?],
                at()?,
            )));
        }
        let watermark = read.required("watermark")?.unix_millis()?;
        return Ok(Some(receipt(
            account_id,
            sender,
            ReceiptState::Read,
            Vec::new(),
            watermark,
        )));
    }
    Ok(None)
}

/// A receipt naming its messages, or a watermark when it names none.
fn receipt(
    account_id: &str,
    customer: String,
    state: ReceiptState,
    mids: Vec<String>,
    at: Timestamp,
) -> Notification {
    let account_id = account_id.to_owned();
    if mids.is_empty() {
        Notification::UpTo(Watermark {
            account_id,
            customer,
            state,
            up_to: at,
        })
    } else {
        Notification::Receipt(Receipt {
            account_id,
            customer,
            state,
            mids,
            at,
        })
    }
}

fn read_message(message: &Node<'_>) -> Result<InboundKind, WebhookError> {
    if message.flag("is_unsupported")? {
        return Ok(InboundKind::Unsupported);
    }
    let text = message.optional_string("text")?;
    if let Some(quick_reply) = message.optional("quick_reply") {
        // The tapped reply's title comes back as the message's text.
        let payload = quick_reply.required("payload")?.string()?.to_owned();
        return Ok(InboundKind::QuickReply {
            title: text
                .filter(|text| !text.trim().is_empty())
                .unwrap_or_else(|| payload.clone()),
            payload,
        });
    }
    let mut attachments = Vec::new();
    if let Some(list) = message.optional("attachments") {
        for attachment in list.items()? {
            attachments.push(read_attachment(&attachment)?);
        }
    }
    Ok(InboundKind::Message { text, attachments })
}

fn read_attachment(attachment: &Node<'_>) -> Result<Attachment, WebhookError> {
    let kind = attachment.required("type")?.string()?.to_owned();
    // Unsupported shares come as a `fallback` without a payload.
    let Some(payload) = attachment.optional("payload") else {
        return Ok(Attachment {
            kind,
            url: None,
            title: attachment.optional_string("title")?,
        });
    };
    let mut url = payload.optional_string("url")?;
    if url.is_none()
        && let Some(coordinates) = payload.optional("coordinates")
    {
        let lat = coordinates.required("lat")?.number()?;
        let long = coordinates.required("long")?.number()?;
        url = Some(relais_core::content::map_link(lat, long));
    }
    let title = match payload.optional_string("title")? {
        Some(title) => Some(title),
        None => attachment.optional_string("title")?,
    };
    Ok(Attachment { kind, url, title })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PAGE: &str = "106540352242922";
    const PSID: &str = "1254477777772919";

    fn delivery(object: &str, events: Value) -> Vec<u8> {
        json!({"object": object, "entry": [{"id": PAGE, "time": 1458692752478u64, "messaging": events}]})
            .to_string()
            .into_bytes()
    }

    fn only(platform: Platform, object: &str, event: Value) -> Option<Notification> {
        let mut entries = parse_webhook(platform, &delivery(object, json!([event]))).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].account_id, PAGE);
        entries.remove(0).notifications.pop()
    }

    fn event(member: &str, value: Value) -> Value {
        let mut event = json!({"sender": {"id": PSID}, "recipient": {"id": PAGE},
            "timestamp": 1458692752478u64});
        event[member] = value;
        event
    }

    fn kind_of(message: Value) -> InboundKind {
        match only(Platform::Messenger, "page", event("message", message)) {
            Some(Notification::Message(message)) => message.kind,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn a_shared_location_becomes_a_map_link_and_a_share_keeps_its_title() {
        let kind = kind_of(json!({"mid": "m_1", "attachments": [
            {"type": "location", "payload": {"coordinates": {"lat": 48.8584, "long": 2.2945}}},
            {"type": "fallback", "payload": {"url": "https://news.example/a", "title": "Article"}}]}));
        let InboundKind::Message { attachments, .. } = kind else {
            panic!("attachments expected")
        };
        assert_eq!(
            attachments[0].describe(),
            "[location] https://www.openstreetmap.org/?mlat=48.85840&mlon=2.29450#map=17/48.85840/2.29450"
        );
        assert_eq!(
            attachments[1].describe(),
            "[fallback] Article https://news.example/a"
        );
    }

    #[test]
    fn echoes_deleted_messages_and_other_events_are_skipped() {
        let echo = event(
            "message",
            json!({"is_echo": true, "app_id": 1517776481860111u64, "mid": "m_OUT", "text": "hi"}),
        );
        let deleted = event("message", json!({"mid": "m_X", "is_deleted": true}));
        let reaction = event(
            "reaction",
            json!({"mid": "m_OUT", "action": "react", "reaction": "love"}),
        );
        for skipped in [echo, deleted, reaction] {
            assert_eq!(
                only(Platform::Messenger, "page", skipped.clone()),
                None,
                "{skipped}"
            );
        }
    }

    #[test]
    fn an_unsupported_instagram_message_is_kept() {
        let unsupported = event("message", json!({"mid": "aWdf", "is_unsupported": true}));
        let Some(Notification::Message(message)) =
            only(Platform::Instagram, "instagram", unsupported)
        else {
            panic!("a message expected")
        };
        assert_eq!(message.kind, InboundKind::Unsupported);
    }

    #[test]
    fn a_postback_without_mid_gets_an_id_stable_across_redeliveries() {
        let tap = event(
            "postback",
            json!({"title": "Get Started", "payload": "GET_STARTED"}),
        );
        let Some(Notification::Message(message)) = only(Platform::Messenger, "page", tap) else {
            panic!("a message expected")
        };
        assert_eq!(message.mid, format!("postback:{PSID}:1458692752478"));
        let untitled = event("postback", json!({"payload": "MENU_HOURS", "mid": "m_P"}));
        let Some(Notification::Message(message)) = only(Platform::Messenger, "page", untitled)
        else {
            panic!("a message expected")
        };
        assert_eq!(
            message.text(),
            "MENU_HOURS",
            "a tap without a title says its payload"
        );
    }

    #[test]
    fn a_delivery_without_mids_and_a_read_watermark_are_watermarks() {
        let delivery = json!({"sender": {"id": PSID}, "recipient": {"id": PAGE},
            "delivery": {"watermark": 1458668856253u64}});
        let Some(Notification::UpTo(up_to)) = only(Platform::Messenger, "page", delivery) else {
            panic!("a watermark expected")
        };
        assert_eq!(up_to.state, ReceiptState::Delivered);
        let read = event("read", json!({"watermark": 1458668856253u64}));
        let Some(Notification::UpTo(up_to)) = only(Platform::Messenger, "page", read) else {
            panic!("a watermark expected")
        };
        assert_eq!(
            (up_to.state, up_to.up_to.as_millisecond()),
            (ReceiptState::Read, 1_458_668_856_253)
        );
    }

    #[test]
    fn an_instagram_read_names_its_message() {
        let seen = event("read", json!({"mid": "aWdfZAG1faXRlbToxOklH"}));
        let Some(Notification::Receipt(receipt)) = only(Platform::Instagram, "instagram", seen)
        else {
            panic!("a receipt expected")
        };
        assert_eq!(receipt.mids, ["aWdfZAG1faXRlbToxOklH"]);
        assert_eq!(receipt.state, ReceiptState::Read);
    }

    #[test]
    fn the_other_platforms_object_and_missing_fields_are_refused() {
        assert_eq!(
            parse_webhook(Platform::Instagram, &delivery("page", json!([]))),
            Err(WebhookError::WrongObject {
                expected: "instagram",
                found: "page".into()
            })
        );
        let no_sender = json!([{"recipient": {"id": PAGE}, "timestamp": 1, "message": {"mid": "m", "text": "hi"}}]);
        assert_eq!(
            parse_webhook(Platform::Messenger, &delivery("page", no_sender)),
            Err(WebhookError::Missing("/entry/0/messaging/0/sender".into()))
        );
        let no_mid = json!([event("message", json!({"text": "hi"}))]);
        assert_eq!(
            parse_webhook(Platform::Messenger, &delivery("page", no_mid)),
            Err(WebhookError::Missing(
                "/entry/0/messaging/0/message/mid".into()
            ))
        );
    }

    #[test]
    fn standby_events_and_entries_of_other_fields_carry_nothing() {
        let body = json!({"object": "page", "entry": [
            {"id": PAGE, "time": 1570053170926u64, "standby": [event("message", json!({"mid": "m", "text": "hi"}))]},
            {"id": PAGE, "time": 1570053170926u64, "changes": [{"field": "feed", "value": {}}]}]});
        let entries = parse_webhook(Platform::Messenger, body.to_string().as_bytes()).unwrap();
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().all(|entry| entry.notifications.is_empty()));
    }
}
