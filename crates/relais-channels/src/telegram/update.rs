//! Reading one webhook update: `{"update_id", "message" | "callback_query" | …}`.
//!
//! An update is read whole or refused whole: a body that is not JSON, or missing a field
//! Telegram documents as always there, is an error naming the field by its JSON pointer.
//! What concerns no one here is skipped, not refused, so that Telegram does not deliver
//! it again: other update types (edits, channel posts, membership changes; the channel
//! asks for none of them in `setWebhook`), service messages without content, and taps
//! without callback data (games).
//!
//! Each inbound gets a provider id that is the same on every redelivery of its update:
//! `{chat_id}:{message_id}` for a message (Telegram numbers messages per chat) and
//! `callback:{id}` for a tap.

use crate::json_node::FieldError;
use serde_json::Value;

/// Why an update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("`{0}` is missing")]
    Missing(String),
    #[error("`{pointer}`: {detail}")]
    Invalid { pointer: String, detail: String },
}

type Node<'v> = crate::json_node::Node<'v, UpdateError>;

impl FieldError for UpdateError {
    fn missing(pointer: String) -> Self {
        UpdateError::Missing(pointer)
    }
    fn invalid(pointer: String, detail: String) -> Self {
        UpdateError::Invalid { pointer, detail }
    }
}

/// What a customer sent, as one update carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The chat to answer in: the person's id in a private chat, the group's otherwise.
    pub chat_id: String,
    /// The same on every redelivery of the update.
    pub provider_id: String,
    pub text: String,
    /// The tapped button's callback data.
    pub payload: Option<String>,
    /// The tap to answer with `answerCallbackQuery`.
    pub callback_query_id: Option<String>,
}

/// The customer's message or tap an update carries; `None` for an update that concerns
/// no one here.
pub fn parse_update(body: &[u8]) -> Result<Option<Inbound>, UpdateError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| UpdateError::NotJson(e.to_string()))?;
    let root = Node::root(&root);
    integer(&root.required("update_id")?)?;
    if let Some(message) = root.optional("message") {
        return read_message(&message);
    }
    if let Some(callback) = root.optional("callback_query") {
        return read_callback(&callback);
    }
    Ok(None)
}

fn integer(node: &Node<'_>) -> Result<i64, UpdateError> {
    node.value
        .as_i64()
        .ok_or_else(|| node.invalid("must be an integer"))
}

fn read_message(message: &Node<'_>) -> Result<Option<Inbound>, UpdateError> {
    let message_id = integer(&message.required("message_id")?)?;
    let chat_id = integer(&message.required("chat")?.required("id")?)?;
    let Some(text) = message_text(message)? else {
        return Ok(None);
    };
    Ok(Some(Inbound {
        chat_id: chat_id.to_string(),
        provider_id: format!("{chat_id}:{message_id}"),
        text,
        payload: None,
        callback_query_id: None,
    }))
}

/// The text the inbound pipeline reads: what was written (or the media's caption), then
/// a line naming what else came (`[photo]`, `[document] invoice.pdf`, `[location] <map
/// link>`). Telegram gives media as file ids that only the bot's token opens, so no link
/// to them is given. `None` for a service message (a member joined, a pinned message).
fn message_text(message: &Node<'_>) -> Result<Option<String>, UpdateError> {
    let written = match message.optional_string("text")? {
        Some(text) => Some(text),
        None => message.optional_string("caption")?,
    };
    let mut note = None;
    for kind in [
        "photo",
        "video",
        "voice",
        "audio",
        "video_note",
        "animation",
    ] {
        if message.optional(kind).is_some() {
            note = Some(format!("[{kind}]"));
        }
    }
    if let Some(document) = message.optional("document") {
        note = Some(match document.optional_string("file_name")? {
            Some(name) => format!("[document] {name}"),
            None => "[document]".to_owned(),
        });
    }
    if let Some(sticker) = message.optional("sticker") {
        note = Some(match sticker.optional_string("emoji")? {
            Some(emoji) => format!("[sticker] {emoji}"),
            None => "[sticker]".to_owned(),
        });
    }
    if let Some(location) = message.optional("location") {
        let lat = location.required("latitude")?.number()?;
        let lon = location.required("longitude")?.number()?;
        note = Some(format!(
            "[location] {}",
            relais_core::content::map_link(lat, lon)
        ));
    }
    if let Some(contact) = message.optional("contact") {
        let phone = contact.required_string("phone_number")?;
        note = Some(format!("[contact] {phone}"));
    }
    let lines: Vec<String> = written
        .into_iter()
        .filter(|text| !text.trim().is_empty())
        .chain(note)
        .collect();
    Ok((!lines.is_empty()).then(|| lines.join("\n")))
}

fn read_callback(callback: &Node<'_>) -> Result<Option<Inbound>, UpdateError> {
    let id = callback.required("id")?.id()?;
    let from = integer(&callback.required("from")?.required("id")?)?;
    let Some(data) = callback.optional_string("data")? else {
        return Ok(None);
    };
    let message = callback.optional("message");
    // A tap on a message sent in inline mode names no chat: the person's private chat
    // with the bot is where to answer.
    let chat_id = match &message {
        Some(message) => integer(&message.required("chat")?.required("id")?)?,
        None => from,
    };
    let title = message
        .as_ref()
        .and_then(|message| button_title(message.value, &data))
        .unwrap_or_else(|| data.clone());
    Ok(Some(Inbound {
        chat_id: chat_id.to_string(),
        provider_id: format!("callback:{id}"),
        text: title,
        payload: Some(data),
        callback_query_id: Some(id),
    }))
}

/// The title of the button whose callback data is `data`, in the message it was under.
fn button_title(message: &Value, data: &str) -> Option<String> {
    message
        .get("reply_markup")?
        .get("inline_keyboard")?
        .as_array()?
        .iter()
        .filter_map(Value::as_array)
        .flatten()
        .find(|button| button.get("callback_data").and_then(Value::as_str) == Some(data))
        .and_then(|button| button.get("text").and_then(Value::as_str))
        .filter(|title| !title.trim().is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(update: Value) -> Option<Inbound> {
        parse_update(update.to_string().as_bytes()).unwrap()
    }

    fn message(fields: Value) -> Value {
        let mut message = json!({"message_id": 7, "date": 1764840000,
            "from": {"id": 111, "is_bot": false, "first_name": "Camille", "language_code": "fr"},
            "chat": {"id": 111, "type": "private", "first_name": "Camille"}});
        for (key, value) in fields.as_object().unwrap() {
            message[key] = value.clone();
        }
        json!({"update_id": 10, "message": message})
    }

    #[test]
    fn a_photo_keeps_its_caption_and_says_it_was_a_photo() {
        let photo = message(json!({"caption": "Le colis abîmé",
            "photo": [{"file_id": "AgAD", "file_unique_id": "u", "width": 90, "height": 90}]}));
        assert_eq!(read(photo).unwrap().text, "Le colis abîmé\n[photo]");
        let bare = message(
            json!({"photo": [{"file_id": "AgAD", "file_unique_id": "u", "width": 9, "height": 9}]}),
        );
        assert_eq!(read(bare).unwrap().text, "[photo]");
    }

    #[test]
    fn a_document_a_location_and_a_sticker_are_described() {
        let doc = message(
            json!({"document": {"file_id": "x", "file_unique_id": "y", "file_name": "facture.pdf"}}),
        );
        assert_eq!(read(doc).unwrap().text, "[document] facture.pdf");
        let place = message(json!({"location": {"latitude": 48.8584, "longitude": 2.2945}}));
        assert!(
            read(place)
                .unwrap()
                .text
                .starts_with("[location] https://www.openstreetmap.org/")
        );
        let sticker = message(json!({"sticker": {"file_id": "x", "emoji": "👍"}}));
        assert_eq!(read(sticker).unwrap().text, "[sticker] 👍");
    }

    #[test]
    fn a_group_message_answers_in_the_group() {
        let mut update = message(json!({"text": "Bonjour"}));
        update["message"]["chat"] = json!({"id": -1001234567890i64, "type": "supergroup"});
        let inbound = read(update).unwrap();
        assert_eq!(inbound.chat_id, "-1001234567890");
        assert_eq!(inbound.provider_id, "-1001234567890:7");
    }

    #[test]
    fn other_updates_and_service_messages_are_skipped() {
        let edit = json!({"update_id": 11, "edited_message": {"message_id": 7, "date": 1,
            "chat": {"id": 111, "type": "private"}, "text": "modifié"}});
        assert_eq!(read(edit), None);
        let joined =
            message(json!({"new_chat_members": [{"id": 5, "is_bot": false, "first_name": "A"}]}));
        assert_eq!(read(joined), None);
        let game = json!({"update_id": 12, "callback_query": {"id": "9", "from": {"id": 111},
            "chat_instance": "c", "game_short_name": "g"}});
        assert_eq!(read(game), None);
    }

    #[test]
    fn broken_json_and_missing_fields_are_refused_with_their_place() {
        assert!(matches!(
            parse_update(b"{\"update_id\": "),
            Err(UpdateError::NotJson(_))
        ));
        assert_eq!(
            parse_update(json!({"message": {}}).to_string().as_bytes()),
            Err(UpdateError::Missing("/update_id".into()))
        );
        let no_chat = json!({"update_id": 1, "message": {"message_id": 1, "date": 1, "text": "x"}});
        assert_eq!(
            parse_update(no_chat.to_string().as_bytes()),
            Err(UpdateError::Missing("/message/chat".into()))
        );
    }

    #[test]
    fn a_tap_without_a_known_button_says_its_data() {
        let tap = json!({"update_id": 13, "callback_query": {"id": "4382", "from": {"id": 111},
            "chat_instance": "c", "data": "RDV_MATIN"}});
        let inbound = read(tap).unwrap();
        assert_eq!(
            (inbound.text.as_str(), inbound.chat_id.as_str()),
            ("RDV_MATIN", "111")
        );
        assert_eq!(inbound.payload.as_deref(), Some("RDV_MATIN"));
    }
}
