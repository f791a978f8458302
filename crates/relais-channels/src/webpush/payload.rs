//! What a content becomes in a notification: the JSON the page's service worker reads in
//! its `push` event and passes to `showNotification`:
//! `{"title", "body", "icon"?, "url"?, "actions": [{"action", "title", "url"}]}`.
//!
//! - a text is the `body`, under the channel's `title`;
//! - a card gives its title, text and image (`icon`);
//! - an image gives its caption as `body` and its URL as `icon`;
//! - link buttons become `actions` (at most 2, as browsers show), the first link also
//!   being `url`, the page opened by a tap on the notification;
//! - reply buttons become `actions` too (`reply0`, with the button's `payload`), on a
//!   channel whose service worker reports clicks ([`super::report`]): the click comes
//!   back as the person's answer;
//! - a template is its rendered fallback.
//!
//! Anything else (reply or call buttons, quick replies, video, location, forms,
//! carousels) is refused: the engine degrades content for Web Push's capabilities first.

use relais_core::content::{Body, Button, Content, MediaKind};
use serde_json::{Value, json};

/// The most actions a notification shows (Chrome and Edge show 2).
pub const MAX_ACTIONS: usize = 2;

/// The JSON of a content, or why Web Push cannot carry it (reply buttons among it).
pub fn payload(content: &Content, default_title: &str) -> Result<Value, String> {
    notification(content, default_title, false)
}

/// The JSON of a content; `replies`: reply buttons become actions whose click the
/// service worker reports as the person's answer.
pub fn notification(
    content: &Content,
    default_title: &str,
    replies: bool,
) -> Result<Value, String> {
    if !content.quick_replies.is_empty() {
        return Err("Web Push notifications have no quick replies".into());
    }
    let (title, body, icon, mut buttons) = match &content.body {
        Body::Text(text) => (default_title.to_owned(), text.clone(), None, Vec::new()),
        Body::Media(media) if media.kind() == MediaKind::Image => (
            default_title.to_owned(),
            media.caption.clone().unwrap_or_default(),
            Some(media.url.clone()),
            Vec::new(),
        ),
        Body::Card(card) => {
            if card
                .media
                .as_ref()
                .is_some_and(|m| m.kind() != MediaKind::Image)
            {
                return Err("a Web Push notification shows images only".into());
            }
            (
                card.title.clone(),
                card.text.clone().unwrap_or_default(),
                card.media.as_ref().map(|m| m.url.clone()),
                card.buttons.clone(),
            )
        }
        Body::Template(template) => {
            return match &template.fallback {
                Some(fallback) => notification(fallback, default_title, replies),
                None => Err(format!(
                    "template `{}` has no rendered text; Web Push has no provider templates",
                    template.name
                )),
            };
        }
        Body::Media(_) => return Err("a Web Push notification shows images only".into()),
        Body::Carousel(_) | Body::Location(_) | Body::Form(_) => {
            return Err("Web Push carries a text, an image or a card".into());
        }
    };
    buttons.extend(content.buttons.iter().cloned());
    if buttons.len() > MAX_ACTIONS {
        return Err(format!(
            "{} buttons; a notification shows at most {MAX_ACTIONS}",
            buttons.len()
        ));
    }
    let mut actions = Vec::new();
    for (index, button) in buttons.iter().enumerate() {
        match button {
            Button::Url { title, url } => {
                actions.push(json!({"action": format!("url{index}"), "title": title, "url": url}))
            }
            Button::Reply { title, payload } if replies => actions.push(json!({
                "action": format!("reply{index}"), "title": title,
                "payload": payload.as_deref().unwrap_or(title)})),
            other => {
                return Err(format!(
                    "button `{}`: Web Push notifications carry link buttons only",
                    other.title()
                ));
            }
        }
    }
    let mut payload = json!({"title": title, "body": body, "actions": actions});
    if let Some(icon) = icon {
        payload["icon"] = json!(icon);
    }
    if let Some(url) = actions.first().and_then(|a| a.get("url")) {
        payload["url"] = url.clone();
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(value: Value) -> Content {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_text_with_links_becomes_a_notification_with_actions() {
        let c = content(json!({"text": "Your parcel arrives today",
            "buttons": [{"type": "url", "title": "Track", "url": "https://shop.example/t/1"},
                        {"type": "url", "title": "Reschedule", "url": "https://shop.example/r/1"}]}));
        assert_eq!(
            payload(&c, "Shop").unwrap(),
            json!({"title": "Shop", "body": "Your parcel arrives today",
                "url": "https://shop.example/t/1",
                "actions": [
                    {"action": "url0", "title": "Track", "url": "https://shop.example/t/1"},
                    {"action": "url1", "title": "Reschedule", "url": "https://shop.example/r/1"}]})
        );
    }

    #[test]
    fn a_card_gives_title_text_and_icon() {
        let c = content(json!({"card": {"title": "Sale", "text": "-20% today",
            "media": {"url": "https://shop.example/i.png", "mime_type": "image/png"}}}));
        assert_eq!(
            payload(&c, "").unwrap(),
            json!({"title": "Sale", "body": "-20% today", "icon": "https://shop.example/i.png", "actions": []})
        );
    }

    #[test]
    fn what_a_notification_cannot_show_is_refused() {
        for bad in [
            json!({"text": "x", "buttons": [{"type": "reply", "title": "Yes"}]}),
            json!({"text": "x", "quick_replies": ["Yes"]}),
            json!({"location": {"lat": 1.0, "lon": 2.0}}),
            json!({"media": {"url": "https://x/v.mp4", "mime_type": "video/mp4"}}),
            json!({"text": "x", "buttons": [
                {"type": "url", "title": "a", "url": "https://a"},
                {"type": "url", "title": "b", "url": "https://b"},
                {"type": "url", "title": "c", "url": "https://c"}]}),
        ] {
            assert!(payload(&content(bad.clone()), "").is_err(), "{bad}");
        }
    }
}
