//! The `send_message` body for a content: its `type` (`text`, `picture`, `file`,
//! `location`, `rich_media`), the `sender`, and the keyboard its buttons and quick
//! replies become.
//!
//! - Buttons and quick replies become a keyboard under the message: a reply button sends
//!   its payload (`ActionBody`, its title when it has none) as the person's message, a
//!   link button opens its URL (`open-url`). Buttons take a whole row, quick replies
//!   three a row.
//! - Viber gives back what a key sends as plain text. So that a tap is told from a
//!   person typing the same words, the payloads the message offers travel in its
//!   `tracking_data` (`{"relais_payloads": {payload: title}}`), which Viber hands back
//!   with the person's next message ([`super::callback`]).
//! - A card or a carousel becomes one `rich_media` message: per card an image block
//!   (3 rows), a title-and-text block, and one row per button; every card is as tall as
//!   the tallest (at most 7 rows, Viber's limit), 6 columns wide.
//! - A picture takes a caption (`text`, 768 characters at most); a file (`file`) takes
//!   none and needs its size, which the adapter asks the media's server for.
//!
//! The engine degrades content by Viber's capabilities before it gets here. What still
//! does not fit is a permanent `bad_content` error, never cut.

use super::config::ViberConfig;
use super::errors::ErrorCode;
use crate::adapter::SendError;
use relais_core::content::{Body, Button, Card, Content, Media, MediaKind, QuickReply};
use serde_json::{Map, Value, json};

/// `text` of a `text` message.
pub const TEXT_CHARS: usize = 7000;
/// `text` of a `picture` message.
pub const CAPTION_CHARS: usize = 768;
/// `tracking_data` is at most 4096 characters.
pub const TRACKING_DATA_CHARS: usize = 4096;
/// Rows of one rich media block.
pub const RICH_MEDIA_ROWS: usize = 7;
/// Cards of one rich media message.
pub const CAROUSEL_CARDS: usize = 6;
/// `file_name` of a `file` message.
const FILE_NAME_CHARS: usize = 256;
/// The `tracking_data` key Relais's payloads travel under.
pub const PAYLOADS_KEY: &str = "relais_payloads";

fn bad_content(reason: impl Into<String>) -> SendError {
    ErrorCode::BadContent.error(reason)
}

/// A Viber user id: the `sender.id` of the person's messages, such as `01234567890A=`.
pub fn receiver_of(address: &str) -> Result<&str, SendError> {
    let trimmed = address.trim();
    if trimmed.is_empty() || trimmed.len() > 256 || trimmed.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(ErrorCode::InvalidRecipient.error(format!(
            "`{address}` is not a Viber user id (such as 01234567890A=, the `sender.id` of the person's messages)"
        )));
    }
    Ok(trimmed)
}

/// The media a content sends as a `file`, whose size must be known before it goes.
pub fn file_to_size(content: &Content) -> Option<&Media> {
    match &content.body {
        Body::Media(media) if media.kind() != MediaKind::Image => Some(media),
        _ => None,
    }
}

/// The `send_message` body sending `content` to `receiver`; `file_size` is the size of
/// [`file_to_size`]'s media, when it has one.
pub fn request(
    config: &ViberConfig,
    receiver: &str,
    content: &Content,
    file_size: Option<u64>,
) -> Result<Value, SendError> {
    let receiver = receiver_of(receiver)?;
    let mut body = message_body(content, file_size)?;
    let mut payloads = Map::new();
    if let Some(Value::Object(rich)) = body.get("rich_media") {
        collect_payloads(rich, &mut payloads);
    }
    if let Some(keyboard) = keyboard(content)? {
        collect_payloads(&keyboard, &mut payloads);
        body.insert("keyboard".into(), Value::Object(keyboard));
    }
    let rich = body.contains_key("rich_media") || body.contains_key("keyboard");
    body.insert("receiver".into(), json!(receiver));
    // Rich media and keyboards need clients of API version 2 or later; plain messages
    // reach every client.
    body.insert("min_api_version".into(), json!(if rich { 2 } else { 1 }));
    let mut sender = Map::new();
    sender.insert("name".into(), json!(config.name()));
    if let Some(avatar) = config.avatar() {
        sender.insert("avatar".into(), json!(avatar));
    }
    body.insert("sender".into(), Value::Object(sender));
    if !payloads.is_empty() {
        let tracking = json!({ PAYLOADS_KEY: payloads }).to_string();
        // Without it a tap reads as typed text: worse, but the message still goes.
        if tracking.chars().count() <= TRACKING_DATA_CHARS {
            body.insert("tracking_data".into(), json!(tracking));
        }
    }
    Ok(Value::Object(body))
}

fn message_body(
    content: &Content,
    file_size: Option<u64>,
) -> Result<Map<String, Value>, SendError> {
    let mut body = Map::new();
    match &content.body {
        Body::Text(text) => {
            fits("the text", text, TEXT_CHARS)?;
            if text.trim().is_empty() {
                return Err(bad_content("the text is empty"));
            }
            body.insert("type".into(), json!("text"));
            body.insert("text".into(), json!(text));
        }
        Body::Media(media) if media.kind() == MediaKind::Image => {
            let caption = media.caption.clone().unwrap_or_default();
            fits("the caption", &caption, CAPTION_CHARS)?;
            body.insert("type".into(), json!("picture"));
            body.insert("text".into(), json!(caption));
            body.insert("media".into(), json!(media.url));
        }
        Body::Media(media) => {
            if media
                .caption
                .as_deref()
                .is_some_and(|c| !c.trim().is_empty())
            {
                return Err(bad_content(
                    "Viber shows no caption under a file; send the text in its own message",
                ));
            }
            let Some(size) = file_size else {
                return Err(ErrorCode::BadContent.error(format!(
                    "Viber needs the size of the file at {} and its server did not give it",
                    media.url
                )));
            };
            let name = media
                .filename
                .clone()
                .or_else(|| file_name_of(&media.url))
                .unwrap_or_else(|| "file".to_owned());
            fits("the file name", &name, FILE_NAME_CHARS)?;
            body.insert("type".into(), json!("file"));
            body.insert("media".into(), json!(media.url));
            body.insert("size".into(), json!(size));
            body.insert("file_name".into(), json!(name));
        }
        Body::Location(location) => {
            body.insert("type".into(), json!("location"));
            body.insert(
                "location".into(),
                json!({"lat": location.lat, "lon": location.lon}),
            );
        }
        Body::Card(card) => {
            rich_media(&mut body, std::slice::from_ref(card))?;
        }
        Body::Carousel(cards) => {
            rich_media(&mut body, cards)?;
        }
        Body::Form(_) => {
            return Err(bad_content(
                "Viber shows no forms; the form should have become text",
            ));
        }
        Body::Template(template) => {
            return Err(bad_content(format!(
                "Viber has no provider templates; the stored template `{}` should have been resolved by the engine",
                template.name
            )));
        }
    }
    Ok(body)
}

fn fits(what: &str, text: &str, max: usize) -> Result<(), SendError> {
    let len = text.chars().count();
    if len > max {
        return Err(bad_content(format!(
            "{what} is {len} characters; Viber takes at most {max}"
        )));
    }
    Ok(())
}

/// The last path segment of a URL, as the name a file is shown with.
fn file_name_of(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let name = path.rsplit('/').next()?;
    (!name.is_empty() && !path.ends_with("//")).then(|| name.to_owned())
}

/// A keyboard or rich media button.
fn action_button(button: &Button, columns: u8) -> Result<Value, SendError> {
    match button {
        Button::Reply { title, payload } => Ok(json!({"Columns": columns, "Rows": 1,
            "ActionType": "reply", "ActionBody": payload.as_deref().unwrap_or(title),
            "Text": title})),
        Button::Url { title, url } => Ok(json!({"Columns": columns, "Rows": 1,
            "ActionType": "open-url", "ActionBody": url, "Text": title})),
        Button::Call { title, .. } => Err(bad_content(format!(
            "Viber has no call buttons (`{title}`); it should have become text"
        ))),
    }
}

fn quick_reply_button(reply: &QuickReply) -> Value {
    json!({"Columns": 2, "Rows": 1, "ActionType": "reply",
        "ActionBody": reply.effective_payload(), "Text": reply.title})
}

/// The keyboard of a content, if it has buttons or quick replies.
fn keyboard(content: &Content) -> Result<Option<Map<String, Value>>, SendError> {
    if content.buttons.is_empty() && content.quick_replies.is_empty() {
        return Ok(None);
    }
    let mut buttons = Vec::new();
    for button in &content.buttons {
        buttons.push(action_button(button, 6)?);
    }
    buttons.extend(content.quick_replies.iter().map(quick_reply_button));
    let mut keyboard = Map::new();
    keyboard.insert("Type".into(), json!("keyboard"));
    keyboard.insert("DefaultHeight".into(), json!(false));
    keyboard.insert("Buttons".into(), Value::Array(buttons));
    Ok(Some(keyboard))
}

/// The `rich_media` carousel of `cards`.
fn rich_media(body: &mut Map<String, Value>, cards: &[Card]) -> Result<(), SendError> {
    if cards.is_empty() || cards.len() > CAROUSEL_CARDS {
        return Err(bad_content(format!(
            "{} cards; Viber's rich media takes 1 to {CAROUSEL_CARDS}",
            cards.len()
        )));
    }
    let image_rows = |card: &Card| if card.media.is_some() { 3 } else { 0 };
    let rows = cards
        .iter()
        .map(|card| image_rows(card) + 1 + card.buttons.len())
        .max()
        .unwrap_or(1);
    if rows > RICH_MEDIA_ROWS {
        return Err(bad_content(format!(
            "a card needs {rows} rows (3 for its image, 1 for its text, 1 a button); Viber's rich media has {RICH_MEDIA_ROWS}"
        )));
    }
    let mut buttons = Vec::new();
    for card in cards {
        if let Some(media) = &card.media {
            if media.kind() != MediaKind::Image {
                return Err(bad_content(
                    "a Viber card shows an image only; the media should have become a link",
                ));
            }
            buttons.push(json!({"Columns": 6, "Rows": 3, "ActionType": "none",
                "Image": media.url}));
        }
        let text_rows = rows - image_rows(card) - card.buttons.len();
        let text = match card.text.as_deref().filter(|t| !t.trim().is_empty()) {
            Some(text) => format!("<b>{}</b><br>{}", escape(&card.title), escape(text)),
            None => format!("<b>{}</b>", escape(&card.title)),
        };
        buttons.push(
            json!({"Columns": 6, "Rows": text_rows, "ActionType": "none",
            "Text": text, "TextHAlign": "left", "TextVAlign": "top"}),
        );
        for button in &card.buttons {
            buttons.push(action_button(button, 6)?);
        }
    }
    let alt_text: Vec<&str> = cards.iter().map(|card| card.title.as_str()).collect();
    body.insert("type".into(), json!("rich_media"));
    body.insert(
        "rich_media".into(),
        json!({"Type": "rich_media", "ButtonsGroupColumns": 6, "ButtonsGroupRows": rows,
            "BgColor": "#FFFFFF", "Buttons": buttons}),
    );
    // What clients too old for rich media show instead.
    body.insert("alt_text".into(), json!(alt_text.join(" · ")));
    Ok(())
}

/// Viber reads button text as a little HTML (`<b>`, `<br>`, `<font>`).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Every reply button's `ActionBody` → its `Text`.
fn collect_payloads(container: &Map<String, Value>, payloads: &mut Map<String, Value>) {
    let buttons = container.get("Buttons").and_then(Value::as_array);
    for button in buttons.into_iter().flatten() {
        if button.get("ActionType").and_then(Value::as_str) != Some("reply") {
            continue;
        }
        if let (Some(payload), Some(title)) = (
            button.get("ActionBody").and_then(Value::as_str),
            button.get("Text").and_then(Value::as_str),
        ) {
            payloads.insert(payload.to_owned(), json!(title));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relais_core::retry::ErrorClass;

    fn config() -> ViberConfig {
        ViberConfig::parse(&json!({"auth_token": "tok-1", "name": "Boutique",
            "avatar": "https://cdn.example/a.jpg"}))
        .unwrap()
    }

    fn content(value: Value) -> Content {
        serde_json::from_value(value).unwrap()
    }

    fn body(value: Value) -> Value {
        request(&config(), "01234567890A=", &content(value), Some(2048)).unwrap()
    }

    fn refused(value: Value) -> SendError {
        request(&config(), "01234567890A=", &content(value), None).unwrap_err()
    }

    #[test]
    fn a_text_names_the_receiver_the_sender_and_the_api_version() {
        assert_eq!(
            body(json!({"text": "Bonjour"})),
            json!({"receiver": "01234567890A=", "min_api_version": 1, "type": "text",
                "text": "Bonjour", "sender": {"name": "Boutique", "avatar": "https://cdn.example/a.jpg"}})
        );
    }

    #[test]
    fn a_file_says_its_size_and_name_and_a_location_its_coordinates() {
        let file = body(
            json!({"media": {"url": "https://cdn.example/docs/facture.pdf?v=2",
            "mime_type": "application/pdf"}}),
        );
        assert_eq!(
            (&file["type"], &file["size"], &file["file_name"]),
            (&json!("file"), &json!(2048), &json!("facture.pdf"))
        );
        let pin = body(json!({"location": {"lat": 48.8584, "lon": 2.2945}}));
        assert_eq!(pin["location"], json!({"lat": 48.8584, "lon": 2.2945}));
    }

    #[test]
    fn what_viber_cannot_carry_is_refused_not_cut() {
        for case in [
            json!({"text": "x".repeat(7001)}),
            json!({"media": {"url": "https://cdn.example/a.jpg", "mime_type": "image/jpeg", "caption": "c".repeat(769)}}),
            json!({"media": {"url": "https://cdn.example/a.pdf", "mime_type": "application/pdf"}}),
            json!({"media": {"url": "https://cdn.example/a.pdf", "mime_type": "application/pdf", "caption": "Votre facture"}}),
            json!({"text": "?", "buttons": [{"type": "call", "title": "Appeler", "phone": "+33612345678"}]}),
            json!({"card": {"title": "T", "media": {"url": "https://cdn.example/a.jpg", "mime_type": "image/jpeg"},
                "buttons": [{"type": "reply", "title": "1"}, {"type": "reply", "title": "2"},
                            {"type": "reply", "title": "3"}, {"type": "reply", "title": "4"}]}}),
        ] {
            let e = refused(case.clone());
            assert_eq!(
                (e.code.as_str(), e.class),
                ("bad_content", ErrorClass::Permanent),
                "{case}"
            );
        }
        let e = request(&config(), "a b", &content(json!({"text": "x"})), None).unwrap_err();
        assert_eq!(e.code, "invalid_recipient");
    }

    #[test]
    fn card_text_is_escaped_for_vibers_html() {
        let sent = body(json!({"card": {"title": "A<b>", "text": "x & y"}}));
        assert_eq!(
            sent["rich_media"]["Buttons"][0]["Text"],
            "<b>A&lt;b&gt;</b><br>x &amp; y"
        );
        assert_eq!(sent["rich_media"]["ButtonsGroupRows"], 1);
    }
}
