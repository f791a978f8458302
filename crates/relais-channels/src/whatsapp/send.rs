//! The body of `POST /{phone_number_id}/messages` for a content: text, media by link,
//! reply buttons, a list, a location or an approved template.
//!
//! The engine degrades content by [`ChannelCapabilities::WHATSAPP`] before it gets here,
//! so what reaches this module should fit. This is the guard: anything WhatsApp cannot
//! carry as it is (a card, a link button, four buttons with long titles, a caption on
//! audio) is a permanent `bad_content` error, never silently cut or dropped. The limits
//! are Meta's: 4096 characters of text, 1024 of caption or button-message body, 3 reply
//! buttons of 20 characters (ids up to 256), lists of 10 rows of 24 characters (ids up to
//! 200).
//!
//! [`ChannelCapabilities::WHATSAPP`]: relais_core::content::ChannelCapabilities::WHATSAPP

use super::errors::ErrorCode;
use super::template_message;
use crate::adapter::SendError;
use relais_core::content::{Body, Button, Content, Location, Media, MediaKind};
use serde_json::{Value, json};

const TEXT_CHARS: usize = 4096;
const CAPTION_CHARS: usize = 1024;
const BUTTON_BODY_CHARS: usize = 1024;
const LIST_BODY_CHARS: usize = 4096;
const REPLY_BUTTONS: usize = 3;
const BUTTON_TITLE_CHARS: usize = 20;
const BUTTON_ID_CHARS: usize = 256;
const LIST_ROWS: usize = 10;
const ROW_TITLE_CHARS: usize = 24;
const ROW_ID_CHARS: usize = 200;

/// The label of the button that opens a list. Content has no field for it; "Menu" reads
/// the same in French, English, German, Italian, Dutch and Portuguese.
pub const LIST_BUTTON_LABEL: &str = "Menu";

/// The Cloud API body that sends `content` to `to` (E.164, with or without `+`).
pub fn request_body(to: &str, content: &Content) -> Result<Value, SendError> {
    let to = recipient(to)?;
    if !content.quick_replies.is_empty() {
        return Err(bad_content(
            "WhatsApp session messages have no quick replies; they should have become reply buttons",
        ));
    }
    let (kind, payload) = match (&content.body, content.buttons.as_slice()) {
        (Body::Text(text), []) => ("text", text_payload(text)?),
        (Body::Text(text), buttons) => ("interactive", interactive(text, None, buttons)?),
        (Body::Media(media), []) => media_payload(media)?,
        (Body::Media(media), buttons) => {
            let caption = media.caption.as_deref().unwrap_or_default();
            if caption.trim().is_empty() {
                return Err(bad_content(
                    "reply buttons under a media need a caption: WhatsApp shows them under a text",
                ));
            }
            ("interactive", interactive(caption, Some(media), buttons)?)
        }
        (Body::Location(location), []) => ("location", location_payload(location)),
        (Body::Template(template), []) => ("template", template_message::payload(template)?),
        (Body::Form(_), _) => {
            return Err(bad_content(
                "WhatsApp session messages have no forms; the form should have become text",
            ));
        }
        (Body::Card(_) | Body::Carousel(_), _) => {
            return Err(bad_content(
                "WhatsApp session messages have no cards or carousels; they should have become media or text",
            ));
        }
        (Body::Location(_) | Body::Template(_), _) => {
            return Err(bad_content("buttons go only under a text or a media"));
        }
    };
    Ok(json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": kind,
        kind: payload,
    }))
}

/// The recipient's digits: WhatsApp addresses a user by their number without `+`.
fn recipient(to: &str) -> Result<String, SendError> {
    let digits = to.trim().strip_prefix('+').unwrap_or(to.trim());
    let ok = (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(digits.to_owned())
    } else {
        Err(ErrorCode::InvalidNumber.error(format!(
            "`{to}` is not a phone number in international form, such as +33612345678"
        )))
    }
}

pub(super) fn bad_content(reason: impl Into<String>) -> SendError {
    ErrorCode::BadContent.error(reason)
}

fn at_most(what: &str, text: &str, max: usize) -> Result<(), SendError> {
    let len = text.chars().count();
    if len > max {
        Err(bad_content(format!(
            "{what} is {len} characters; WhatsApp takes at most {max}"
        )))
    } else {
        Ok(())
    }
}

fn text_payload(text: &str) -> Result<Value, SendError> {
    if text.trim().is_empty() {
        return Err(bad_content("the text is empty"));
    }
    at_most("the text", text, TEXT_CHARS)?;
    // WhatsApp previews the first link of the text when asked to.
    let lower = text.to_ascii_lowercase();
    let has_link = lower.contains("https://") || lower.contains("http://");
    Ok(json!({"preview_url": has_link, "body": text}))
}

/// The media type WhatsApp files a MIME type under: WebP images go as stickers, the only
/// way WhatsApp shows them (its images are JPEG and PNG).
fn media_type(media: &Media) -> &'static str {
    let essence = media
        .mime_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "image/webp" {
        return "sticker";
    }
    match media.kind() {
        MediaKind::Image => "image",
        MediaKind::Video => "video",
        MediaKind::Audio => "audio",
        MediaKind::Document => "document",
    }
}

/// A media object by link. (The content model carries only links; uploaded media ids
/// would go in `id` instead.)
fn media_object(media: &Media, kind: &str, with_caption: bool) -> Result<Value, SendError> {
    let mut object = json!({"link": media.url});
    if with_caption && let Some(caption) = &media.caption {
        if matches!(kind, "audio" | "sticker") {
            return Err(bad_content(format!(
                "WhatsApp shows no caption on {kind}; the caption should have become a text"
            )));
        }
        at_most("the caption", caption, CAPTION_CHARS)?;
        object["caption"] = json!(caption);
    }
    if kind == "document"
        && let Some(filename) = &media.filename
    {
        object["filename"] = json!(filename);
    }
    Ok(object)
}

fn media_payload(media: &Media) -> Result<(&'static str, Value), SendError> {
    let kind = media_type(media);
    Ok((kind, media_object(media, kind, true)?))
}

fn location_payload(location: &Location) -> Value {
    let mut object = json!({"latitude": location.lat, "longitude": location.lon});
    if let Some(name) = &location.name {
        object["name"] = json!(name);
    }
    if let Some(address) = &location.address {
        object["address"] = json!(address);
    }
    object
}

/// Reply buttons (up to 3 short titles) or, for up to 10 choices, a list.
fn interactive(body: &str, header: Option<&Media>, buttons: &[Button]) -> Result<Value, SendError> {
    let mut choices = Vec::with_capacity(buttons.len());
    for button in buttons {
        match button {
            Button::Reply { title, payload } => {
                choices.push((title.as_str(), payload.as_deref().unwrap_or(title)));
            }
            Button::Url { .. } | Button::Call { .. } => {
                return Err(bad_content(
                    "link and call buttons exist on WhatsApp only in approved templates; they should have become text",
                ));
            }
        }
    }
    distinct(&choices)?;
    let fits = |max_title: usize, max_id: usize| {
        choices
            .iter()
            .all(|(title, id)| title.chars().count() <= max_title && id.chars().count() <= max_id)
    };
    if choices.len() <= REPLY_BUTTONS && fits(BUTTON_TITLE_CHARS, BUTTON_ID_CHARS) {
        at_most("the text above the buttons", body, BUTTON_BODY_CHARS)?;
        let buttons: Vec<Value> = choices
            .iter()
            .map(|(title, id)| json!({"type": "reply", "reply": {"id": id, "title": title}}))
            .collect();
        let mut message =
            json!({"type": "button", "body": {"text": body}, "action": {"buttons": buttons}});
        if let Some(media) = header {
            message["header"] = media_header(media)?;
        }
        return Ok(message);
    }
    if header.is_none() && choices.len() <= LIST_ROWS && fits(ROW_TITLE_CHARS, ROW_ID_CHARS) {
        at_most("the text above the list", body, LIST_BODY_CHARS)?;
        let rows: Vec<Value> = choices
            .iter()
            .map(|(title, id)| json!({"id": id, "title": title}))
            .collect();
        return Ok(json!({"type": "list", "body": {"text": body},
            "action": {"button": LIST_BUTTON_LABEL, "sections": [{"rows": rows}]}}));
    }
    Err(bad_content(format!(
        "{} reply buttons do not fit WhatsApp (3 of 20 characters, or a list of 10 rows of 24 without media); they should have become text",
        choices.len()
    )))
}

/// WhatsApp refuses two buttons with the same title or id.
fn distinct(choices: &[(&str, &str)]) -> Result<(), SendError> {
    for (index, (title, id)) in choices.iter().enumerate() {
        if choices[..index].iter().any(|(t, i)| t == title || i == id) {
            return Err(bad_content(format!(
                "two buttons share the title `{title}` or the payload `{id}`; WhatsApp needs them distinct"
            )));
        }
    }
    Ok(())
}

/// The media above reply buttons: an image, a video or a document.
fn media_header(media: &Media) -> Result<Value, SendError> {
    let kind = media_type(media);
    if !matches!(kind, "image" | "video" | "document") {
        return Err(bad_content(format!(
            "WhatsApp shows only an image, a video or a document above buttons, not {kind}"
        )));
    }
    // The caption is the body of the message, so the header carries the media alone.
    Ok(json!({"type": kind, kind: media_object(media, kind, false)?}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn content(value: Value) -> Content {
        serde_json::from_value(value).unwrap()
    }

    fn body(value: Value) -> Value {
        request_body("+33612345678", &content(value)).unwrap()
    }

    fn refused(value: Value) -> SendError {
        request_body("+33612345678", &content(value)).unwrap_err()
    }

    #[test]
    fn text_goes_to_the_digits_of_the_number_and_previews_links() {
        assert_eq!(
            body(json!({"text": "Bonjour"})),
            json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                   "to": "33612345678", "type": "text", "text": {"preview_url": false, "body": "Bonjour"}})
        );
        assert_eq!(
            body(json!({"text": "Suivi : HTTPS://t.example/1"}))["text"]["preview_url"],
            json!(true)
        );
    }

    #[test]
    fn a_recipient_that_is_not_a_phone_number_is_permanent() {
        for bad in ["alice@example.com", "+0612", "0612345678", ""] {
            let e = request_body(bad, &Content::text("hi")).unwrap_err();
            assert_eq!(
                (e.code.as_str(), e.class),
                ("invalid_number", relais_core::retry::ErrorClass::Permanent),
                "{bad}"
            );
        }
    }

    #[test]
    fn media_goes_by_link_with_its_caption_and_filename() {
        assert_eq!(
            body(
                json!({"media": {"url": "https://cdn.example/f.pdf", "mime_type": "application/pdf",
                "caption": "Votre facture", "filename": "facture.pdf"}})
            )["document"],
            json!({"link": "https://cdn.example/f.pdf", "caption": "Votre facture", "filename": "facture.pdf"})
        );
        let sticker = body(
            json!({"media": {"url": "https://cdn.example/s.webp", "mime_type": "image/webp"}}),
        );
        assert_eq!(sticker["type"], "sticker");
        let audio = refused(
            json!({"media": {"url": "https://cdn.example/a.ogg", "mime_type": "audio/ogg", "caption": "Écoutez"}}),
        );
        assert_eq!(audio.code, "bad_content");
    }

    #[test]
    fn up_to_three_short_reply_buttons_are_real_buttons_with_payloads_as_ids() {
        let sent = body(json!({"text": "Confirmez-vous ?", "buttons": [
            {"type": "reply", "title": "Oui", "payload": "CONFIRM"}, {"type": "reply", "title": "Non"}]}));
        assert_eq!(sent["type"], "interactive");
        assert_eq!(
            sent["interactive"],
            json!({"type": "button", "body": {"text": "Confirmez-vous ?"}, "action": {"buttons": [
                {"type": "reply", "reply": {"id": "CONFIRM", "title": "Oui"}},
                {"type": "reply", "reply": {"id": "Non", "title": "Non"}}]}})
        );
    }

    #[test]
    fn buttons_under_media_put_the_media_in_the_header_and_the_caption_in_the_body() {
        let sent = body(
            json!({"media": {"url": "https://cdn.example/s.jpg", "mime_type": "image/jpeg", "caption": "Sneaker 89 €"},
            "buttons": [{"type": "reply", "title": "Acheter", "payload": "BUY_1"}]}),
        );
        assert_eq!(
            sent["interactive"]["header"],
            json!({"type": "image", "image": {"link": "https://cdn.example/s.jpg"}})
        );
        assert_eq!(sent["interactive"]["body"]["text"], "Sneaker 89 €");
        let bare = refused(
            json!({"media": {"url": "https://cdn.example/s.jpg", "mime_type": "image/jpeg"},
            "buttons": [{"type": "reply", "title": "Acheter"}]}),
        );
        assert_eq!(bare.code, "bad_content");
    }

    #[test]
    fn four_to_ten_choices_become_a_list() {
        let slots: Vec<Value> = (1..=5).map(|i| json!({"type": "reply", "title": format!("Créneau {i}"), "payload": format!("S{i}")})).collect();
        let sent = body(json!({"text": "Choisissez", "buttons": slots}));
        let list = &sent["interactive"];
        assert_eq!(list["type"], "list");
        assert_eq!(list["action"]["button"], LIST_BUTTON_LABEL);
        assert_eq!(
            list["action"]["sections"][0]["rows"][4],
            json!({"id": "S5", "title": "Créneau 5"})
        );
    }

    #[test]
    fn what_whatsapp_cannot_carry_is_refused_as_bad_content() {
        let cases = [
            json!({"text": "Suivi", "buttons": [{"type": "url", "title": "Suivre", "url": "https://t.example/1"}]}),
            json!({"text": "Pick", "buttons": [{"type": "reply", "title": "A"}, {"type": "reply", "title": "A"}]}),
            json!({"text": "Pick", "buttons": (1..=10).map(|i| json!({"type": "reply", "title": format!("A title longer than 24 chars {i}")})).collect::<Vec<_>>()}),
            json!({"card": {"title": "Sneaker"}}),
            json!({"text": "Oui ?", "quick_replies": ["Oui"]}),
            json!({"text": "x".repeat(4097)}),
        ];
        for case in cases {
            let e = refused(case.clone());
            assert_eq!(e.code, "bad_content", "{case}");
            assert_eq!(e.class, relais_core::retry::ErrorClass::Permanent);
        }
    }

    #[test]
    fn a_location_carries_its_coordinates_name_and_address() {
        assert_eq!(
            body(
                json!({"location": {"lat": 48.8584, "lon": 2.2945, "name": "Tour Eiffel", "address": "Champ de Mars"}})
            )["location"],
            json!({"latitude": 48.8584, "longitude": 2.2945, "name": "Tour Eiffel", "address": "Champ de Mars"})
        );
    }
}
