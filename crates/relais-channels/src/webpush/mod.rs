//! The Web Push channel: notifications pushed to browsers' push subscriptions, encrypted
//! for each subscription (RFC 8291) and signed with the channel's VAPID key (RFC 8292).
//!
//! One concept per module:
//! - [`config`]: the channel's `config`, checked once ([`WebpushConfig::parse`]);
//! - [`vapid`]: the P-256 key and the ES256 JWT of the `Authorization` header;
//! - [`ece`]: RFC 8291 / RFC 8188 `aes128gcm` encryption of one message;
//! - [`subscription`]: a `webpush` address, the browser's subscription JSON, checked;
//! - [`payload`]: the notification JSON a content becomes;
//! - [`answer`]: what a push service's answer means (the table is there);
//! - [`report`]: a browser's report that it showed or a person clicked a notification;
//! - [`opt_in`]: the key a page subscribes with, and its subscription as an identity;
//! - [`adapter`]: [`WebpushChannel`], the [`ChannelAdapter`] that sends.
//!
//! Invariants:
//! - Every message has a fresh ephemeral key and salt; only tests inject them.
//! - The private key never shows in `Debug` output, an error or a log line.
//! - What a notification cannot show is refused as a permanent `bad_content` error,
//!   never cut: degrading content is the engine's job, with Web Push's capabilities.
//! - Push services send no delivery or read receipts: a message ends `sent`, unless the
//!   page's service worker reports the notification shown (`delivered`) or clicked
//!   (`read`) with the token the notification carried. A subscription that is gone
//!   (404, 410) fails as `subscription_gone`.
//! - Nothing here panics on input from outside, and nothing here touches the store.
//!
//! [`ChannelAdapter`]: crate::adapter::ChannelAdapter

pub mod adapter;
pub mod answer;
pub mod config;
pub mod ece;
pub mod opt_in;
pub mod payload;
pub mod report;
pub mod subscription;
pub mod vapid;

pub use adapter::WebpushChannel;
pub use config::WebpushConfig;
pub use ece::{EceError, ReceiverKeys, encrypt, encrypt_with};
pub use report::ReportKey;
pub(crate) use report::receive as receive_report;
pub use subscription::{Subscription, SubscriptionError};
pub use vapid::VapidKey;

/// A Web Push channel's capabilities: with browsers' reports (`reports`: a `public_url`
/// is configured), reads come back and reply buttons are answers.
pub fn capabilities(reports: bool) -> relais_core::content::ChannelCapabilities {
    let mut capabilities = *relais_core::content::ChannelCapabilities::for_kind(
        relais_core::channel::ChannelKind::Webpush,
    );
    if reports {
        capabilities.read_receipts = true;
        capabilities.buttons.reply = true;
    }
    capabilities
}

/// The `kind` of a configured Web Push channel.
pub const KIND: &str = "webpush";
