//! The body of `POST /v1/phones/{msisdn}/agentMessages` for a content: an
//! `AgentMessage` whose `contentMessage` holds a text, a file by URL (`contentInfo`), a
//! rich card or a carousel ([`super::card`]), with suggestions ([`super::suggestion`]).
//!
//! The engine degrades content by [`ChannelCapabilities::RCS`] before it gets here, so
//! what reaches this module should fit. This is the guard: anything RCS cannot carry as
//! it is (a caption on a file, a provider template, twelve suggestions, a text over 3072
//! characters) is a permanent `bad_content` error, never silently cut or dropped. A
//! location, which the capabilities have the engine write out as text, is still sent
//! well if it comes: its name and address (or a map link) with an action that opens it
//! on a map.
//!
//! Buttons and quick replies are both suggestions on RCS, under whatever the message is:
//! buttons first, in their order, then quick replies, at most 11 in all.
//!
//! [`ChannelCapabilities::RCS`]: relais_core::content::ChannelCapabilities::RCS

use super::card;
use super::errors::ErrorCode;
use super::suggestion;
use crate::adapter::SendError;
use relais_core::content::{Body, Content, Location, Media, map_link};
use serde_json::{Value, json};

/// Characters of a text message.
pub const TEXT_CHARS: usize = 3072;
/// Suggestions under one message.
pub const MESSAGE_SUGGESTIONS: usize = 11;

/// The `AgentMessage` that sends `content`.
pub fn request_body(content: &Content) -> Result<Value, SendError> {
    let mut suggestions = Vec::new();
    let mut message = match &content.body {
        Body::Text(text) => text_message(text)?,
        Body::Media(media) => {
            if media.caption.is_some() {
                return Err(bad_content(
                    "RCS shows no caption under a file; the caption should have become a text or a card",
                ));
            }
            json!({"contentInfo": content_info(media)})
        }
        Body::Card(one) => json!({"richCard": card::standalone(one)?}),
        Body::Carousel(cards) => json!({"richCard": card::carousel(cards)?}),
        Body::Location(location) => {
            suggestions.push(suggestion::view_location(location)?);
            text_message(&location_text(location))?
        }
        Body::Form(_) => {
            return Err(bad_content(
                "RCS shows no forms; the form should have become text",
            ));
        }
        Body::Template(template) => {
            return Err(bad_content(format!(
                "RCS has no provider templates; `{}` should have been rendered by the engine",
                template.name
            )));
        }
    };
    for button in &content.buttons {
        suggestions.push(suggestion::button(button)?);
    }
    for reply in &content.quick_replies {
        suggestions.push(suggestion::quick_reply(reply)?);
    }
    if suggestions.len() > MESSAGE_SUGGESTIONS {
        return Err(bad_content(format!(
            "{} suggestions do not fit under an RCS message (at most {MESSAGE_SUGGESTIONS}); they should have become text",
            suggestions.len()
        )));
    }
    if !suggestions.is_empty() {
        message["suggestions"] = json!(suggestions);
    }
    Ok(json!({ "contentMessage": message }))
}

/// The recipient as the RBM API names a phone: `+` and its digits. A number written
/// without `+` is taken as international.
pub fn msisdn(to: &str) -> Result<String, SendError> {
    let trimmed = to.trim();
    let number = format!("+{}", trimmed.strip_prefix('+').unwrap_or(trimmed));
    if suggestion::is_e164(&number) {
        Ok(number)
    } else {
        Err(ErrorCode::InvalidNumber.error(format!(
            "`{to}` is not a phone number in international form, such as +33612345678"
        )))
    }
}

pub(super) fn bad_content(reason: impl Into<String>) -> SendError {
    ErrorCode::BadContent.error(reason)
}

pub(super) fn at_most(what: &str, text: &str, max: usize) -> Result<(), SendError> {
    let len = text.chars().count();
    if len > max {
        Err(bad_content(format!(
            "{what} is {len} characters; RCS takes at most {max}"
        )))
    } else {
        Ok(())
    }
}

/// A file by URL, which Google fetches and caches. The content's `filename` has no
/// place here: RCS names a file by its URL.
pub(super) fn content_info(media: &Media) -> Value {
    json!({"fileUrl": media.url})
}

fn text_message(text: &str) -> Result<Value, SendError> {
    if text.trim().is_empty() {
        return Err(bad_content("the text is empty"));
    }
    at_most("the text", text, TEXT_CHARS)?;
    Ok(json!({ "text": text }))
}

/// The location's name and address, or, with neither, a map link.
fn location_text(location: &Location) -> String {
    let lines: Vec<&str> = [&location.name, &location.address]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .filter(|line| !line.trim().is_empty())
        .collect();
    if lines.is_empty() {
        map_link(location.lat, location.lon)
    } else {
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relais_core::retry::ErrorClass;

    fn body(value: Value) -> Value {
        request_body(&serde_json::from_value(value).unwrap()).unwrap()
    }

    fn refused(value: Value) -> SendError {
        request_body(&serde_json::from_value(value).unwrap()).unwrap_err()
    }

    #[test]
    fn a_text_is_a_content_message_with_its_text() {
        assert_eq!(
            body(json!({"text": "Votre colis arrive demain"})),
            json!({"contentMessage": {"text": "Votre colis arrive demain"}})
        );
    }

    #[test]
    fn buttons_then_quick_replies_become_suggestions_under_the_text() {
        let sent = body(json!({"text": "Confirmez-vous mardi 10h ?",
            "buttons": [{"type": "url", "title": "Détails", "url": "https://rdv.example/1"}],
            "quick_replies": [{"title": "Oui", "payload": "CONFIRM"}, "Non"]}));
        assert_eq!(
            sent["contentMessage"]["suggestions"],
            json!([
                {"action": {"text": "Détails", "postbackData": "Détails", "openUrlAction": {"url": "https://rdv.example/1"}}},
                {"reply": {"text": "Oui", "postbackData": "CONFIRM"}},
                {"reply": {"text": "Non", "postbackData": "Non"}}])
        );
    }

    #[test]
    fn media_goes_by_url_and_a_card_or_carousel_as_a_rich_card() {
        assert_eq!(
            body(
                json!({"media": {"url": "https://cdn.example/f.pdf", "mime_type": "application/pdf",
                "filename": "facture.pdf"}})
            ),
            json!({"contentMessage": {"contentInfo": {"fileUrl": "https://cdn.example/f.pdf"}}})
        );
        let card =
            body(json!({"card": {"title": "Sneaker", "text": "89 €"}, "quick_replies": ["Plus"]}));
        assert_eq!(
            card["contentMessage"]["richCard"]["standaloneCard"]["cardContent"]["title"],
            "Sneaker"
        );
        assert_eq!(
            card["contentMessage"]["suggestions"][0]["reply"]["text"],
            "Plus"
        );
        let carousel = body(json!({"carousel": [{"title": "A"}, {"title": "B"}]}));
        assert_eq!(
            carousel["contentMessage"]["richCard"]["carouselCard"]["cardContents"][1]["title"],
            "B"
        );
    }

    #[test]
    fn a_location_is_its_name_with_an_action_that_opens_it() {
        let sent = body(
            json!({"location": {"lat": 48.8584, "lon": 2.2945, "name": "Tour Eiffel",
            "address": "Champ de Mars, Paris"}}),
        );
        assert_eq!(
            sent["contentMessage"]["text"],
            "Tour Eiffel\nChamp de Mars, Paris"
        );
        assert_eq!(
            sent["contentMessage"]["suggestions"][0]["action"]["text"],
            suggestion::LOCATION_ACTION_TEXT
        );
        let bare = body(json!({"location": {"lat": 48.8584, "lon": 2.2945}}));
        assert_eq!(
            bare["contentMessage"]["text"],
            json!(map_link(48.8584, 2.2945))
        );
    }

    #[test]
    fn what_rcs_cannot_carry_is_refused_as_bad_content() {
        let twelve: Vec<Value> = (1..=12).map(|i| json!(format!("R{i}"))).collect();
        let cases = [
            json!({"media": {"url": "https://cdn.example/a.jpg", "mime_type": "image/jpeg", "caption": "Photo"}}),
            json!({"template": "order_shipped"}),
            json!({"text": "Choisissez", "quick_replies": twelve}),
            json!({"text": "x".repeat(3073)}),
        ];
        for case in cases {
            let e = refused(case.clone());
            assert_eq!(
                (e.code.as_str(), e.class),
                ("bad_content", ErrorClass::Permanent),
                "{case}"
            );
        }
    }

    #[test]
    fn the_recipient_is_written_as_plus_and_digits() {
        assert_eq!(msisdn("+33612345678"), Ok("+33612345678".to_owned()));
        assert_eq!(msisdn(" 33612345678 "), Ok("+33612345678".to_owned()));
        for bad in ["alice@example.com", "0612345678", "+33 6 12", ""] {
            let e = msisdn(bad).unwrap_err();
            assert_eq!(
                (e.code.as_str(), e.class),
                ("invalid_number", ErrorClass::Permanent),
                "{bad}"
            );
        }
    }
}
