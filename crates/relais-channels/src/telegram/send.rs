//! The Bot API call that sends a content: which method (`sendMessage`, `sendPhoto`,
//! `sendVideo`, `sendAudio`, `sendDocument`, `sendLocation`, `sendVenue`) and its JSON
//! body, with the keyboard the buttons and quick replies become.
//!
//! - Buttons become an inline keyboard, one button a row: a reply button is a callback
//!   button whose `callback_data` is its payload (its title when it has none), a link
//!   button a `url` button.
//! - Quick replies become a reply keyboard (`one_time_keyboard`, so it goes once one is
//!   tapped), three keys a row. A key sends its title as the person's message, so this
//!   holds only when every quick reply's payload is its title; otherwise, and when the
//!   message also has buttons (a message has one keyboard), they join the inline
//!   keyboard as callback buttons, three a row, and their payloads come back.
//! - Media goes by URL, with its caption; a location with a name and an address is a
//!   venue.
//!
//! The engine degrades content by Telegram's capabilities before it gets here. What still
//! does not fit (a payload over 64 bytes, a caption over 1024 characters, a card) is a
//! permanent `bad_content` error, never cut.

use super::errors::ErrorCode;
use crate::adapter::SendError;
use relais_core::channel::ChannelKind;
use relais_core::content::{
    Body, Button, ChannelCapabilities, Content, Location, Media, MediaKind, QuickReply, TextLimit,
};
use serde_json::{Map, Value, json};

/// `callback_data` is 1 to 64 bytes.
pub const CALLBACK_DATA_BYTES: usize = 64;
/// Captions of photos, videos, audio and documents: 0 to 1024 characters.
pub const CAPTION_CHARS: usize = 1024;
/// Keys of a quick-reply keyboard row.
const KEYS_PER_ROW: usize = 3;

/// One Bot API call: its method and its body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    pub method: &'static str,
    pub body: Value,
}

/// The call that sends `content` to chat `chat_id`.
pub fn request(chat_id: &str, content: &Content) -> Result<ApiCall, SendError> {
    let chat_id = chat_id_of(chat_id)?;
    let (method, mut body) = body_call(content)?;
    body.insert("chat_id".into(), json!(chat_id));
    if let Some(markup) = reply_markup(content)? {
        body.insert("reply_markup".into(), markup);
    }
    Ok(ApiCall {
        method,
        body: Value::Object(body),
    })
}

/// A chat id: an integer, negative for groups and channels (`-100…` for supergroups).
pub fn chat_id_of(address: &str) -> Result<i64, SendError> {
    let trimmed = address.trim();
    let digits = trimmed.strip_prefix('-').unwrap_or(trimmed);
    let shaped = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    match trimmed.parse::<i64>() {
        Ok(id) if shaped && id != 0 => Ok(id),
        _ => Err(ErrorCode::InvalidRecipient.error(format!(
            "`{address}` is not a Telegram chat id (an integer such as 123456789, or -100… for a group; the `from` of the person's messages)"
        ))),
    }
}

fn capabilities() -> &'static ChannelCapabilities {
    ChannelCapabilities::for_kind(ChannelKind::Telegram)
}

fn bad_content(reason: impl Into<String>) -> SendError {
    ErrorCode::BadContent.error(reason)
}

fn body_call(content: &Content) -> Result<(&'static str, Map<String, Value>), SendError> {
    let mut body = Map::new();
    match &content.body {
        Body::Text(text) => {
            text_fits(text)?;
            body.insert("text".into(), json!(text));
            Ok(("sendMessage", body))
        }
        Body::Media(media) => media_call(media),
        Body::Location(location) => Ok(location_call(location)),
        Body::Card(_) | Body::Carousel(_) => Err(bad_content(
            "Telegram shows no cards or carousels; they should have become media or text",
        )),
        Body::Form(_) => Err(bad_content(
            "Telegram shows no forms; the form should have become text",
        )),
        Body::Template(template) => Err(bad_content(format!(
            "Telegram has no provider templates; the stored template `{}` should have been resolved by the engine",
            template.name
        ))),
    }
}

fn text_fits(text: &str) -> Result<(), SendError> {
    if text.trim().is_empty() {
        return Err(bad_content("the text is empty"));
    }
    if let TextLimit::Characters(max) = capabilities().text_limit {
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        let len = text.chars().count();
        if len > max {
            return Err(bad_content(format!(
                "the text is {len} characters; Telegram takes at most {max}"
            )));
        }
    }
    Ok(())
}

/// The method and field a media goes by.
fn media_method(media: &Media) -> (&'static str, &'static str) {
    match media.kind() {
        MediaKind::Image => ("sendPhoto", "photo"),
        MediaKind::Video => ("sendVideo", "video"),
        MediaKind::Audio => ("sendAudio", "audio"),
        MediaKind::Document => ("sendDocument", "document"),
    }
}

fn media_call(media: &Media) -> Result<(&'static str, Map<String, Value>), SendError> {
    let (method, field) = media_method(media);
    let mut body = Map::new();
    body.insert(field.into(), json!(media.url));
    if let Some(caption) = media.caption.as_deref().filter(|c| !c.trim().is_empty()) {
        let len = caption.chars().count();
        if len > CAPTION_CHARS {
            return Err(bad_content(format!(
                "the caption is {len} characters; Telegram takes at most {CAPTION_CHARS} under a media"
            )));
        }
        body.insert("caption".into(), json!(caption));
    }
    Ok((method, body))
}

fn location_call(location: &Location) -> (&'static str, Map<String, Value>) {
    let mut body = Map::new();
    body.insert("latitude".into(), json!(location.lat));
    body.insert("longitude".into(), json!(location.lon));
    let named = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
    match (named(&location.name), named(&location.address)) {
        (Some(title), Some(address)) => {
            body.insert("title".into(), json!(title));
            body.insert("address".into(), json!(address));
            ("sendVenue", body)
        }
        _ => ("sendLocation", body),
    }
}

/// The keyboard of a content, if it has buttons or quick replies.
fn reply_markup(content: &Content) -> Result<Option<Value>, SendError> {
    let caps = capabilities();
    if content.buttons.len() > usize::from(caps.buttons.max) {
        return Err(bad_content(format!(
            "{} buttons; Telegram's inline keyboards here take at most {}",
            content.buttons.len(),
            caps.buttons.max
        )));
    }
    if content.quick_replies.len() > usize::from(caps.quick_replies_max) {
        return Err(bad_content(format!(
            "{} quick replies; at most {}",
            content.quick_replies.len(),
            caps.quick_replies_max
        )));
    }
    let replies = &content.quick_replies;
    let keys_say_payloads = replies.iter().all(|r| r.effective_payload() == r.title);
    if content.buttons.is_empty() && !replies.is_empty() && keys_say_payloads {
        let keyboard: Vec<Vec<Value>> = replies
            .chunks(KEYS_PER_ROW)
            .map(|row| row.iter().map(|r| json!({"text": r.title})).collect())
            .collect();
        return Ok(Some(
            json!({"keyboard": keyboard, "one_time_keyboard": true,
            "resize_keyboard": true}),
        ));
    }
    let mut rows: Vec<Vec<Value>> = Vec::new();
    for button in &content.buttons {
        rows.push(vec![inline_button(button)?]);
    }
    for row in replies.chunks(KEYS_PER_ROW) {
        rows.push(
            row.iter()
                .map(quick_reply_button)
                .collect::<Result<_, _>>()?,
        );
    }
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(json!({ "inline_keyboard": rows })))
}

fn inline_button(button: &Button) -> Result<Value, SendError> {
    match button {
        Button::Reply { title, payload } => {
            callback_button(title, payload.as_deref().unwrap_or(title))
        }
        Button::Url { title, url } => Ok(json!({"text": title, "url": url})),
        Button::Call { title, .. } => Err(bad_content(format!(
            "Telegram has no call buttons (`{title}`); it should have become text"
        ))),
    }
}

fn quick_reply_button(reply: &QuickReply) -> Result<Value, SendError> {
    callback_button(&reply.title, reply.effective_payload())
}

fn callback_button(title: &str, data: &str) -> Result<Value, SendError> {
    if data.is_empty() || data.len() > CALLBACK_DATA_BYTES {
        return Err(bad_content(format!(
            "the payload of `{title}` is {} bytes; Telegram's callback data takes 1 to {CALLBACK_DATA_BYTES}",
            data.len()
        )));
    }
    Ok(json!({"text": title, "callback_data": data}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use relais_core::retry::ErrorClass;

    fn content(value: Value) -> Content {
        serde_json::from_value(value).unwrap()
    }

    fn call(value: Value) -> ApiCall {
        request("123456789", &content(value)).unwrap()
    }

    fn refused(value: Value) -> SendError {
        request("123456789", &content(value)).unwrap_err()
    }

    #[test]
    fn chat_ids_are_integers_possibly_negative() {
        assert_eq!(chat_id_of("123456789"), Ok(123_456_789));
        assert_eq!(chat_id_of("-1001234567890"), Ok(-1_001_234_567_890));
        for bad in [
            "",
            "-",
            "0",
            "@channel",
            "+33612345678",
            "12a",
            "99999999999999999999",
        ] {
            let e = chat_id_of(bad).unwrap_err();
            assert_eq!(
                (e.code.as_str(), e.class),
                ("invalid_recipient", ErrorClass::Permanent),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_location_with_a_name_and_address_is_a_venue_and_otherwise_a_pin() {
        let venue = call(json!({"location": {"lat": 48.8584, "lon": 2.2945,
            "name": "Tour Eiffel", "address": "Champ de Mars"}}));
        assert_eq!(venue.method, "sendVenue");
        assert_eq!(venue.body["title"], "Tour Eiffel");
        let pin = call(json!({"location": {"lat": 48.8584, "lon": 2.2945}}));
        assert_eq!(pin.method, "sendLocation");
        assert_eq!(
            pin.body,
            json!({"chat_id": 123456789, "latitude": 48.8584, "longitude": 2.2945})
        );
    }

    #[test]
    fn video_audio_and_files_go_by_their_own_methods() {
        let of = |mime: &str| {
            call(json!({"media": {"url": "https://cdn.example/x", "mime_type": mime}})).method
        };
        assert_eq!(of("video/mp4"), "sendVideo");
        assert_eq!(of("audio/mpeg"), "sendAudio");
        assert_eq!(of("application/pdf"), "sendDocument");
        assert_eq!(of("image/png"), "sendPhoto");
    }

    #[test]
    fn quick_replies_with_their_own_payloads_become_callback_buttons() {
        let sent = call(
            json!({"text": "Créneau ?", "quick_replies": ["Matin", {"title": "Soir", "payload": "PM"}]}),
        );
        assert_eq!(
            sent.body["reply_markup"],
            json!({"inline_keyboard": [[{"text": "Matin", "callback_data": "Matin"},
                                        {"text": "Soir", "callback_data": "PM"}]]})
        );
    }

    #[test]
    fn what_telegram_cannot_carry_is_refused_not_cut() {
        for case in [
            json!({"text": "x".repeat(4097)}),
            json!({"media": {"url": "https://cdn.example/a.jpg", "mime_type": "image/jpeg", "caption": "c".repeat(1025)}}),
            json!({"card": {"title": "Sneaker"}}),
            json!({"text": "?", "buttons": [{"type": "reply", "title": "Oui", "payload": "p".repeat(65)}]}),
            json!({"text": "?", "buttons": [{"type": "call", "title": "Appeler", "phone": "+33612345678"}]}),
        ] {
            let e = refused(case.clone());
            assert_eq!(
                (e.code.as_str(), e.class),
                ("bad_content", ErrorClass::Permanent),
                "{case}"
            );
        }
        assert!(request("1", &content(json!({"text": "x".repeat(4096)}))).is_ok());
    }
}
