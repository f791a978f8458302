//! The FCM HTTP v1 request body for a content, and the device token check.
//!
//! A push is a notification: a text becomes its `body`; an image its `image` (with the
//! caption as `body`); a card its `title`, `body` and `image`. Relais's message id rides
//! in `data.relais_message_id` (FCM's `data` values are strings). What a notification
//! cannot carry (buttons, quick replies, other media, locations, forms, templates) is
//! refused as a permanent `bad_content` error, never cut.

use crate::adapter::SendError;
use relais_core::content::{Body, Content};
use serde_json::{Map, Value, json};

/// The longest registration token taken.
pub const MAX_TOKEN_CHARS: usize = 4096;

fn bad_content(reason: impl Into<String>) -> SendError {
    SendError::permanent("bad_content", reason)
}

/// A device's registration token: 1 to 4096 printable ASCII characters.
pub fn check_token(token: &str) -> Result<(), SendError> {
    if token.is_empty()
        || token.len() > MAX_TOKEN_CHARS
        || !token.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(SendError::permanent(
            "invalid_recipient",
            format!(
                "an FCM address is a device's registration token (1 to {MAX_TOKEN_CHARS} printable characters), not `{}`",
                super::errors::excerpt(token, 40)
            ),
        ));
    }
    Ok(())
}

/// The `notification` of a content.
pub fn notification(content: &Content) -> Result<Map<String, Value>, SendError> {
    if !content.buttons.is_empty() || !content.quick_replies.is_empty() {
        return Err(bad_content(
            "a push notification carries no buttons or quick replies",
        ));
    }
    let mut notification = Map::new();
    let mut set = |key: &str, value: &str| {
        notification.insert(key.to_owned(), json!(value));
    };
    match &content.body {
        Body::Text(text) => set("body", text),
        Body::Media(media) if media.mime_type.starts_with("image/") => {
            set("image", &media.url);
            if let Some(caption) = &media.caption {
                set("body", caption);
            }
        }
        Body::Card(card) => {
            if !card.buttons.is_empty() {
                return Err(bad_content("a push notification carries no buttons"));
            }
            set("title", &card.title);
            if let Some(text) = &card.text {
                set("body", text);
            }
            match &card.media {
                Some(media) if media.mime_type.starts_with("image/") => set("image", &media.url),
                Some(media) => {
                    return Err(bad_content(format!(
                        "a push notification shows images only, not {}",
                        media.mime_type
                    )));
                }
                None => {}
            }
        }
        Body::Media(media) => {
            return Err(bad_content(format!(
                "a push notification shows images only, not {}",
                media.mime_type
            )));
        }
        _ => {
            return Err(bad_content(
                "a push notification carries a text, an image or a card only",
            ));
        }
    }
    Ok(notification)
}

/// The whole `messages:send` body.
pub fn request_body(token: &str, message_id: &str, content: &Content) -> Result<Value, SendError> {
    check_token(token)?;
    Ok(json!({"message": {
        "token": token,
        "notification": notification(content)?,
        "data": {"relais_message_id": message_id},
        "android": {"priority": "high"},
    }}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(value: Value) -> Content {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_text_becomes_the_notification_body() {
        let body = request_body(
            "dK3x:APA91b",
            "m1",
            &content(json!({"text": "Votre colis arrive"})),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({"message": {"token": "dK3x:APA91b",
                "notification": {"body": "Votre colis arrive"},
                "data": {"relais_message_id": "m1"}, "android": {"priority": "high"}}})
        );
    }

    #[test]
    fn bad_tokens_and_content_are_refused() {
        let text = content(json!({"text": "x"}));
        assert_eq!(
            request_body("", "m", &text).unwrap_err().code,
            "invalid_recipient"
        );
        assert_eq!(
            request_body("a b", "m", &text).unwrap_err().code,
            "invalid_recipient"
        );
        assert_eq!(
            request_body(&"a".repeat(4097), "m", &text)
                .unwrap_err()
                .code,
            "invalid_recipient"
        );
        let location = content(json!({"location": {"lat": 48.8, "lon": 2.3}}));
        assert_eq!(
            request_body("t", "m", &location).unwrap_err().code,
            "bad_content"
        );
    }
}
