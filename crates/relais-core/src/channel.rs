//! Channel kinds: the transports Relais can reach a person on.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The kind of a channel. An identity's channel and a configured channel share this list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Sms,
    Whatsapp,
    Rcs,
    Messenger,
    Instagram,
    Telegram,
    Viber,
    Webpush,
    Fcm,
    Apns,
    Email,
    Webchat,
    Sim,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 13] = [
        ChannelKind::Sms,
        ChannelKind::Whatsapp,
        ChannelKind::Rcs,
        ChannelKind::Messenger,
        ChannelKind::Instagram,
        ChannelKind::Telegram,
        ChannelKind::Viber,
        ChannelKind::Webpush,
        ChannelKind::Fcm,
        ChannelKind::Apns,
        ChannelKind::Email,
        ChannelKind::Webchat,
        ChannelKind::Sim,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Sms => "sms",
            ChannelKind::Whatsapp => "whatsapp",
            ChannelKind::Rcs => "rcs",
            ChannelKind::Messenger => "messenger",
            ChannelKind::Instagram => "instagram",
            ChannelKind::Telegram => "telegram",
            ChannelKind::Viber => "viber",
            ChannelKind::Webpush => "webpush",
            ChannelKind::Fcm => "fcm",
            ChannelKind::Apns => "apns",
            ChannelKind::Email => "email",
            ChannelKind::Webchat => "webchat",
            ChannelKind::Sim => "sim",
        }
    }

    /// Channels whose address is a phone number in E.164. (A Viber bot writes to a user
    /// id, such as `01234567890A=`, never to a number.)
    pub fn is_phone_addressed(self) -> bool {
        matches!(
            self,
            ChannelKind::Sms | ChannelKind::Whatsapp | ChannelKind::Rcs | ChannelKind::Sim
        )
    }
}

impl ChannelKind {
    /// The kinds a sandbox server has: simulated phones, no provider.
    pub const SANDBOXES: &'static [ChannelKind] = &[ChannelKind::Sim];

    /// The kind a bare phone number is kept under as a contact's identity: SMS reaches
    /// every phone, and the other phone channels find the number there.
    pub const PHONE_NUMBER: ChannelKind = ChannelKind::Sms;

    /// Simulated phones (the sandbox): they stand in for phones, SMS segments included,
    /// and are never picked for a contact who has a real channel.
    pub fn is_sandbox(self) -> bool {
        Self::SANDBOXES.contains(&self)
    }

    /// How long after the customer's last message a free-form reply may be sent, on a
    /// channel that limits it (WhatsApp, Messenger and Instagram: 24 hours); past it only
    /// an approved template may go. `None`: replies are never closed.
    pub fn customer_service_window(self) -> Option<jiff::SignedDuration> {
        match self {
            ChannelKind::Whatsapp | ChannelKind::Messenger | ChannelKind::Instagram => {
                Some(jiff::SignedDuration::from_hours(24))
            }
            _ => None,
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown channel kind `{0}`; expected one of sms, whatsapp, rcs, messenger, instagram, telegram, viber, webpush, fcm, apns, email, webchat, sim"
)]
pub struct UnknownChannelKind(pub String);

impl FromStr for ChannelKind {
    type Err = UnknownChannelKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChannelKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownChannelKind(s.to_owned()))
    }
}
