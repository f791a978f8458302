//! Reading one callback: `{"event": "message" | "delivered" | "seen" | "failed" |
//! "subscribed" | "unsubscribed" | "conversation_started" | "webhook", "timestamp", …}`.
//!
//! A callback is read whole or refused whole: a body that is not JSON, or missing a field
//! Viber documents as always there, is an error naming the field by its JSON pointer.
//! Events that carry nothing to store (`webhook`, `conversation_started`, `subscribed`,
//! unknown ones) are read as [`Callback::Nothing`], not refused, so that Viber does not
//! send them again.
//!
//! A message's provider id is its `message_token`, the same on every redelivery. A tap on
//! a keyboard or rich media key comes as the text of its `ActionBody`: it is read as that
//! payload (with the key's title as text) only when the `tracking_data` Relais sent with
//! the message lists it ([`super::send::PAYLOADS_KEY`]); otherwise it is what the person
//! typed.

use super::send::PAYLOADS_KEY;
use crate::json_node::FieldError;
use jiff::Timestamp;
use relais_core::status::MessageStatus;
use serde_json::Value;

/// Why a callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("`{0}` is missing")]
    Missing(String),
    #[error("`{pointer}`: {detail}")]
    Invalid { pointer: String, detail: String },
}

type Node<'v> = crate::json_node::Node<'v, CallbackError>;

impl FieldError for CallbackError {
    fn missing(pointer: String) -> Self {
        CallbackError::Missing(pointer)
    }
    fn invalid(pointer: String, detail: String) -> Self {
        CallbackError::Invalid { pointer, detail }
    }
}

/// What a person sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The person's Viber user id: where to answer.
    pub from: String,
    /// The `message_token`.
    pub provider_id: String,
    pub text: String,
    /// The payload of the key the person tapped.
    pub payload: Option<String>,
}

/// What one callback says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    Message(Inbound),
    /// `delivered`, `seen` or `failed` about a message the bot sent.
    Status {
        message_token: String,
        status: MessageStatus,
        at: Option<Timestamp>,
        /// `failed`'s `desc`.
        detail: Option<String>,
    },
    /// The person unsubscribed: the bot may no longer write to them.
    Unsubscribed {
        user_id: String,
        /// The callback's `timestamp`, which tells one unsubscription from the next.
        at: Option<Timestamp>,
    },
    /// Nothing to store.
    Nothing,
}

/// Reads one callback body.
pub fn parse_callback(body: &[u8]) -> Result<Callback, CallbackError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| CallbackError::NotJson(e.to_string()))?;
    let root = Node::root(&root);
    let event = root.required_string("event")?;
    let at = root
        .optional("timestamp")
        .map(|t| t.unix_millis())
        .transpose()?;
    let status = match event.as_str() {
        "message" => return read_message(&root).map(Callback::Message),
        "unsubscribed" => {
            return Ok(Callback::Unsubscribed {
                user_id: root.required("user_id")?.id()?,
                at,
            });
        }
        "delivered" => MessageStatus::Delivered,
        "seen" => MessageStatus::Read,
        "failed" => MessageStatus::Undelivered,
        _ => return Ok(Callback::Nothing),
    };
    Ok(Callback::Status {
        message_token: root.required("message_token")?.id()?,
        status,
        at,
        detail: root.optional_string("desc")?,
    })
}

fn read_message(root: &Node<'_>) -> Result<Inbound, CallbackError> {
    let provider_id = root.required("message_token")?.id()?;
    let from = root.required("sender")?.required("id")?.id()?;
    let message = root.required("message")?;
    let kind = message.required_string("type")?;
    let written = message
        .optional_string("text")?
        .filter(|t| !t.trim().is_empty());
    if kind == "text" {
        let text = written.unwrap_or_default();
        if let Some(title) = tapped_title(&message, &text)? {
            return Ok(Inbound {
                from,
                provider_id,
                text: title,
                payload: Some(text),
            });
        }
        return Ok(Inbound {
            from,
            provider_id,
            text,
            payload: None,
        });
    }
    let note = match kind.as_str() {
        "location" => {
            let location = message.required("location")?;
            let lat = location.required("lat")?.number()?;
            let lon = location.required("lon")?.number()?;
            format!("[location] {}", relais_core::content::map_link(lat, lon))
        }
        "contact" => {
            let contact = message.required("contact")?;
            let phone = contact.optional_string("phone_number")?.unwrap_or_default();
            format!("[contact] {phone}").trim_end().to_owned()
        }
        "file" => {
            let name = message.optional_string("file_name")?.unwrap_or_default();
            let media = message.optional_string("media")?.unwrap_or_default();
            join(&["[file]", &name, &media])
        }
        other => {
            // picture, video, sticker, url: Viber gives the media as a public URL.
            let media = message.optional_string("media")?.unwrap_or_default();
            join(&[&format!("[{other}]"), &media])
        }
    };
    let text = match written {
        Some(written) if kind != "url" => format!("{written}\n{note}"),
        _ => note,
    };
    Ok(Inbound {
        from,
        provider_id,
        text,
        payload: None,
    })
}

fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The title of the key whose payload is `text`, when the message's `tracking_data`
/// (Relais's, from the message the key was under) lists it.
fn tapped_title(message: &Node<'_>, text: &str) -> Result<Option<String>, CallbackError> {
    let Some(tracking) = message.optional_string("tracking_data")? else {
        return Ok(None);
    };
    // Tracking data another sender wrote is not ours to read; it is not an error.
    let Ok(tracking) = serde_json::from_str::<Value>(&tracking) else {
        return Ok(None);
    };
    Ok(tracking
        .get(PAYLOADS_KEY)
        .and_then(|payloads| payloads.get(text))
        .and_then(Value::as_str)
        .map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(callback: Value) -> Callback {
        parse_callback(callback.to_string().as_bytes()).unwrap()
    }

    fn message(fields: Value) -> Value {
        json!({"event": "message", "timestamp": 1457764197627u64, "chat_hostname": "SN-376_",
            "message_token": 4912661846655238145u64,
            "sender": {"id": "01234567890A=", "name": "Camille", "language": "fr", "api_version": 10},
            "message": fields, "silent": false})
    }

    #[test]
    fn media_messages_say_what_they_were_and_where() {
        let Callback::Message(picture) = read(message(json!({"type": "picture",
            "text": "Le colis", "media": "https://dl-media.viber.com/x.jpg"})))
        else {
            panic!()
        };
        assert_eq!(
            picture.text,
            "Le colis\n[picture] https://dl-media.viber.com/x.jpg"
        );
        assert_eq!(picture.provider_id, "4912661846655238145");
        let Callback::Message(place) = read(message(
            json!({"type": "location", "location": {"lat": 45.76, "lon": 4.83}}),
        )) else {
            panic!()
        };
        assert!(
            place.text.starts_with("[location] https://"),
            "{}",
            place.text
        );
    }

    #[test]
    fn a_typed_text_equal_to_nobodys_payload_stays_text() {
        let tracking = json!({PAYLOADS_KEY: {"RDV_AM": "Matin"}}).to_string();
        let Callback::Message(typed) = read(message(json!({"type": "text", "text": "Matin",
            "tracking_data": tracking})))
        else {
            panic!()
        };
        assert_eq!((typed.text.as_str(), typed.payload), ("Matin", None));
        let Callback::Message(foreign) = read(message(json!({"type": "text", "text": "RDV_AM",
            "tracking_data": "not json"})))
        else {
            panic!()
        };
        assert_eq!(foreign.payload, None);
    }

    #[test]
    fn other_events_carry_nothing_and_broken_ones_are_refused() {
        for event in [
            "webhook",
            "conversation_started",
            "subscribed",
            "client_status",
        ] {
            assert_eq!(
                read(json!({"event": event, "timestamp": 1, "message_token": 1})),
                Callback::Nothing
            );
        }
        assert!(matches!(
            parse_callback(b"{"),
            Err(CallbackError::NotJson(_))
        ));
        assert_eq!(
            parse_callback(br#"{"event":"delivered","timestamp":1}"#),
            Err(CallbackError::Missing("/message_token".into()))
        );
        assert_eq!(
            parse_callback(br#"{"event":"message","message_token":1,"sender":{"id":"a"}}"#),
            Err(CallbackError::Missing("/message".into()))
        );
    }
}
