//! The body of `POST /me/messages` for a content: text, quick replies, a media attachment
//! by URL, a button template, a generic template (a card or a carousel), or a location
//! written out as text with a map link.
//!
//! The engine degrades content by the platform's capabilities before it gets here, so what
//! reaches this module should fit. This is the guard: anything the platform cannot carry
//! as it is (a caption on an attachment, buttons under a media, a call button or a file
//! on Instagram, a subtitle over 80 characters) is a permanent `bad_content` error, never
//! silently cut or dropped. The limits the capabilities hold (text length, quick replies,
//! buttons, carousel size, media kinds) are read from them; the ones only Meta's templates
//! have are in [`super::structured`].

use super::errors::ErrorCode;
use super::platform::Platform;
use super::structured;
use super::tag::MessagingTag;
use crate::adapter::SendError;
use relais_core::content::{Body, Content, Location, Media, MediaKind, QuickReply, TextLimit};
use serde_json::{Map, Value, json};

/// Quick reply titles: Meta cuts longer ones, and we never cut.
const QUICK_REPLY_TITLE_CHARS: usize = 20;
/// Quick reply and postback payloads.
pub(super) const PAYLOAD_CHARS: usize = 1000;
/// Longer ids are no page- or Instagram-scoped id (they run to about 17 digits today).
const RECIPIENT_DIGITS: usize = 32;

/// The Send API body that sends `content` to `recipient` (a PSID or an IGSID) with the
/// messaging type `tag`.
pub fn request_body(
    platform: Platform,
    recipient: &str,
    content: &Content,
    tag: MessagingTag,
) -> Result<Value, SendError> {
    let recipient = recipient_id(recipient)?;
    let mut message = message(platform, content)?;
    if !content.quick_replies.is_empty() {
        // Instagram documents quick replies under a text only; Messenger under anything.
        let under_text = message.contains_key("text");
        if platform == Platform::Instagram && !under_text {
            return Err(bad_content(
                "Instagram shows quick replies only under a text; they should have become buttons or text",
            ));
        }
        message.insert(
            "quick_replies".into(),
            quick_replies(platform, &content.quick_replies)?,
        );
    }
    let mut body = Map::new();
    body.insert("recipient".into(), json!({ "id": recipient }));
    tag.write_into(&mut body);
    body.insert("message".into(), Value::Object(message));
    Ok(Value::Object(body))
}

/// The `message` object, without its quick replies.
fn message(platform: Platform, content: &Content) -> Result<Map<String, Value>, SendError> {
    let attachment = |attachment: Value| {
        let mut message = Map::new();
        message.insert("attachment".into(), attachment);
        message
    };
    let text = |text: String| -> Result<Map<String, Value>, SendError> {
        text_fits(platform, &text)?;
        let mut message = Map::new();
        message.insert("text".into(), json!(text));
        Ok(message)
    };
    match (&content.body, content.buttons.as_slice()) {
        (Body::Text(body), []) => text(body.clone()),
        (Body::Text(body), buttons) => Ok(attachment(structured::button_template(
            platform, body, buttons,
        )?)),
        (Body::Media(media), []) => Ok(attachment(media_attachment(platform, media)?)),
        (Body::Media(_), _) => Err(bad_content(format!(
            "{} shows buttons under a text or in a card, not under a media; they should have become a card or text",
            platform.label()
        ))),
        (Body::Card(card), []) => Ok(attachment(structured::generic_template(
            platform,
            std::slice::from_ref(card),
        )?)),
        (Body::Carousel(cards), []) => {
            Ok(attachment(structured::generic_template(platform, cards)?))
        }
        // Neither platform sends a location; the text carries it as the engine would.
        (Body::Location(location), []) => text(location_text(location)),
        (Body::Template(template), _) => Err(bad_content(format!(
            "{} has no provider templates; the stored template `{}` should have been resolved by the engine",
            platform.label(),
            template.name
        ))),
        (Body::Form(_), _) => Err(bad_content(format!(
            "{} shows no forms; the form should have become text",
            platform.label()
        ))),
        (Body::Card(_) | Body::Carousel(_) | Body::Location(_), _) => Err(bad_content(
            "buttons go only under a text or a media (a card carries its own)",
        )),
    }
}

/// The recipient's page-scoped (Messenger) or Instagram-scoped id: digits only.
fn recipient_id(recipient: &str) -> Result<&str, SendError> {
    let id = recipient.trim();
    if !id.is_empty() && id.len() <= RECIPIENT_DIGITS && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(ErrorCode::InvalidRecipient.error(format!(
            "`{recipient}` is not a page- or Instagram-scoped id (the digits Meta's webhooks give as `sender.id`)"
        )))
    }
}

pub(super) fn bad_content(reason: impl Into<String>) -> SendError {
    ErrorCode::BadContent.error(reason)
}

/// Refuses `text` longer than `max` characters, naming `what` and the platform.
pub(super) fn at_most(
    platform: Platform,
    what: &str,
    text: &str,
    max: usize,
) -> Result<(), SendError> {
    let len = text.chars().count();
    if len > max {
        Err(bad_content(format!(
            "{what} is {len} characters; {} takes at most {max}",
            platform.label()
        )))
    } else {
        Ok(())
    }
}

/// Refuses an empty text or one over the platform's limit (2000 characters on Messenger,
/// 1000 on Instagram).
fn text_fits(platform: Platform, text: &str) -> Result<(), SendError> {
    if text.trim().is_empty() {
        return Err(bad_content("the text is empty"));
    }
    match platform.capabilities().text_limit {
        TextLimit::Characters(max) => at_most(
            platform,
            "the text",
            text,
            usize::try_from(max).unwrap_or(usize::MAX),
        ),
        TextLimit::SmsSegments(_) | TextLimit::Unlimited => Ok(()),
    }
}

/// The attachment type Meta files a media under.
pub(super) fn attachment_type(media: &Media) -> &'static str {
    match media.kind() {
        MediaKind::Image => "image",
        MediaKind::Video => "video",
        MediaKind::Audio => "audio",
        MediaKind::Document => "file",
    }
}

/// A media sent by URL: Meta fetches it. Attachments carry no caption on either platform,
/// and Instagram takes no files.
fn media_attachment(platform: Platform, media: &Media) -> Result<Value, SendError> {
    let kind = attachment_type(media);
    if !platform.capabilities().media.supports(media.kind()) {
        return Err(bad_content(format!(
            "{} takes no {kind} attachments; the media should have become a link",
            platform.label()
        )));
    }
    if media
        .caption
        .as_deref()
        .is_some_and(|caption| !caption.trim().is_empty())
    {
        return Err(bad_content(format!(
            "{} attachments have no caption; the caption should have become a text",
            platform.label()
        )));
    }
    Ok(json!({"type": kind, "payload": {"url": media.url}}))
}

fn location_text(location: &Location) -> String {
    [location.name.clone(), location.address.clone()]
        .into_iter()
        .flatten()
        .filter(|line| !line.trim().is_empty())
        .chain([relais_core::content::map_link(location.lat, location.lon)])
        .collect::<Vec<_>>()
        .join("\n")
}

fn quick_replies(platform: Platform, replies: &[QuickReply]) -> Result<Value, SendError> {
    let max = usize::from(platform.capabilities().quick_replies_max);
    if replies.len() > max {
        return Err(bad_content(format!(
            "{} quick replies; {} shows at most {max}",
            replies.len(),
            platform.label()
        )));
    }
    let mut out = Vec::with_capacity(replies.len());
    for reply in replies {
        at_most(
            platform,
            "a quick reply's title",
            &reply.title,
            QUICK_REPLY_TITLE_CHARS,
        )?;
        let payload = reply.effective_payload();
        at_most(platform, "a quick reply's payload", payload, PAYLOAD_CHARS)?;
        out.push(json!({"content_type": "text", "title": reply.title, "payload": payload}));
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use relais_core::retry::ErrorClass;

    fn content(value: Value) -> Content {
        serde_json::from_value(value).unwrap()
    }

    fn body_on(platform: Platform, value: Value) -> Value {
        request_body(
            platform,
            "1254477777772919",
            &content(value),
            MessagingTag::Response,
        )
        .unwrap()
    }

    fn refused_on(platform: Platform, value: Value) -> SendError {
        request_body(
            platform,
            "1254477777772919",
            &content(value),
            MessagingTag::Response,
        )
        .unwrap_err()
    }

    #[test]
    fn a_human_agents_late_reply_is_a_message_tag_with_human_agent() {
        let body = request_body(
            Platform::Messenger,
            "1254477777772919",
            &Content::text("Votre colis est reparti ce matin."),
            MessagingTag::HumanAgent,
        )
        .unwrap();
        assert_eq!(
            body,
            json!({"recipient": {"id": "1254477777772919"}, "messaging_type": "MESSAGE_TAG",
                   "tag": "HUMAN_AGENT", "message": {"text": "Votre colis est reparti ce matin."}})
        );
    }

    #[test]
    fn text_goes_to_the_scoped_id_with_its_messaging_type() {
        assert_eq!(
            body_on(Platform::Messenger, json!({"text": "Bonjour"})),
            json!({"recipient": {"id": "1254477777772919"}, "messaging_type": "RESPONSE",
                   "message": {"text": "Bonjour"}})
        );
        let tagged = request_body(
            Platform::Instagram,
            "1254477777772919",
            &Content::text("Toujours là ?"),
            MessagingTag::HumanAgent,
        )
        .unwrap();
        assert_eq!(tagged["messaging_type"], "MESSAGE_TAG");
        assert_eq!(tagged["tag"], "HUMAN_AGENT");
    }

    #[test]
    fn a_recipient_that_is_not_a_scoped_id_is_permanent() {
        for bad in ["", " ", "+33612345678", "alice", &"9".repeat(40)] {
            let e = request_body(
                Platform::Messenger,
                bad,
                &Content::text("hi"),
                MessagingTag::Response,
            )
            .unwrap_err();
            assert_eq!(
                (e.code.as_str(), e.class),
                ("invalid_recipient", ErrorClass::Permanent),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn quick_replies_go_as_text_replies_with_their_payloads() {
        let sent = body_on(
            Platform::Messenger,
            json!({"text": "Votre créneau ?", "quick_replies": ["Matin", {"title": "Soir", "payload": "PM"}]}),
        );
        assert_eq!(
            sent["message"]["quick_replies"],
            json!([{"content_type": "text", "title": "Matin", "payload": "Matin"},
                   {"content_type": "text", "title": "Soir", "payload": "PM"}])
        );
        let long = refused_on(
            Platform::Messenger,
            json!({"text": "?", "quick_replies": ["Un titre bien trop long pour Meta"]}),
        );
        assert_eq!(long.code, "bad_content");
    }

    #[test]
    fn instagram_takes_quick_replies_only_under_a_text() {
        let card = json!({"card": {"title": "Sneaker", "text": "89 €"}, "quick_replies": ["Oui"]});
        assert_eq!(
            refused_on(Platform::Instagram, card.clone()).code,
            "bad_content"
        );
        assert!(body_on(Platform::Messenger, card)["message"]["quick_replies"].is_array());
    }

    #[test]
    fn media_goes_by_url_as_an_attachment_of_its_kind() {
        let sent = body_on(
            Platform::Messenger,
            json!({"media": {"url": "https://cdn.example/f.pdf", "mime_type": "application/pdf", "filename": "f.pdf"}}),
        );
        assert_eq!(
            sent["message"],
            json!({"attachment": {"type": "file", "payload": {"url": "https://cdn.example/f.pdf"}}})
        );
        let video = body_on(
            Platform::Instagram,
            json!({"media": {"url": "https://cdn.example/v.mp4", "mime_type": "video/mp4"}}),
        );
        assert_eq!(video["message"]["attachment"]["type"], "video");
    }

    #[test]
    fn a_caption_a_file_on_instagram_or_buttons_under_media_are_bad_content() {
        let captioned = json!({"media": {"url": "https://cdn.example/a.jpg", "mime_type": "image/jpeg", "caption": "Voici"}});
        let file =
            json!({"media": {"url": "https://cdn.example/f.pdf", "mime_type": "application/pdf"}});
        let buttons = json!({"media": {"url": "https://cdn.example/a.jpg", "mime_type": "image/jpeg"},
            "buttons": [{"type": "reply", "title": "Oui"}]});
        for (platform, case) in [
            (Platform::Messenger, captioned),
            (Platform::Instagram, file),
            (Platform::Messenger, buttons),
        ] {
            let e = refused_on(platform, case.clone());
            assert_eq!(
                (e.code.as_str(), e.class),
                ("bad_content", ErrorClass::Permanent),
                "{case}"
            );
        }
    }

    #[test]
    fn text_longer_than_the_platform_takes_is_refused_not_cut() {
        let fits = "x".repeat(2000);
        assert!(
            request_body(
                Platform::Messenger,
                "1",
                &Content::text(fits.clone()),
                MessagingTag::Response
            )
            .is_ok()
        );
        let e = refused_on(Platform::Instagram, json!({ "text": fits }));
        assert!(
            e.reason.contains("Instagram takes at most 1000"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn a_location_becomes_its_name_address_and_a_map_link() {
        let sent = body_on(
            Platform::Messenger,
            json!({"location": {"lat": 48.8584, "lon": 2.2945, "name": "Tour Eiffel", "address": "Champ de Mars"}}),
        );
        assert_eq!(
            sent["message"]["text"],
            "Tour Eiffel\nChamp de Mars\nhttps://www.openstreetmap.org/?mlat=48.85840&mlon=2.29450#map=17/48.85840/2.29450"
        );
    }

    #[test]
    fn a_stored_template_never_reaches_meta() {
        let e = refused_on(Platform::Messenger, json!({"template": "order_shipped"}));
        assert_eq!(e.code, "bad_content");
    }
}
