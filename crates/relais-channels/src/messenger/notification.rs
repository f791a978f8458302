//! What one webhook delivery tells us, as types: the messages customers wrote (and the
//! buttons they tapped), and what became of the messages we sent.
//!
//! The richer types keep what Meta said (a payload, attachment URLs, a watermark);
//! [`InboundMessage::to_new_inbound`] and [`Receipt::to_status_reports`] turn them into the
//! channel-neutral events the engine stores. A [`Watermark`] ("everything sent before
//! this instant was read") names no message, and the engine finds messages by provider
//! id, so it has no conversion: it is kept here for the engine to use if it learns to.

use super::platform::Platform;
use crate::event::{MessageRef, NewInbound, StatusReport};
use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::status::MessageStatus;

/// The events of one `entry`: one Page's or Instagram account's.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `entry[].id`: the Page, or the Instagram professional account.
    pub account_id: String,
    pub notifications: Vec<Notification>,
}

/// One event of a delivery that concerns the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// A customer wrote, tapped a quick reply, or tapped a postback button.
    Message(InboundMessage),
    /// Messages we sent, named by id, were delivered or read.
    Receipt(Receipt),
    /// Every message sent to the customer before an instant was delivered or read.
    UpTo(Watermark),
}

/// A message from a customer.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    pub platform: Platform,
    /// The Page or Instagram account it was sent to.
    pub account_id: String,
    /// The message id (`mid`); a redelivery carries the same one.
    pub mid: String,
    /// The sender's page-scoped (PSID) or Instagram-scoped (IGSID) id.
    pub from: String,
    pub at: Timestamp,
    /// The message this one answers, when the customer replied to one.
    pub reply_to: Option<String>,
    pub kind: InboundKind,
}

/// What the customer sent.
#[derive(Debug, Clone, PartialEq)]
pub enum InboundKind {
    /// Text, attachments, or both.
    Message {
        text: Option<String>,
        attachments: Vec<Attachment>,
    },
    /// A tapped quick reply: its title (sent as the message's text) and our payload.
    QuickReply { title: String, payload: String },
    /// A tapped postback button (button template, card, persistent menu, ice breaker).
    Postback { title: String, payload: String },
    /// A message Meta cannot show through the API (`is_unsupported`).
    Unsupported,
}

/// One attachment of a customer's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// `image`, `video`, `audio`, `file`, `share`, `story_mention`, `ig_reel`, `fallback`…
    pub kind: String,
    /// Where Meta serves it (a map link for a shared location); some shares have none.
    pub url: Option<String>,
    /// The title of a shared link or reel, when Meta gives one.
    pub title: Option<String>,
}

impl Attachment {
    /// `[image] https://…`, the way the inbound pipeline reads it.
    pub fn describe(&self) -> String {
        let mut line = format!("[{}]", self.kind);
        for part in [&self.title, &self.url].into_iter().flatten() {
            line.push(' ');
            line.push_str(part);
        }
        line
    }
}

impl InboundMessage {
    /// The text the inbound pipeline reads: what was written, the tapped title, and a
    /// line per attachment with its URL.
    pub fn text(&self) -> String {
        match &self.kind {
            InboundKind::Message { text, attachments } => text
                .iter()
                .filter(|text| !text.trim().is_empty())
                .cloned()
                .chain(attachments.iter().map(Attachment::describe))
                .collect::<Vec<_>>()
                .join("\n"),
            InboundKind::QuickReply { title, .. } | InboundKind::Postback { title, .. } => {
                title.clone()
            }
            InboundKind::Unsupported => "[unsupported]".to_owned(),
        }
    }

    /// The payload of a tapped quick reply or button, which says more than its title.
    pub fn payload(&self) -> Option<&str> {
        match &self.kind {
            InboundKind::QuickReply { payload, .. } | InboundKind::Postback { payload, .. } => {
                Some(payload)
            }
            InboundKind::Message { .. } | InboundKind::Unsupported => None,
        }
    }

    /// The message as the engine's inbound pipeline takes it: from the customer's scoped
    /// id, to the Page or Instagram account.
    pub fn to_new_inbound(&self, tenant_id: &str, channel_id: &str) -> NewInbound {
        NewInbound {
            answers: Vec::new(),
            tenant_id: tenant_id.to_owned(),
            channel: self.platform.kind(),
            channel_id: Some(channel_id.to_owned()),
            from: self.from.clone(),
            to: self.account_id.clone(),
            text: self.text(),
            payload: self.payload().map(str::to_owned),
            media: None,
            provider_id: Some(self.mid.clone()),
        }
    }
}

/// How far a message we sent went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptState {
    Delivered,
    Read,
}

impl ReceiptState {
    pub fn message_status(self) -> MessageStatus {
        match self {
            ReceiptState::Delivered => MessageStatus::Delivered,
            ReceiptState::Read => MessageStatus::Read,
        }
    }
}

/// Messages we sent, named by the `message_id` their send was acknowledged with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub account_id: String,
    /// The customer the messages went to.
    pub customer: String,
    pub state: ReceiptState,
    pub mids: Vec<String>,
    pub at: Timestamp,
}

impl Receipt {
    /// One report per message, found through the id of its send.
    pub fn to_status_reports(&self, tenant_id: &str, channel_id: &str) -> Vec<StatusReport> {
        self.mids
            .iter()
            .map(|mid| StatusReport {
                tenant_id: tenant_id.to_owned(),
                channel_id: channel_id.to_owned(),
                message: MessageRef::Provider(mid.clone()),
                status: self.state.message_status(),
                at: Some(self.at),
                detail: None,
                address_gone: false,
            })
            .collect()
    }
}

/// Messenger's `read.watermark` (and a `delivery` without `mids`): every message sent to
/// `customer` before `up_to` was read (delivered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    pub account_id: String,
    pub customer: String,
    pub state: ReceiptState,
    pub up_to: Timestamp,
}

impl Watermark {
    /// One report for every message sent to the customer before the watermark, on
    /// `kind` (Messenger or Instagram, whose scoped ids are the customer's address).
    pub fn to_status_report(
        &self,
        tenant_id: &str,
        channel_id: &str,
        kind: ChannelKind,
    ) -> StatusReport {
        StatusReport {
            tenant_id: tenant_id.to_owned(),
            channel_id: channel_id.to_owned(),
            message: MessageRef::SentBefore {
                kind,
                recipient: self.customer.clone(),
                before: self.up_to,
            },
            status: self.state.message_status(),
            at: Some(self.up_to),
            detail: None,
            address_gone: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relais_core::channel::ChannelKind;

    fn message(platform: Platform, kind: InboundKind) -> InboundMessage {
        InboundMessage {
            platform,
            account_id: "106540352242922".into(),
            mid: "m_IN".into(),
            from: "1254477777772919".into(),
            at: Timestamp::from_millisecond(1_458_692_752_478).unwrap(),
            reply_to: None,
            kind,
        }
    }

    #[test]
    fn a_tapped_quick_reply_becomes_a_new_inbound_with_its_payload() {
        let tapped = InboundKind::QuickReply {
            title: "Oui".into(),
            payload: "CONFIRM".into(),
        };
        let inbound = message(Platform::Messenger, tapped).to_new_inbound("t1", "ch1");
        assert_eq!(
            (inbound.text.as_str(), inbound.payload.as_deref()),
            ("Oui", Some("CONFIRM"))
        );
    }

    #[test]
    fn a_message_becomes_a_new_inbound_from_the_customer_to_the_account() {
        let text = InboundKind::Message {
            text: Some("Bonjour".into()),
            attachments: Vec::new(),
        };
        assert_eq!(
            message(Platform::Instagram, text).to_new_inbound("t1", "ch1"),
            NewInbound {
                answers: Vec::new(),
                tenant_id: "t1".into(),
                channel: ChannelKind::Instagram,
                channel_id: Some("ch1".into()),
                from: "1254477777772919".into(),
                to: "106540352242922".into(),
                text: "Bonjour".into(),
                payload: None,
                media: None,
                provider_id: Some("m_IN".into()),
            }
        );
    }

    #[test]
    fn taps_give_their_title_as_text_and_keep_their_payload() {
        let tapped = message(
            Platform::Messenger,
            InboundKind::Postback {
                title: "Suivre ma commande".into(),
                payload: "TRACK".into(),
            },
        );
        assert_eq!(tapped.text(), "Suivre ma commande");
        assert_eq!(tapped.payload(), Some("TRACK"));
        assert_eq!(
            tapped.to_new_inbound("t1", "ch1").channel,
            ChannelKind::Messenger
        );
    }

    #[test]
    fn attachments_are_described_with_their_urls_after_the_text() {
        let photo = message(
            Platform::Messenger,
            InboundKind::Message {
                text: Some("Mon colis".into()),
                attachments: vec![
                    Attachment {
                        kind: "image".into(),
                        url: Some("https://scontent.example/1.jpg".into()),
                        title: None,
                    },
                    Attachment {
                        kind: "fallback".into(),
                        url: None,
                        title: None,
                    },
                ],
            },
        );
        assert_eq!(
            photo.text(),
            "Mon colis\n[image] https://scontent.example/1.jpg\n[fallback]"
        );
        assert_eq!(
            message(Platform::Instagram, InboundKind::Unsupported).text(),
            "[unsupported]"
        );
    }

    #[test]
    fn a_receipt_reports_each_message_it_names() {
        let receipt = Receipt {
            account_id: "106540352242922".into(),
            customer: "1254477777772919".into(),
            state: ReceiptState::Delivered,
            mids: vec!["m_A".into(), "m_B".into()],
            at: Timestamp::from_millisecond(1_458_668_856_253).unwrap(),
        };
        let reports = receipt.to_status_reports("t1", "ch1");
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[1].message, MessageRef::Provider("m_B".into()));
        assert_eq!(reports[1].status, MessageStatus::Delivered);
        assert_eq!(reports[1].at, Some(receipt.at));
    }
}
