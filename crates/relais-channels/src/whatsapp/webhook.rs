//! Reading one webhook delivery: `{"object": "whatsapp_business_account", "entry": [{
//! "changes": [{"field": "messages", "value": {…}}]}]}`, each `value` holding the
//! `metadata` of the business number, `contacts`, `messages` and `statuses`.
//!
//! A delivery is read whole or refused whole: a body that is not JSON, not about a
//! WhatsApp Business Account, or missing a field Meta documents as always there is an
//! error naming the field by its JSON pointer, and nothing of it is stored (Meta delivers
//! it again). A message of a type this channel does not read is kept as
//! [`InboundKind::Unsupported`] rather than failing the delivery, and changes of other
//! fields (template reviews, account updates) are skipped.

use super::notification::{
    BusinessNumber, DeliveryState, InboundKind, InboundMessage, MediaType, Notification,
    ReplySource, StatusError, StatusUpdate,
};
use crate::json_node::FieldError;
use serde_json::Value;

/// The `object` of every WhatsApp Business Account webhook.
pub const WEBHOOK_OBJECT: &str = "whatsapp_business_account";

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("`object` is `{0}`, not `whatsapp_business_account`")]
    WrongObject(String),
    #[error("`{0}` is missing")]
    Missing(String),
    #[error("`{pointer}`: {detail}")]
    Invalid { pointer: String, detail: String },
}

/// A field of the payload, read with its pointer.
type Node<'v> = crate::json_node::Node<'v, WebhookError>;

impl FieldError for WebhookError {
    fn missing(pointer: String) -> Self {
        WebhookError::Missing(pointer)
    }
    fn invalid(pointer: String, detail: String) -> Self {
        WebhookError::Invalid { pointer, detail }
    }
}

/// Everything a delivery reports, in the order it came.
pub fn parse_webhook(body: &[u8]) -> Result<Vec<Notification>, WebhookError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::NotJson(e.to_string()))?;
    let root = Node::root(&root);
    let object = root.required("object")?.string()?;
    if object != WEBHOOK_OBJECT {
        return Err(WebhookError::WrongObject(object.to_owned()));
    }
    let mut notifications = Vec::new();
    for entry in root.required("entry")?.items()? {
        for change in entry.required("changes")?.items()? {
            // Other fields (message_template_status_update, account_update…) carry no
            // messages and no statuses.
            if let Some(field) = change.optional("field")
                && field.string()? != "messages"
            {
                continue;
            }
            read_value(&change.required("value")?, &mut notifications)?;
        }
    }
    Ok(notifications)
}

fn read_value(value: &Node<'_>, out: &mut Vec<Notification>) -> Result<(), WebhookError> {
    let messages = value.optional("messages").map(|m| m.items()).transpose()?;
    let statuses = value.optional("statuses").map(|s| s.items()).transpose()?;
    if messages.is_none() && statuses.is_none() {
        // An `errors`-only value (a problem with the number or the app, not a message).
        return Ok(());
    }
    let metadata = value.required("metadata")?;
    let business = BusinessNumber {
        phone_number_id: metadata.required("phone_number_id")?.string()?.to_owned(),
        display_phone_number: metadata
            .required("display_phone_number")?
            .string()?
            .to_owned(),
    };
    let mut contacts = Vec::new();
    if let Some(list) = value.optional("contacts") {
        for contact in list.items()? {
            let wa_id = contact.optional_string("wa_id")?;
            let name = match contact.optional("profile") {
                Some(profile) => profile.optional_string("name")?,
                None => None,
            };
            contacts.push((wa_id, name));
        }
    }
    for message in messages.into_iter().flatten() {
        out.push(Notification::Message(read_message(
            &message, &business, &contacts,
        )?));
    }
    for status in statuses.into_iter().flatten() {
        out.push(Notification::Status(read_status(&status, &business)?));
    }
    Ok(())
}

type Contact = (Option<String>, Option<String>);

fn read_message(
    message: &Node<'_>,
    business: &BusinessNumber,
    contacts: &[Contact],
) -> Result<InboundMessage, WebhookError> {
    let from = message.required("from")?.string()?.to_owned();
    // A user's id and number may differ, so match on the id; a lone contact is the sender.
    let profile_name = contacts
        .iter()
        .find(|(wa_id, _)| wa_id.as_deref() == Some(from.as_str()))
        .or(match contacts {
            [only] => Some(only),
            _ => None,
        })
        .and_then(|(_, name)| name.clone());
    let context_id = match message.optional("context") {
        Some(context) => context.optional_string("id")?,
        None => None,
    };
    Ok(InboundMessage {
        business: business.clone(),
        wamid: message.required("id")?.string()?.to_owned(),
        from,
        at: message.required("timestamp")?.unix_seconds()?,
        profile_name,
        context_id,
        kind: read_kind(message)?,
    })
}

fn read_kind(message: &Node<'_>) -> Result<InboundKind, WebhookError> {
    let kind = message.required("type")?.string()?;
    let media = |media_type| -> Result<InboundKind, WebhookError> {
        let media = message.required(kind)?;
        Ok(InboundKind::Media {
            media_type,
            id: media.required("id")?.string()?.to_owned(),
            mime_type: media.optional_string("mime_type")?,
            caption: media.optional_string("caption")?,
            filename: media.optional_string("filename")?,
        })
    };
    Ok(match kind {
        "text" => InboundKind::Text {
            body: message
                .required("text")?
                .required("body")?
                .string()?
                .to_owned(),
        },
        "image" => media(MediaType::Image)?,
        "audio" => media(MediaType::Audio)?,
        "video" => media(MediaType::Video)?,
        "document" => media(MediaType::Document)?,
        "sticker" => media(MediaType::Sticker)?,
        "button" => {
            let button = message.required("button")?;
            let title = button.required("text")?.string()?.to_owned();
            let payload = button
                .optional_string("payload")?
                .unwrap_or_else(|| title.clone());
            InboundKind::Reply {
                source: ReplySource::TemplateButton,
                title,
                payload,
            }
        }
        "interactive" => {
            let interactive = message.required("interactive")?;
            let reply_type = interactive.required("type")?.string()?;
            let source = match reply_type {
                "button_reply" => ReplySource::Button,
                "list_reply" => ReplySource::ListRow,
                other => {
                    return Ok(InboundKind::Unsupported {
                        kind: format!("interactive.{other}"),
                    });
                }
            };
            let reply = interactive.required(reply_type)?;
            InboundKind::Reply {
                source,
                title: reply.required("title")?.string()?.to_owned(),
                payload: reply.required("id")?.string()?.to_owned(),
            }
        }
        "location" => {
            let location = message.required("location")?;
            InboundKind::Location {
                latitude: location.required("latitude")?.number()?,
                longitude: location.required("longitude")?.number()?,
                name: location.optional_string("name")?,
                address: location.optional_string("address")?,
            }
        }
        "reaction" => {
            let reaction = message.required("reaction")?;
            InboundKind::Reaction {
                emoji: reaction.optional_string("emoji")?,
                message_id: reaction.required("message_id")?.string()?.to_owned(),
            }
        }
        other => InboundKind::Unsupported {
            kind: other.to_owned(),
        },
    })
}

fn read_status(status: &Node<'_>, business: &BusinessNumber) -> Result<StatusUpdate, WebhookError> {
    let state = match status.required("status")?.string()? {
        "sent" => DeliveryState::Sent,
        "delivered" => DeliveryState::Delivered,
        "read" => DeliveryState::Read,
        "failed" => DeliveryState::Failed,
        other => DeliveryState::Unknown(other.to_owned()),
    };
    let mut errors = Vec::new();
    if let Some(list) = status.optional("errors") {
        for error in list.items()? {
            let code = error.required("code")?;
            let title = match error.optional_string("title")? {
                Some(title) => Some(title),
                None => error.optional_string("message")?,
            };
            let details = match error.optional("error_data") {
                Some(data) => data.optional_string("details")?,
                None => None,
            };
            errors.push(StatusError {
                code: code
                    .value
                    .as_i64()
                    .ok_or_else(|| code.invalid("must be an integer"))?,
                title: title.unwrap_or_default(),
                details,
            });
        }
    }
    Ok(StatusUpdate {
        business: business.clone(),
        wamid: status.required("id")?.string()?.to_owned(),
        recipient: status.required("recipient_id")?.string()?.to_owned(),
        at: status.required("timestamp")?.unix_seconds()?,
        state,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn delivery(value: Value) -> Vec<u8> {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
            "changes": [{"field": "messages", "value": value}]}]})
        .to_string()
        .into_bytes()
    }

    fn with_message(message: Value) -> Vec<u8> {
        delivery(json!({"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
            "messages": [message]}))
    }

    fn only_message(body: &[u8]) -> InboundMessage {
        match parse_webhook(body).unwrap().as_slice() {
            [Notification::Message(message)] => message.clone(),
            other => panic!("expected one message, got {other:?}"),
        }
    }

    /// The kind read from a message of `type` whose `type` member is `payload`.
    fn kind_of(kind: &str, payload: Value) -> InboundKind {
        let mut message = json!({"from": "16505551234", "id": "wamid.A", "timestamp": "1739321024",
            "context": {"from": "15550783881", "id": "wamid.OUT"}, "type": kind});
        message[kind] = payload;
        only_message(&with_message(message)).kind
    }

    #[test]
    fn media_messages_keep_id_mime_type_and_caption() {
        let document = json!({"id": "2754859441498128", "mime_type": "application/pdf",
            "sha256": "81d3", "filename": "facture.pdf", "caption": "Ma facture"});
        assert_eq!(
            kind_of("document", document),
            InboundKind::Media {
                media_type: MediaType::Document,
                id: "2754859441498128".into(),
                mime_type: Some("application/pdf".into()),
                caption: Some("Ma facture".into()),
                filename: Some("facture.pdf".into()),
            }
        );
    }

    #[test]
    fn a_template_quick_reply_a_location_and_a_reaction_are_read() {
        let button = json!({"payload": "STOP_PROMOS", "text": "Unsubscribe"});
        let reply = InboundKind::Reply {
            source: ReplySource::TemplateButton,
            title: "Unsubscribe".into(),
            payload: "STOP_PROMOS".into(),
        };
        assert_eq!(kind_of("button", button), reply);
        let place = json!({"latitude": 48.8584, "longitude": 2.2945, "name": "Tour Eiffel"});
        let location = InboundKind::Location {
            latitude: 48.8584,
            longitude: 2.2945,
            name: Some("Tour Eiffel".into()),
            address: None,
        };
        assert_eq!(kind_of("location", place), location);
        let reaction = json!({"message_id": "wamid.OUT", "emoji": "👍"});
        let reacted = InboundKind::Reaction {
            emoji: Some("👍".into()),
            message_id: "wamid.OUT".into(),
        };
        assert_eq!(kind_of("reaction", reaction), reacted);
    }

    #[test]
    fn unknown_message_types_are_kept_as_unsupported() {
        let card = json!([{"name": {"formatted_name": "Jo"}}]);
        let unsupported = |kind: &str| InboundKind::Unsupported { kind: kind.into() };
        assert_eq!(kind_of("contacts", card), unsupported("contacts"));
        let flow = json!({"type": "nfm_reply", "nfm_reply": {}});
        assert_eq!(
            kind_of("interactive", flow),
            unsupported("interactive.nfm_reply")
        );
    }

    #[test]
    fn missing_or_wrong_fields_are_named_by_pointer() {
        let no_body = parse_webhook(&with_message(json!({"from": "1", "id": "wamid.G",
            "timestamp": "1739321024", "type": "text", "text": {}})));
        assert_eq!(
            no_body,
            Err(WebhookError::Missing(
                "/entry/0/changes/0/value/messages/0/text/body".into()
            ))
        );
        let bad_time = parse_webhook(&with_message(json!({"from": "1", "id": "wamid.H",
            "timestamp": "yesterday", "type": "text", "text": {"body": "hi"}})));
        assert!(
            matches!(&bad_time, Err(WebhookError::Invalid { pointer, .. }) if pointer.ends_with("/timestamp")),
            "{bad_time:?}"
        );
        let no_metadata = parse_webhook(&delivery(json!({"statuses": []})));
        assert_eq!(
            no_metadata,
            Err(WebhookError::Missing(
                "/entry/0/changes/0/value/metadata".into()
            ))
        );
    }

    #[test]
    fn other_objects_and_non_json_bodies_are_refused() {
        assert_eq!(
            parse_webhook(br#"{"object": "page", "entry": []}"#),
            Err(WebhookError::WrongObject("page".into()))
        );
        assert!(matches!(
            parse_webhook(b"not json"),
            Err(WebhookError::NotJson(_))
        ));
        assert_eq!(
            parse_webhook(br#"{"entry": []}"#),
            Err(WebhookError::Missing("/object".into()))
        );
    }

    #[test]
    fn changes_of_other_fields_and_error_only_values_are_skipped() {
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
            {"field": "message_template_status_update", "value": {"event": "APPROVED"}},
            {"field": "messages", "value": {"metadata": {"display_phone_number": "1", "phone_number_id": "2"},
                "errors": [{"code": 130429, "title": "Rate limit hit"}]}}]}]});
        assert_eq!(parse_webhook(body.to_string().as_bytes()), Ok(Vec::new()));
    }

    #[test]
    fn a_status_without_errors_and_an_unknown_state_are_read() {
        let body = delivery(
            json!({"metadata": {"display_phone_number": "15556459128", "phone_number_id": "590968830767958"},
            "statuses": [
                {"id": "wamid.S", "status": "sent", "timestamp": "1750857384", "recipient_id": "5516992318222",
                 "pricing": {"billable": true, "pricing_model": "PMP", "category": "utility"}},
                {"id": "wamid.S", "status": "deleted", "timestamp": "1750857385", "recipient_id": "5516992318222"}]}),
        );
        let notifications = parse_webhook(&body).unwrap();
        let states: Vec<_> = notifications
            .iter()
            .map(|n| match n {
                Notification::Status(s) => s.state.clone(),
                Notification::Message(_) => panic!("no messages here"),
            })
            .collect();
        assert_eq!(
            states,
            vec![
                DeliveryState::Sent,
                DeliveryState::Unknown("deleted".into())
            ]
        );
    }
}
