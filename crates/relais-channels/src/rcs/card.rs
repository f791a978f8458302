//! Rich cards: a card becomes a `standaloneCard`, two to ten cards a `carouselCard`, each
//! card's content a title, a description, a media and up to four suggestions.
//!
//! Google's limits are checked, never cut: 200 characters of title, 2000 of description,
//! 4 suggestions on a card, 2 to 10 cards in a carousel, and a card's media an image or a
//! video (a document or audio has no place in a card). A carousel of one card is sent as
//! that card, which is what it shows.

use super::send::{at_most, bad_content, content_info};
use super::suggestion;
use crate::adapter::SendError;
use relais_core::content::{Card, MediaKind};
use serde_json::{Value, json};

pub const TITLE_CHARS: usize = 200;
pub const DESCRIPTION_CHARS: usize = 2000;
pub const CARD_SUGGESTIONS: usize = 4;
pub const CAROUSEL_MIN_CARDS: usize = 2;
pub const CAROUSEL_MAX_CARDS: usize = 10;

/// `richCard` for one card: vertical, its media above the text at medium height (a
/// third of the card, which keeps the title and buttons on screen).
pub fn standalone(card: &Card) -> Result<Value, SendError> {
    Ok(json!({"standaloneCard": {
        "cardOrientation": "VERTICAL",
        "cardContent": card_content(card)?,
    }}))
}

/// `richCard` for a carousel: medium-width cards, so the next one peeks in and says
/// there is more.
pub fn carousel(cards: &[Card]) -> Result<Value, SendError> {
    match cards {
        [] => Err(bad_content("a carousel needs at least one card")),
        [only] => standalone(only),
        _ if cards.len() > CAROUSEL_MAX_CARDS => Err(bad_content(format!(
            "a carousel of {} cards does not fit RCS ({CAROUSEL_MIN_CARDS} to {CAROUSEL_MAX_CARDS}); it should have become text",
            cards.len()
        ))),
        _ => {
            let contents = cards
                .iter()
                .map(card_content)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(json!({"carouselCard": {"cardWidth": "MEDIUM", "cardContents": contents}}))
        }
    }
}

fn card_content(card: &Card) -> Result<Value, SendError> {
    if card.title.trim().is_empty() {
        return Err(bad_content("a card has an empty title"));
    }
    at_most("a card's title", &card.title, TITLE_CHARS)?;
    let mut content = json!({"title": card.title});
    if let Some(text) = &card.text {
        at_most("a card's text", text, DESCRIPTION_CHARS)?;
        content["description"] = json!(text);
    }
    if let Some(media) = &card.media {
        if !matches!(media.kind(), MediaKind::Image | MediaKind::Video) {
            return Err(bad_content(format!(
                "an RCS card shows an image or a video, not {}",
                media.mime_type
            )));
        }
        if media.caption.is_some() {
            return Err(bad_content(
                "a card's media has no caption on RCS; the card's text is its caption",
            ));
        }
        content["media"] = json!({"height": "MEDIUM", "contentInfo": content_info(media)});
    }
    if card.buttons.len() > CARD_SUGGESTIONS {
        return Err(bad_content(format!(
            "a card with {} buttons does not fit RCS (at most {CARD_SUGGESTIONS})",
            card.buttons.len()
        )));
    }
    if !card.buttons.is_empty() {
        let suggestions = card
            .buttons
            .iter()
            .map(suggestion::button)
            .collect::<Result<Vec<_>, _>>()?;
        content["suggestions"] = json!(suggestions);
    }
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(value: Value) -> Card {
        serde_json::from_value(value).unwrap()
    }

    fn sneaker(n: usize) -> Value {
        json!({"title": format!("Sneaker {n}"), "text": "89 €",
            "media": {"url": format!("https://cdn.example/s{n}.jpg"), "mime_type": "image/jpeg"},
            "buttons": [{"type": "url", "title": "Acheter", "url": format!("https://shop.example/{n}")}]})
    }

    #[test]
    fn a_card_is_a_vertical_standalone_card_with_its_media_and_buttons() {
        assert_eq!(
            standalone(&card(sneaker(1))).unwrap(),
            json!({"standaloneCard": {"cardOrientation": "VERTICAL", "cardContent": {
                "title": "Sneaker 1", "description": "89 €",
                "media": {"height": "MEDIUM", "contentInfo": {"fileUrl": "https://cdn.example/s1.jpg"}},
                "suggestions": [{"action": {"text": "Acheter", "postbackData": "Acheter",
                    "openUrlAction": {"url": "https://shop.example/1"}}}]}}})
        );
    }

    #[test]
    fn two_to_ten_cards_make_a_carousel_and_one_card_stands_alone() {
        let cards: Vec<Card> = (1..=3).map(|n| card(sneaker(n))).collect();
        let sent = carousel(&cards).unwrap();
        assert_eq!(sent["carouselCard"]["cardWidth"], "MEDIUM");
        assert_eq!(
            sent["carouselCard"]["cardContents"][2]["title"],
            "Sneaker 3"
        );
        assert!(
            carousel(&cards[..1])
                .unwrap()
                .get("standaloneCard")
                .is_some()
        );
        let eleven: Vec<Card> = (1..=11).map(|n| card(sneaker(n))).collect();
        assert_eq!(carousel(&eleven).unwrap_err().code, "bad_content");
        assert_eq!(carousel(&[]).unwrap_err().code, "bad_content");
    }

    #[test]
    fn what_a_card_cannot_carry_is_refused() {
        let mut pdf = sneaker(1);
        pdf["media"] = json!({"url": "https://cdn.example/f.pdf", "mime_type": "application/pdf"});
        let mut five = sneaker(1);
        five["buttons"] = json!(
            (1..=5)
                .map(|i| json!({"type": "reply", "title": format!("B{i}")}))
                .collect::<Vec<_>>()
        );
        let mut long = sneaker(1);
        long["title"] = json!("x".repeat(201));
        let mut captioned = sneaker(1);
        captioned["media"]["caption"] = json!("Nouveau");
        for case in [pdf, five, long, captioned] {
            let e = standalone(&card(case.clone())).unwrap_err();
            assert_eq!(e.code, "bad_content", "{case}");
        }
    }
}
