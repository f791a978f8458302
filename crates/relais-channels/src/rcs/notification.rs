//! What one webhook delivery tells us, as types: a message a user wrote (or a suggestion
//! they tapped), or an event about a message we sent (delivered, read, revoked after its
//! time to live) or about the conversation (typing, unsubscribing).
//!
//! The richer types keep what Google said (a suggestion's postback data, a file's URI,
//! coordinates); [`InboundMessage::to_new_inbound`] and [`Event::to_status_report`] turn
//! them into the channel-neutral events the engine stores. Only mapping happens here:
//! keeping statuses from moving backwards is the engine's job.

use crate::event::{ConsentReport, MessageRef, NewInbound, StatusReport};
use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::consent::{ConsentStatus, Purpose};
use relais_core::status::MessageStatus;

/// The payload of one delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    Message(InboundMessage),
    Event(Event),
}

impl Notification {
    /// The agent the delivery is for (`agentId`), as Google wrote it.
    pub fn agent_id(&self) -> &str {
        match self {
            Notification::Message(message) => &message.agent_id,
            Notification::Event(event) => &event.agent_id,
        }
    }
}

/// A message a user sent the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    pub agent_id: String,
    /// Assigned by the user's RCS client; a redelivery carries the same one.
    pub message_id: String,
    /// The sender's number, E.164.
    pub from: String,
    pub at: Option<Timestamp>,
    pub kind: InboundKind,
}

/// What the user sent.
#[derive(Debug, Clone, PartialEq)]
pub enum InboundKind {
    /// Typed by the user.
    Text { text: String },
    /// A tapped suggested reply or action: what it showed and the postback data we gave it.
    Suggestion {
        source: SuggestionSource,
        text: String,
        postback_data: String,
    },
    /// A place the user shared (not necessarily where they are).
    Location { latitude: f64, longitude: f64 },
    /// A file the user sent, held by Google at `uri`.
    File {
        uri: String,
        mime_type: Option<String>,
        name: Option<String>,
        size_bytes: Option<u64>,
    },
    /// A message with content this channel does not read: kept, so the conversation
    /// shows something came.
    Unsupported { kind: String },
}

/// What kind of suggestion was tapped (`suggestionResponse.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuggestionSource {
    Reply,
    Action,
    Unspecified,
}

impl InboundMessage {
    /// The text the inbound pipeline reads: what was written, the tapped suggestion's
    /// text, or a short description such as `[location] 48.8584, 2.2945`.
    pub fn text(&self) -> String {
        match &self.kind {
            InboundKind::Text { text } => text.clone(),
            InboundKind::Suggestion {
                text,
                postback_data,
                ..
            } => {
                if text.trim().is_empty() {
                    postback_data.clone()
                } else {
                    text.clone()
                }
            }
            InboundKind::Location {
                latitude,
                longitude,
            } => format!("[location] {latitude}, {longitude}"),
            InboundKind::File {
                mime_type, name, ..
            } => {
                let kind = match mime_type.as_deref().and_then(|m| m.split('/').next()) {
                    Some("image") => "image",
                    Some("video") => "video",
                    Some("audio") => "audio",
                    _ => "file",
                };
                match name.as_deref().filter(|name| !name.trim().is_empty()) {
                    Some(name) => format!("[{kind}] {name}"),
                    None => format!("[{kind}]"),
                }
            }
            InboundKind::Unsupported { kind } => format!("[{kind}]"),
        }
    }

    /// The postback data of a tapped suggestion, which says more than its text.
    pub fn postback_data(&self) -> Option<&str> {
        match &self.kind {
            InboundKind::Suggestion { postback_data, .. } => Some(postback_data),
            _ => None,
        }
    }

    /// The message as the engine's inbound pipeline takes it; `agent_id` is the
    /// channel's agent, which the message was sent to.
    pub fn to_new_inbound(&self, tenant_id: &str, channel_id: &str, agent_id: &str) -> NewInbound {
        NewInbound {
            answers: Vec::new(),
            tenant_id: tenant_id.to_owned(),
            channel: ChannelKind::Rcs,
            channel_id: Some(channel_id.to_owned()),
            from: self.from.clone(),
            to: agent_id.to_owned(),
            text: self.text(),
            payload: self.postback_data().map(str::to_owned),
            media: None,
            provider_id: Some(self.message_id.clone()),
        }
    }
}

/// An event from the user's RCS client (`UserEvent`) or from Google's servers
/// (`ServerEvent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub agent_id: String,
    /// The user's number, E.164.
    pub phone: String,
    pub event_id: Option<String>,
    /// The message the event is about: for our messages, the id we sent it with.
    pub message_id: Option<String>,
    pub at: Option<Timestamp>,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The user's RCS client received our message.
    Delivered,
    /// The user opened the conversation after our message was delivered.
    Read,
    IsTyping,
    /// The user asked for no more non-essential messages from the agent.
    Unsubscribe,
    Subscribe,
    /// Google revoked our message when its time to live ran out: it was not delivered.
    TtlExpirationRevoked,
    /// The time to live ran out but the revocation failed: it may still be delivered.
    TtlExpirationRevokeFailed,
    /// A type Google adds later.
    Unknown(String),
}

impl EventKind {
    /// Reads `eventType`, of a user event or a server event.
    pub fn from_type(event_type: &str) -> EventKind {
        match event_type {
            "DELIVERED" => EventKind::Delivered,
            "READ" => EventKind::Read,
            "IS_TYPING" => EventKind::IsTyping,
            "UNSUBSCRIBE" => EventKind::Unsubscribe,
            "SUBSCRIBE" => EventKind::Subscribe,
            "TTL_EXPIRATION_REVOKED" => EventKind::TtlExpirationRevoked,
            "TTL_EXPIRATION_REVOKE_FAILED" => EventKind::TtlExpirationRevokeFailed,
            other => EventKind::Unknown(other.to_owned()),
        }
    }

    /// Whether the event is about one of our messages, and must then name it.
    pub fn names_a_message(&self) -> bool {
        matches!(
            self,
            EventKind::Delivered
                | EventKind::Read
                | EventKind::TtlExpirationRevoked
                | EventKind::TtlExpirationRevokeFailed
        )
    }
}

impl Event {
    /// What the event means for the message; `None` for events the engine does not act
    /// on (typing, subscriptions, a revocation that failed and so changes nothing).
    pub fn message_status(&self) -> Option<MessageStatus> {
        match self.kind {
            EventKind::Delivered => Some(MessageStatus::Delivered),
            EventKind::Read => Some(MessageStatus::Read),
            EventKind::TtlExpirationRevoked => Some(MessageStatus::Expired),
            _ => None,
        }
    }

    /// The consent change an `UNSUBSCRIBE` is: the user asked the agent for no more
    /// non-essential messages, an opt-out of marketing on RCS, with the event as proof.
    /// `None` for every other event.
    pub fn to_consent_report(&self, tenant_id: &str) -> Option<ConsentReport> {
        if self.kind != EventKind::Unsubscribe {
            return None;
        }
        let at = self
            .at
            .map_or_else(|| "at an unknown time".to_owned(), |t| format!("at {t}"));
        let id = self.event_id.as_deref().unwrap_or("without an id");
        Some(ConsentReport {
            tenant_id: tenant_id.to_owned(),
            channel: ChannelKind::Rcs,
            address: self.phone.clone(),
            status: ConsentStatus::OptedOut,
            purpose: Purpose::Marketing,
            proof: format!(
                "RCS `UNSUBSCRIBE` event {id} from {} to agent {} {at}",
                self.phone, self.agent_id
            ),
        })
    }

    /// The report the engine applies, found through the message id we sent with; `None`
    /// for events that change no message.
    pub fn to_status_report(&self, tenant_id: &str, channel_id: &str) -> Option<StatusReport> {
        let status = self.message_status()?;
        let message_id = self.message_id.clone()?;
        let detail = (self.kind == EventKind::TtlExpirationRevoked)
            .then(|| "revoked by Google when its time to live ran out; not delivered".to_owned());
        Some(StatusReport {
            tenant_id: tenant_id.to_owned(),
            channel_id: channel_id.to_owned(),
            message: MessageRef::Ours(message_id),
            status,
            at: self.at,
            detail,
            address_gone: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: InboundKind) -> InboundMessage {
        InboundMessage {
            agent_id: "relais_agent@rbm.goog".into(),
            message_id: "MxIN".into(),
            from: "+33612345678".into(),
            at: None,
            kind,
        }
    }

    fn event(kind: EventKind) -> Event {
        Event {
            agent_id: "relais_agent@rbm.goog".into(),
            phone: "+33612345678".into(),
            event_id: Some("MxEV".into()),
            message_id: Some("0197a1b2-msg".into()),
            at: Some(Timestamp::from_second(1_750_000_000).unwrap()),
            kind,
        }
    }

    #[test]
    fn a_message_becomes_a_new_inbound_from_the_user_to_the_agent() {
        let inbound = message(InboundKind::Text {
            text: "Bonjour".into(),
        })
        .to_new_inbound("t1", "ch1", "relais_agent");
        assert_eq!(
            inbound,
            NewInbound {
                answers: Vec::new(),
                tenant_id: "t1".into(),
                channel: ChannelKind::Rcs,
                channel_id: Some("ch1".into()),
                from: "+33612345678".into(),
                to: "relais_agent".into(),
                text: "Bonjour".into(),
                payload: None,
                media: None,
                provider_id: Some("MxIN".into()),
            }
        );
    }

    #[test]
    fn a_tapped_suggestion_becomes_a_new_inbound_with_its_postback_data() {
        let inbound = message(InboundKind::Suggestion {
            source: SuggestionSource::Reply,
            text: "Oui".into(),
            postback_data: "CONFIRM".into(),
        })
        .to_new_inbound("t1", "ch1", "relais_agent");
        assert_eq!(
            (inbound.text.as_str(), inbound.payload.as_deref()),
            ("Oui", Some("CONFIRM"))
        );
    }

    #[test]
    fn rich_messages_are_described_in_their_text_and_keep_their_details() {
        let tapped = message(InboundKind::Suggestion {
            source: SuggestionSource::Reply,
            text: "Oui".into(),
            postback_data: "CONFIRM".into(),
        });
        assert_eq!(
            (tapped.text().as_str(), tapped.postback_data()),
            ("Oui", Some("CONFIRM"))
        );
        let place = message(InboundKind::Location {
            latitude: 48.8584,
            longitude: 2.2945,
        });
        assert_eq!(place.text(), "[location] 48.8584, 2.2945");
        let photo = message(InboundKind::File {
            uri: "https://rcs-user-content.storage.googleapis.com/x".into(),
            mime_type: Some("image/jpeg".into()),
            name: Some("colis.jpg".into()),
            size_bytes: Some(4096),
        });
        assert_eq!(photo.text(), "[image] colis.jpg");
        let unnamed = message(InboundKind::File {
            uri: "u".into(),
            mime_type: None,
            name: None,
            size_bytes: None,
        });
        assert_eq!(unnamed.text(), "[file]");
    }

    #[test]
    fn delivered_read_and_revoked_events_report_on_our_message_id() {
        for (kind, status) in [
            (EventKind::Delivered, MessageStatus::Delivered),
            (EventKind::Read, MessageStatus::Read),
            (EventKind::TtlExpirationRevoked, MessageStatus::Expired),
        ] {
            let report = event(kind).to_status_report("t1", "ch1").unwrap();
            assert_eq!(report.status, status);
            assert_eq!(report.message, MessageRef::Ours("0197a1b2-msg".into()));
            assert_eq!(
                report.at,
                Some(Timestamp::from_second(1_750_000_000).unwrap())
            );
        }
    }

    #[test]
    fn an_unsubscribe_is_an_opt_out_of_marketing_on_rcs_with_the_event_as_proof() {
        let report = event(EventKind::Unsubscribe)
            .to_consent_report("t1")
            .expect("a consent change");
        assert_eq!(report.channel, ChannelKind::Rcs);
        assert_eq!(report.status, ConsentStatus::OptedOut);
        assert_eq!(report.purpose, Purpose::Marketing);
        assert_eq!(report.address, event(EventKind::Unsubscribe).phone);
        assert!(report.proof.contains("UNSUBSCRIBE"), "{}", report.proof);
        for kind in [
            EventKind::Subscribe,
            EventKind::Delivered,
            EventKind::IsTyping,
        ] {
            assert_eq!(event(kind).to_consent_report("t1"), None);
        }
    }

    #[test]
    fn typing_subscriptions_and_unknown_events_change_no_message() {
        for kind in [
            EventKind::IsTyping,
            EventKind::Unsubscribe,
            EventKind::Subscribe,
            EventKind::TtlExpirationRevokeFailed,
            EventKind::from_type("SOMETHING_NEW"),
        ] {
            assert_eq!(
                event(kind.clone()).to_status_report("t1", "ch1"),
                None,
                "{kind:?}"
            );
        }
    }
}
