//! The FCM channel: push notifications to Android (and iOS or web apps using Firebase)
//! through the FCM HTTP v1 API, authenticated by a Google service account. Outbound
//! only: a push has no answer.
//!
//! One concept per module:
//! - [`config`]: the channel's `config`, checked once ([`FcmConfig::parse`]);
//! - [`send`]: the `messages:send` body for a content, and the device token check;
//! - [`errors`]: what an FCM error answer means (the table is there);
//! - [`adapter`]: [`FcmChannel`], the [`ChannelAdapter`] that sends.
//!
//! The service account, its signed assertion and the cached access token are the RCS
//! channel's ([`crate::rcs::ServiceAccount`], [`crate::rcs::auth::TokenSource`]), asked
//! for FCM's scope.
//!
//! Invariants:
//! - The private key never shows in `Debug` output or in an error.
//! - One token exchange at a time; a token is reused until shortly before it expires.
//! - A dead device token is a permanent `subscription_gone`, never retried.
//! - Nothing here panics on input from outside, and nothing here touches the store.
//!
//! [`ChannelAdapter`]: crate::adapter::ChannelAdapter

pub mod adapter;
pub mod config;
pub mod errors;
pub mod send;

pub use adapter::FcmChannel;
pub use config::FcmConfig;
pub use errors::{Refusal, classify};
pub use send::request_body;

/// The `kind` of a configured FCM project.
pub const KIND: &str = "fcm";
