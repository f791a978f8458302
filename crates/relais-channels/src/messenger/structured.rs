//! Meta's structured messages: the button template (a text and up to 3 buttons) and the
//! generic template (a card, or a carousel of up to 10), with their buttons.
//!
//! Limits from Meta's template references: button template text up to 640 characters;
//! element title and subtitle up to 80; button titles up to 20 (the capabilities' figure);
//! postback payloads up to 1000. A generic element needs something besides its title.
//! Instagram's buttons are links and postbacks only: no `phone_number` button there.

use super::platform::Platform;
use super::send::{PAYLOAD_CHARS, at_most, attachment_type, bad_content};
use crate::adapter::SendError;
use relais_core::content::{Button, Card, MediaKind};
use serde_json::{Value, json};

const BUTTON_TEXT_CHARS: usize = 640;
const ELEMENT_TITLE_CHARS: usize = 80;
const ELEMENT_SUBTITLE_CHARS: usize = 80;

/// `{"type": "template", "payload": {"template_type": "button", …}}`.
pub(super) fn button_template(
    platform: Platform,
    text: &str,
    buttons: &[Button],
) -> Result<Value, SendError> {
    if text.trim().is_empty() {
        return Err(bad_content("the text above the buttons is empty"));
    }
    at_most(platform, "the text above buttons", text, BUTTON_TEXT_CHARS)?;
    Ok(
        json!({"type": "template", "payload": {"template_type": "button", "text": text,
        "buttons": buttons_json(platform, buttons)?}}),
    )
}

/// `{"type": "template", "payload": {"template_type": "generic", "elements": […]}}`: one
/// element for a card, several for a carousel.
pub(super) fn generic_template(platform: Platform, cards: &[Card]) -> Result<Value, SendError> {
    let max = usize::from(platform.capabilities().carousel_max_cards);
    if cards.is_empty() || cards.len() > max {
        return Err(bad_content(format!(
            "a carousel of {} cards; {} shows 1 to {max}",
            cards.len(),
            platform.label()
        )));
    }
    let elements = cards
        .iter()
        .map(|card| element(platform, card))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({"type": "template", "payload": {"template_type": "generic", "elements": elements}}))
}

fn element(platform: Platform, card: &Card) -> Result<Value, SendError> {
    if card.title.trim().is_empty() {
        return Err(bad_content("a card's title is empty"));
    }
    at_most(platform, "a card's title", &card.title, ELEMENT_TITLE_CHARS)?;
    let mut element = json!({ "title": card.title });
    let subtitle = card.text.as_deref().filter(|text| !text.trim().is_empty());
    if let Some(subtitle) = subtitle {
        at_most(platform, "a card's text", subtitle, ELEMENT_SUBTITLE_CHARS)?;
        element["subtitle"] = json!(subtitle);
    }
    if let Some(media) = &card.media {
        if media.kind() != MediaKind::Image {
            return Err(bad_content(format!(
                "a {} card shows an image, not {}; the media should have become a link",
                platform.label(),
                attachment_type(media)
            )));
        }
        if media
            .caption
            .as_deref()
            .is_some_and(|caption| !caption.trim().is_empty())
        {
            return Err(bad_content(
                "a card's image shows no caption; the caption belongs in the card's text",
            ));
        }
        element["image_url"] = json!(media.url);
    }
    if !card.buttons.is_empty() {
        element["buttons"] = buttons_json(platform, &card.buttons)?;
    }
    if subtitle.is_none() && card.media.is_none() && card.buttons.is_empty() {
        // Meta refuses an element with a title alone.
        return Err(bad_content(format!(
            "a {} card needs a text, an image or buttons besides its title",
            platform.label()
        )));
    }
    Ok(element)
}

/// Up to 3 buttons: replies become postbacks (their payload comes back by webhook), links
/// `web_url`, calls `phone_number` (Messenger only).
fn buttons_json(platform: Platform, buttons: &[Button]) -> Result<Value, SendError> {
    let support = platform.capabilities().buttons;
    if buttons.is_empty() || buttons.len() > usize::from(support.max) {
        return Err(bad_content(format!(
            "{} buttons; {} shows 1 to {} together",
            buttons.len(),
            platform.label(),
            support.max
        )));
    }
    let mut out = Vec::with_capacity(buttons.len());
    for button in buttons {
        at_most(
            platform,
            "a button's title",
            button.title(),
            usize::from(support.max_title_chars),
        )?;
        out.push(match button {
            Button::Reply { title, payload } => {
                let payload = payload.as_deref().unwrap_or(title);
                at_most(platform, "a button's payload", payload, PAYLOAD_CHARS)?;
                json!({"type": "postback", "title": title, "payload": payload})
            }
            Button::Url { title, url } => json!({"type": "web_url", "url": url, "title": title}),
            Button::Call { title, phone } if support.call => {
                // Meta wants the number with `+` and the country code.
                let phone = phone.trim();
                if !phone.starts_with('+') {
                    return Err(bad_content(format!(
                        "the call button's number `{phone}` must start with + and the country code"
                    )));
                }
                json!({"type": "phone_number", "title": title, "payload": phone})
            }
            Button::Call { .. } => {
                return Err(bad_content(format!(
                    "{} has no call buttons; the number should have become text",
                    platform.label()
                )));
            }
        });
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::super::send::request_body;
    use super::super::tag::MessagingTag;
    use super::*;
    use relais_core::content::Content;

    fn sent(platform: Platform, value: Value) -> Result<Value, SendError> {
        let content: Content = serde_json::from_value(value).unwrap();
        request_body(
            platform,
            "1254477777772919",
            &content,
            MessagingTag::Response,
        )
        .map(|body| body["message"]["attachment"].clone())
    }

    #[test]
    fn text_with_buttons_is_a_button_template_of_postbacks_links_and_calls() {
        let attachment = sent(
            Platform::Messenger,
            json!({"text": "Que voulez-vous faire ?", "buttons": [
            {"type": "reply", "title": "Suivre", "payload": "TRACK"},
            {"type": "url", "title": "Site", "url": "https://shop.example"},
            {"type": "call", "title": "Appeler", "phone": "+33612345678"}]}),
        )
        .unwrap();
        assert_eq!(
            attachment,
            json!({"type": "template", "payload": {"template_type": "button",
                "text": "Que voulez-vous faire ?", "buttons": [
                {"type": "postback", "title": "Suivre", "payload": "TRACK"},
                {"type": "web_url", "url": "https://shop.example", "title": "Site"},
                {"type": "phone_number", "title": "Appeler", "payload": "+33612345678"}]}})
        );
    }

    #[test]
    fn instagram_has_button_templates_but_no_call_buttons() {
        let reply = json!({"text": "Confirmez ?", "buttons": [{"type": "reply", "title": "Oui"}]});
        let template = sent(Platform::Instagram, reply).unwrap();
        assert_eq!(template["payload"]["template_type"], "button");
        assert_eq!(
            template["payload"]["buttons"][0],
            json!({"type": "postback", "title": "Oui", "payload": "Oui"})
        );
        let call = json!({"text": "Appelez-nous", "buttons": [
            {"type": "call", "title": "Appeler", "phone": "+33612345678"}]});
        assert_eq!(
            sent(Platform::Instagram, call).unwrap_err().code,
            "bad_content"
        );
    }

    #[test]
    fn a_carousel_is_a_generic_template_with_one_element_per_card() {
        let cards: Vec<Value> = (1..=3)
            .map(|i| {
                json!({"title": format!("Sneaker {i}"), "text": "89 €",
                "media": {"url": format!("https://cdn.example/{i}.jpg"), "mime_type": "image/jpeg"},
                "buttons": [{"type": "reply", "title": "Acheter", "payload": format!("BUY_{i}")}]})
            })
            .collect();
        let attachment = sent(Platform::Instagram, json!({ "carousel": cards })).unwrap();
        let elements = &attachment["payload"]["elements"];
        assert_eq!(attachment["payload"]["template_type"], "generic");
        assert_eq!(elements.as_array().map(Vec::len), Some(3));
        assert_eq!(
            elements[2],
            json!({"title": "Sneaker 3", "subtitle": "89 €", "image_url": "https://cdn.example/3.jpg",
                "buttons": [{"type": "postback", "title": "Acheter", "payload": "BUY_3"}]})
        );
    }

    #[test]
    fn what_a_template_cannot_carry_is_refused_as_bad_content() {
        let cases = [
            json!({"text": "x".repeat(641), "buttons": [{"type": "reply", "title": "Oui"}]}),
            json!({"text": "Choix", "buttons": (1..=4).map(|i| json!({"type": "reply", "title": format!("B{i}")})).collect::<Vec<_>>()}),
            json!({"text": "Choix", "buttons": [{"type": "reply", "title": "Un titre de bouton trop long"}]}),
            json!({"card": {"title": "Sneaker", "text": "y".repeat(81)}}),
            json!({"card": {"title": "Seul"}}),
            json!({"card": {"title": "Clip", "media": {"url": "https://cdn.example/v.mp4", "mime_type": "video/mp4"}}}),
            json!({"card": {"title": "Photo", "media": {"url": "https://cdn.example/a.jpg", "mime_type": "image/jpeg", "caption": "Légende"}}}),
        ];
        for case in cases {
            let e = sent(Platform::Messenger, case.clone()).unwrap_err();
            assert_eq!(e.code, "bad_content", "{case}");
        }
        // Built by hand: the API's own check already stops an 11-card carousel.
        let card = |i: usize| Card {
            title: format!("C{i}"),
            text: Some("t".into()),
            media: None,
            buttons: Vec::new(),
        };
        let eleven: Vec<Card> = (1..=11).map(card).collect();
        let e = generic_template(Platform::Messenger, &eleven).unwrap_err();
        assert_eq!(e.code, "bad_content");
    }
}
