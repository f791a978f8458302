//! The APNs payload for a content, and the device token check.
//!
//! The notification's title, body and image are read the way the FCM channel reads them
//! ([`crate::fcm::send::notification`]): `{"aps": {"alert": {"title", "body"},
//! "sound": "default"}}`, plus Relais's message id as `relais_message_id`. An image goes
//! as `image_url` with `"mutable-content": 1`, for the app's notification service
//! extension to fetch.

use crate::adapter::SendError;
use relais_core::content::Content;
use serde_json::{Value, json};

/// A device token: 64 or more hexadecimal characters (Apple's are 32 bytes today).
pub fn check_token(token: &str) -> Result<(), SendError> {
    if token.len() < 64 || token.len() > 200 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SendError::permanent(
            "invalid_recipient",
            format!(
                "an APNs address is a device token of 64 or more hexadecimal characters, not `{}`",
                crate::fcm::errors::excerpt(token, 40)
            ),
        ));
    }
    Ok(())
}

/// The JSON payload.
pub fn payload(message_id: &str, content: &Content) -> Result<Value, SendError> {
    let notification = crate::fcm::send::notification(content)?;
    let mut alert = serde_json::Map::new();
    for key in ["title", "body"] {
        if let Some(value) = notification.get(key) {
            alert.insert(key.to_owned(), value.clone());
        }
    }
    let mut payload = json!({"aps": {"alert": alert, "sound": "default"},
        "relais_message_id": message_id});
    if let Some(image) = notification.get("image") {
        payload["aps"]["mutable-content"] = json!(1);
        payload["image_url"] = image.clone();
    }
    Ok(payload)
}
