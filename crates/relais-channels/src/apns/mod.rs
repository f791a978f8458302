//! The APNs channel: push notifications to iOS apps through Apple's HTTP/2 provider API,
//! with token-based authentication (an ES256 JWT signed with the team's `.p8` key).
//! Outbound only: a push has no answer.
//!
//! One concept per module:
//! - [`config`]: the channel's `config`, checked once ([`ApnsConfig::parse`]);
//! - [`jwt`]: the provider token, and when it is replaced;
//! - [`send`]: the payload for a content, and the device token check;
//! - [`errors`]: what an APNs error answer means (the table is there);
//! - [`adapter`]: [`ApnsChannel`], the [`ChannelAdapter`] that sends.
//!
//! Invariants:
//! - The `.p8` key never shows in `Debug` output or in an error.
//! - A provider token lives at most 50 minutes and is never replaced more often than
//!   every 20 minutes, as Apple requires.
//! - A dead device token is a permanent `subscription_gone`, never retried.
//! - Nothing here panics on input from outside, and nothing here touches the store.
//!
//! [`ChannelAdapter`]: crate::adapter::ChannelAdapter

pub mod adapter;
pub mod config;
pub mod errors;
pub mod jwt;
pub mod send;

pub use adapter::ApnsChannel;
pub use config::ApnsConfig;

/// The `kind` of a configured APNs key and app.
pub const KIND: &str = "apns";
