//! What one webhook delivery tells us, as types: the messages customers wrote and the
//! statuses of the messages we sent, each with the business number it concerns.
//!
//! The richer types keep what WhatsApp said (a reply's payload, a media id, coordinates);
//! [`InboundMessage::to_new_inbound`] and [`StatusUpdate::to_status_report`] turn them into
//! the channel-neutral events the engine stores. Only mapping happens here: keeping
//! statuses from moving backwards is the engine's job.

use crate::event::{MessageRef, NewInbound, StatusReport};
use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::status::MessageStatus;

/// One item of a webhook delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    Message(InboundMessage),
    Status(StatusUpdate),
}

/// The business phone number a change is about (`value.metadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessNumber {
    /// Which configured channel it belongs to.
    pub phone_number_id: String,
    /// The number as customers see it, digits without `+` (e.g. `15550783881`).
    pub display_phone_number: String,
}

/// A message a customer wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    pub business: BusinessNumber,
    /// The `wamid.…` id; a redelivery carries the same one.
    pub wamid: String,
    /// The sender's WhatsApp id: their number's digits, without `+`.
    pub from: String,
    pub at: Timestamp,
    /// The name on the sender's WhatsApp profile, when the delivery gave it.
    pub profile_name: Option<String>,
    /// The message this one answers (a tapped button's message, a quoted reply).
    pub context_id: Option<String>,
    pub kind: InboundKind,
}

/// What the customer sent.
#[derive(Debug, Clone, PartialEq)]
pub enum InboundKind {
    Text {
        body: String,
    },
    /// A tapped reply button, list row or template quick reply: what it showed and the id
    /// (payload) we gave it.
    Reply {
        source: ReplySource,
        title: String,
        payload: String,
    },
    Media {
        media_type: MediaType,
        /// The media's id, to download it through the Graph API.
        id: String,
        mime_type: Option<String>,
        caption: Option<String>,
        filename: Option<String>,
    },
    Location {
        latitude: f64,
        longitude: f64,
        name: Option<String>,
        address: Option<String>,
    },
    /// `emoji` is `None` when the customer took a reaction back.
    Reaction {
        emoji: Option<String>,
        message_id: String,
    },
    /// A type this channel does not read (contacts, order, a Flow's answer…): kept, so
    /// the rest of the delivery is stored and the conversation shows something came.
    Unsupported {
        kind: String,
    },
}

/// Where a [`InboundKind::Reply`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplySource {
    /// `interactive.button_reply`: a reply button of a session message.
    Button,
    /// `interactive.list_reply`: a row of a list message.
    ListRow,
    /// `button`: a quick-reply button of a template.
    TemplateButton,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    Image,
    Audio,
    Video,
    Document,
    Sticker,
}

impl MediaType {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Image => "image",
            MediaType::Audio => "audio",
            MediaType::Video => "video",
            MediaType::Document => "document",
            MediaType::Sticker => "sticker",
        }
    }
}

impl InboundMessage {
    /// The text the inbound pipeline reads: what was written, the tapped title, the
    /// caption, or a short description such as `[image]`.
    pub fn text(&self) -> String {
        match &self.kind {
            InboundKind::Text { body } => body.clone(),
            InboundKind::Reply { title, .. } => title.clone(),
            InboundKind::Media {
                media_type,
                caption,
                ..
            } => caption
                .clone()
                .filter(|caption| !caption.trim().is_empty())
                .unwrap_or_else(|| format!("[{}]", media_type.as_str())),
            InboundKind::Location { name, address, .. } => {
                let place: Vec<&str> = [name, address]
                    .into_iter()
                    .flatten()
                    .map(String::as_str)
                    .collect();
                if place.is_empty() {
                    "[location]".to_owned()
                } else {
                    format!("[location] {}", place.join(", "))
                }
            }
            InboundKind::Reaction {
                emoji: Some(emoji), ..
            } => emoji.clone(),
            InboundKind::Reaction { emoji: None, .. } => "[reaction removed]".to_owned(),
            InboundKind::Unsupported { kind } => format!("[{kind}]"),
        }
    }

    /// The payload of a tapped button or row, which says more than its title.
    pub fn payload(&self) -> Option<&str> {
        match &self.kind {
            InboundKind::Reply { payload, .. } => Some(payload),
            _ => None,
        }
    }

    /// The message as the engine's inbound pipeline takes it.
    pub fn to_new_inbound(&self, tenant_id: &str, channel_id: &str) -> NewInbound {
        NewInbound {
            answers: Vec::new(),
            tenant_id: tenant_id.to_owned(),
            channel: ChannelKind::Whatsapp,
            channel_id: Some(channel_id.to_owned()),
            from: self.from.clone(),
            to: self.business.display_phone_number.clone(),
            text: self.text(),
            payload: self.payload().map(str::to_owned),
            media: None,
            provider_id: Some(self.wamid.clone()),
        }
    }
}

/// A status of a message we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    pub business: BusinessNumber,
    /// The id our send was acknowledged with.
    pub wamid: String,
    pub recipient: String,
    pub at: Timestamp,
    pub state: DeliveryState,
    /// Why it failed (Meta sends them with `failed`).
    pub errors: Vec<StatusError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryState {
    Sent,
    Delivered,
    Read,
    Failed,
    /// `deleted`, or a state Meta adds later: nothing the engine acts on.
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusError {
    pub code: i64,
    pub title: String,
    pub details: Option<String>,
}

impl StatusUpdate {
    /// What the state means for the message; `None` for unknown states.
    pub fn message_status(&self) -> Option<MessageStatus> {
        match self.state {
            DeliveryState::Sent => Some(MessageStatus::Sent),
            DeliveryState::Delivered => Some(MessageStatus::Delivered),
            DeliveryState::Read => Some(MessageStatus::Read),
            DeliveryState::Failed => Some(MessageStatus::Failed),
            DeliveryState::Unknown(_) => None,
        }
    }

    /// The report the engine applies, found through the wamid of the send; `None` for
    /// unknown states.
    pub fn to_status_report(&self, tenant_id: &str, channel_id: &str) -> Option<StatusReport> {
        let status = self.message_status()?;
        let detail = (!self.errors.is_empty()).then(|| {
            self.errors
                .iter()
                .map(|e| match &e.details {
                    Some(details) => format!("{}: {} ({details})", e.code, e.title),
                    None => format!("{}: {}", e.code, e.title),
                })
                .collect::<Vec<_>>()
                .join("; ")
        });
        Some(StatusReport {
            tenant_id: tenant_id.to_owned(),
            channel_id: channel_id.to_owned(),
            message: MessageRef::Provider(self.wamid.clone()),
            status,
            at: Some(self.at),
            detail,
            address_gone: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn business() -> BusinessNumber {
        BusinessNumber {
            phone_number_id: "106540352242922".into(),
            display_phone_number: "15550783881".into(),
        }
    }

    fn message(kind: InboundKind) -> InboundMessage {
        InboundMessage {
            business: business(),
            wamid: "wamid.IN".into(),
            from: "16505551234".into(),
            at: Timestamp::from_second(1_739_321_024).unwrap(),
            profile_name: None,
            context_id: None,
            kind,
        }
    }

    #[test]
    fn a_message_becomes_a_new_inbound_from_the_customer_to_the_business_number() {
        let inbound = message(InboundKind::Text {
            body: "Bonjour".into(),
        })
        .to_new_inbound("t1", "ch1");
        assert_eq!(
            inbound,
            NewInbound {
                answers: Vec::new(),
                tenant_id: "t1".into(),
                channel: ChannelKind::Whatsapp,
                channel_id: Some("ch1".into()),
                from: "16505551234".into(),
                to: "15550783881".into(),
                text: "Bonjour".into(),
                payload: None,
                media: None,
                provider_id: Some("wamid.IN".into()),
            }
        );
    }

    #[test]
    fn a_tapped_button_becomes_a_new_inbound_with_its_title_and_payload() {
        let inbound = message(InboundKind::Reply {
            source: ReplySource::Button,
            title: "Oui".into(),
            payload: "CONFIRM".into(),
        })
        .to_new_inbound("t1", "ch1");
        assert_eq!(
            (inbound.text.as_str(), inbound.payload.as_deref()),
            ("Oui", Some("CONFIRM"))
        );
    }

    #[test]
    fn rich_messages_are_described_in_their_text_and_keep_their_details() {
        let reply = message(InboundKind::Reply {
            source: ReplySource::Button,
            title: "Oui".into(),
            payload: "CONFIRM".into(),
        });
        assert_eq!(
            (reply.text().as_str(), reply.payload()),
            ("Oui", Some("CONFIRM"))
        );
        let photo = |caption: Option<&str>| {
            message(InboundKind::Media {
                media_type: MediaType::Image,
                id: "2754859441498128".into(),
                mime_type: Some("image/jpeg".into()),
                caption: caption.map(str::to_owned),
                filename: None,
            })
            .text()
        };
        assert_eq!(photo(None), "[image]");
        assert_eq!(photo(Some("Mon colis")), "Mon colis");
        let place = message(InboundKind::Location {
            latitude: 48.8584,
            longitude: 2.2945,
            name: Some("Tour Eiffel".into()),
            address: Some("Champ de Mars".into()),
        });
        assert_eq!(place.text(), "[location] Tour Eiffel, Champ de Mars");
        let removed = message(InboundKind::Reaction {
            emoji: None,
            message_id: "wamid.OUT".into(),
        });
        assert_eq!(removed.text(), "[reaction removed]");
        assert_eq!(
            message(InboundKind::Unsupported {
                kind: "contacts".into()
            })
            .text(),
            "[contacts]"
        );
    }

    fn status(state: DeliveryState, errors: Vec<StatusError>) -> StatusUpdate {
        StatusUpdate {
            business: business(),
            wamid: "wamid.OUT".into(),
            recipient: "16505551234".into(),
            at: Timestamp::from_second(1_750_857_384).unwrap(),
            state,
            errors,
        }
    }

    #[test]
    fn statuses_map_to_the_message_status_they_mean() {
        for (state, expected) in [
            (DeliveryState::Sent, MessageStatus::Sent),
            (DeliveryState::Delivered, MessageStatus::Delivered),
            (DeliveryState::Read, MessageStatus::Read),
        ] {
            let report = status(state, Vec::new())
                .to_status_report("t1", "ch1")
                .unwrap();
            assert_eq!(report.status, expected);
            assert_eq!(report.message, MessageRef::Provider("wamid.OUT".into()));
            assert_eq!(report.detail, None);
        }
        assert_eq!(
            status(DeliveryState::Unknown("deleted".into()), Vec::new())
                .to_status_report("t1", "ch1"),
            None
        );
    }

    #[test]
    fn a_failure_carries_its_error_code_and_title() {
        let failed = status(
            DeliveryState::Failed,
            vec![StatusError {
                code: 131026,
                title: "Message undeliverable".into(),
                details: None,
            }],
        );
        let report = failed.to_status_report("t1", "ch1").unwrap();
        assert_eq!(report.status, MessageStatus::Failed);
        assert_eq!(
            report.detail.as_deref(),
            Some("131026: Message undeliverable")
        );
    }
}
