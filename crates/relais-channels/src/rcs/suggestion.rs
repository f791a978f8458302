//! Suggestions: the chips RCS shows under a message or a card. A quick reply or a reply
//! button becomes a suggested reply (`reply {text, postbackData}`), a link button an
//! action that opens it (`openUrlAction`), a call button one that dials
//! (`dialAction`), and a location an action that shows it on a map
//! (`viewLocationAction`).
//!
//! Google's limits are checked, never cut: 25 characters of text and 2048 of postback
//! data.

use super::send::bad_content;
use crate::adapter::SendError;
use relais_core::content::{Button, Location, QuickReply};
use serde_json::{Value, json};

/// Characters of a suggestion's text.
pub const TEXT_CHARS: usize = 25;
/// Characters of a suggestion's postback data.
pub const POSTBACK_CHARS: usize = 2048;

/// The text of the action that opens a shared location. Content has no field for it;
/// "Maps" reads the same in French, English, German, Italian, Dutch and Spanish.
pub const LOCATION_ACTION_TEXT: &str = "Maps";

/// The postback data of the location action (it names no choice of the user).
const LOCATION_POSTBACK: &str = "view_location";

/// A suggested reply for a quick reply.
pub fn quick_reply(reply: &QuickReply) -> Result<Value, SendError> {
    reply_suggestion(&reply.title, reply.effective_payload())
}

/// The suggestion a button becomes.
pub fn button(button: &Button) -> Result<Value, SendError> {
    match button {
        Button::Reply { title, payload } => {
            reply_suggestion(title, payload.as_deref().unwrap_or(title))
        }
        Button::Url { title, url } => action(title, title, "openUrlAction", json!({"url": url})),
        Button::Call { title, phone } => {
            if !is_e164(phone) {
                return Err(bad_content(format!(
                    "the call button `{title}` needs a phone number in international form, not `{phone}`"
                )));
            }
            action(title, title, "dialAction", json!({"phoneNumber": phone}))
        }
    }
}

/// The action that shows `location` on a map, labelled with its name when it has one.
pub fn view_location(location: &Location) -> Result<Value, SendError> {
    let mut view = json!({"latLong": {"latitude": location.lat, "longitude": location.lon}});
    if let Some(name) = &location.name {
        view["label"] = json!(name);
    }
    action(
        LOCATION_ACTION_TEXT,
        LOCATION_POSTBACK,
        "viewLocationAction",
        view,
    )
}

fn reply_suggestion(text: &str, postback: &str) -> Result<Value, SendError> {
    fits(text, postback)?;
    Ok(json!({"reply": {"text": text, "postbackData": postback}}))
}

/// An action: Google wants postback data on actions too (it comes back if the client
/// reports the tap), so it carries the action's text.
fn action(text: &str, postback: &str, kind: &str, what: Value) -> Result<Value, SendError> {
    fits(text, postback)?;
    Ok(json!({"action": {"text": text, "postbackData": postback, kind: what}}))
}

fn fits(text: &str, postback: &str) -> Result<(), SendError> {
    if text.trim().is_empty() {
        return Err(bad_content("a suggestion has an empty text"));
    }
    let len = text.chars().count();
    if len > TEXT_CHARS {
        return Err(bad_content(format!(
            "the suggestion `{text}` is {len} characters; RCS shows at most {TEXT_CHARS}"
        )));
    }
    let len = postback.chars().count();
    if postback.is_empty() || len > POSTBACK_CHARS {
        return Err(bad_content(format!(
            "the payload of `{text}` is {len} characters; RCS takes 1 to {POSTBACK_CHARS}"
        )));
    }
    Ok(())
}

/// `+` and 7 to 15 digits, the first not 0.
pub(super) fn is_e164(phone: &str) -> bool {
    phone.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(value: Value) -> Result<Value, SendError> {
        button(&serde_json::from_value(value).unwrap())
    }

    #[test]
    fn buttons_become_replies_and_actions() {
        assert_eq!(
            of(json!({"type": "reply", "title": "Oui", "payload": "CONFIRM"})).unwrap(),
            json!({"reply": {"text": "Oui", "postbackData": "CONFIRM"}})
        );
        assert_eq!(
            of(json!({"type": "reply", "title": "Non"})).unwrap(),
            json!({"reply": {"text": "Non", "postbackData": "Non"}})
        );
        assert_eq!(
            of(json!({"type": "url", "title": "Suivre", "url": "https://t.example/1"})).unwrap(),
            json!({"action": {"text": "Suivre", "postbackData": "Suivre",
                "openUrlAction": {"url": "https://t.example/1"}}})
        );
        assert_eq!(
            of(json!({"type": "call", "title": "Appeler", "phone": "+33170000000"})).unwrap(),
            json!({"action": {"text": "Appeler", "postbackData": "Appeler",
                "dialAction": {"phoneNumber": "+33170000000"}}})
        );
    }

    #[test]
    fn a_quick_reply_sends_its_payload_or_its_title_back() {
        let reply = QuickReply {
            title: "Mardi".into(),
            payload: Some("SLOT_2".into()),
        };
        assert_eq!(
            quick_reply(&reply).unwrap(),
            json!({"reply": {"text": "Mardi", "postbackData": "SLOT_2"}})
        );
    }

    #[test]
    fn a_location_opens_on_a_map_with_its_name() {
        let location = Location {
            lat: 48.8584,
            lon: 2.2945,
            name: Some("Tour Eiffel".into()),
            address: None,
        };
        assert_eq!(
            view_location(&location).unwrap()["action"]["viewLocationAction"],
            json!({"latLong": {"latitude": 48.8584, "longitude": 2.2945}, "label": "Tour Eiffel"})
        );
    }

    #[test]
    fn what_does_not_fit_is_refused_not_cut() {
        let long = of(json!({"type": "reply", "title": "A title of twenty-six chars"}));
        assert_eq!(long.unwrap_err().code, "bad_content");
        let payload = of(json!({"type": "reply", "title": "Oui", "payload": "x".repeat(2049)}));
        assert_eq!(payload.unwrap_err().code, "bad_content");
        let phone = of(json!({"type": "call", "title": "Appeler", "phone": "{{ phone }}"}));
        assert_eq!(phone.unwrap_err().code, "bad_content");
        assert!(is_e164("+33612345678") && !is_e164("0612345678") && !is_e164("+0612345"));
    }
}
