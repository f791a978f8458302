//! The e-mail channel: one SMTP account that sends; the mail people write back (and the
//! bounces) comes from a relay that posts it to the channel's `/hooks/` address, or over
//! SMTP to the built-in listener.
//!
//! One concept per module:
//! - [`config`]: the channel's `config`, checked once ([`EmailConfig::parse`]);
//! - [`render`]: a content as a subject, a text part and an HTML part;
//! - [`dkim`]: DKIM signatures (rsa-sha256, relaxed/relaxed) with the channel's key;
//! - [`message`]: the message on the wire, its `Message-ID` and headers;
//! - [`adapter`]: [`EmailChannel`], the [`ChannelAdapter`] that sends over SMTP;
//! - [`inbound`]: a raw message posted by the relay, read as a reply or a bounce;
//! - `hook`: a relay's call to the channel's `/hooks/` address, checked and read, and
//!   what any raw mail for the channel becomes;
//! - [`smtp_listener`]: a small SMTP server that takes mail itself and hands it on;
//! - [`unsubscribe`]: the signed token of a marketing mail's one-click unsubscribe link.
//!
//! Invariants:
//! - The provider id of a sent message is its `Message-ID` (without brackets), chosen by
//!   Relais before sending, so a bounce can name the message it is about.
//! - A relay's call is read only after its bearer token matched the channel's
//!   `inbound_secret` (compared in constant time).
//! - Secrets (the SMTP password, the inbound secret, the DKIM key) never show in `Debug`
//!   output, in an error or in a log line.
//! - Nothing here panics on input from outside, and nothing here touches the store.
//!
//! [`ChannelAdapter`]: crate::adapter::ChannelAdapter

pub mod adapter;
pub mod config;
pub mod dkim;
mod hook;
pub mod inbound;
pub mod message;
pub mod render;
pub mod smtp_listener;
pub mod unsubscribe;

pub use adapter::EmailChannel;
pub use config::{EmailConfig, TlsMode};
pub use dkim::DkimKey;
pub(crate) use hook::{events_of_mail, receive as receive_webhook};
pub use inbound::{Bounce, Mail, MailError, Reply, parse_mail};
pub use message::{Composed, compose};
pub use render::{Rendered, render};

/// The `kind` of a configured e-mail channel.
pub const KIND: &str = "email";
