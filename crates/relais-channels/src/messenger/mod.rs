//! The Messenger and Instagram channels: one Facebook Page, or one Instagram professional
//! account, reached through Meta's Send API, and told by signed webhooks what customers
//! wrote and what became of what we sent. Both platforms share the API and the webhook
//! format; [`Platform`] holds what differs (the channel kind, the webhook `object`, the
//! limits).
//!
//! One concept per module:
//! - [`platform`]: Messenger or Instagram, and what that decides;
//! - [`config`]: the channel's `config`, checked once ([`MessengerConfig::parse`]);
//! - [`webhook`] and [`notification`]: a delivery read into messages, receipts and
//!   watermarks, and their conversion into the engine's [`NewInbound`] and
//!   [`StatusReport`];
//! - [`tag`]: the messaging type of a send, and which one an agent's reply takes;
//! - [`send`] and [`structured`]: the request body for a content;
//! - [`errors`]: what a Send API error answer means (the table is there);
//! - [`adapter`]: [`MessengerChannel`], the [`ChannelAdapter`] that posts them;
//! - `hook`: a call to the channel's `/hooks/` address, answered or read into events.
//!
//! The webhook signature (`X-Hub-Signature-256`) and the subscription handshake are
//! Meta's, the same as WhatsApp's: they are used from [`crate::whatsapp::signature`] and
//! [`crate::whatsapp::handshake`].
//!
//! Invariants:
//! - A webhook body is trusted only after the signature check accepted the bytes as they
//!   arrived; parsing comes after, and a delivery is read whole or refused whole, with
//!   every entry about this channel's Page or Instagram account.
//! - Secrets (access token, app secret, verify token) never show in `Debug` output, and
//!   are compared in constant time.
//! - What the platform cannot carry is refused as a permanent `bad_content` error, never
//!   cut: degrading content is the engine's job, this channel only guards, with the same
//!   capabilities the engine degrades with.
//! - Our own sends coming back as echoes are never read as customers' messages.
//! - Only mapping happens here: which status wins, dedupe by `mid` and the 24-hour window
//!   are decided by the engine.
//! - Nothing here panics on input from outside, and nothing here touches the store.
//!
//! [`NewInbound`]: crate::event::NewInbound
//! [`StatusReport`]: crate::event::StatusReport
//! [`ChannelAdapter`]: crate::adapter::ChannelAdapter

pub mod adapter;
pub mod config;
pub mod errors;
mod hook;
pub mod notification;
pub mod platform;
pub mod send;
pub mod structured;
pub mod tag;
pub mod webhook;

pub use adapter::{AUDIO_VIDEO_MAX_RATE, MessengerChannel, appsecret_proof};
pub use config::MessengerConfig;
pub use errors::{ErrorCode, classify};
pub(crate) use hook::receive as receive_webhook;
pub use notification::{
    Attachment, Entry, InboundKind, InboundMessage, Notification, Receipt, ReceiptState, Watermark,
};
pub use platform::Platform;
pub use send::request_body;
pub use tag::{MessagingTag, messaging_tag};
pub use webhook::{WebhookError, parse_webhook};

impl MessengerConfig {
    /// Checks a webhook's `X-Hub-Signature-256` header against this channel's app secret.
    pub fn verify_signature(
        &self,
        header: Option<&str>,
        body: &[u8],
    ) -> Result<(), crate::whatsapp::SignatureError> {
        crate::whatsapp::signature::verify(self.app_secret(), header, body)
    }

    /// The challenge to answer Meta's subscription handshake with, for this channel.
    pub fn answer_subscription(
        &self,
        request: &crate::whatsapp::SubscriptionRequest,
    ) -> Result<String, crate::whatsapp::HandshakeError> {
        crate::whatsapp::handshake::answer(self.verify_token(), request)
    }
}
