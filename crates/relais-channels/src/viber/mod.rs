//! The Viber channel: one bot (a Viber bot account), reached through the REST bot API,
//! and told by signed callbacks what people wrote, which keys they tapped, and which
//! messages were delivered, seen or failed.
//!
//! One concept per module:
//! - [`config`]: the channel's `config`, checked once ([`ViberConfig::parse`]);
//! - [`send`]: the `send_message` body for a content (text, picture, file, location,
//!   rich media, keyboard);
//! - [`errors`]: what a nonzero `status` means (the table is there);
//! - [`api`]: [`ViberApi`], one bot's calls, `send_message` and `set_webhook`;
//! - [`adapter`]: [`ViberChannel`], the [`ChannelAdapter`] that sends;
//! - [`callback`]: one callback read into an inbound message or a status;
//! - `hook`: a call to the channel's `/hooks/` address, checked and read into events.
//!
//! Invariants:
//! - A callback is read only after its `X-Viber-Content-Signature` matched the HMAC of
//!   its raw body under the channel's `auth_token` (compared in constant time).
//! - The token never shows in `Debug` output, in an error or in a log line.
//! - What Viber cannot carry is refused as a permanent `bad_content` error, never cut:
//!   degrading content is the engine's job, with Viber's capabilities.
//! - Nothing here panics on input from outside, and nothing here touches the store.
//!
//! [`ChannelAdapter`]: crate::adapter::ChannelAdapter

pub mod adapter;
pub mod api;
pub mod callback;
pub mod config;
pub mod errors;
mod hook;
pub mod send;

pub use adapter::ViberChannel;
pub use api::{AUTH_HEADER, ViberApi};
pub use callback::{Callback, CallbackError, parse_callback};
pub use config::ViberConfig;
pub use errors::{ErrorCode, classify};
pub(crate) use hook::receive as receive_webhook;
pub use hook::{SIGNATURE_HEADER, sign};
pub use send::request;

/// The `kind` of a configured Viber bot.
pub const KIND: &str = "viber";

/// Registers the channel's webhook in the background (`set_webhook`), when its config
/// names this server's `public_url`; a failure is logged, and the channel works anyway
/// once the operator has called `set_webhook` by hand. Viber checks the address with a
/// signed `webhook` callback, which the channel answers 200.
pub(crate) fn register_webhook(api: std::sync::Arc<ViberApi>, channel_id: &str) {
    let public_url = api.config().public_url().map(str::to_owned);
    crate::configured::register_hook_in_background(
        "Viber",
        public_url.as_deref(),
        channel_id,
        "the bot can neither send nor receive until it is set",
        move |url| async move { api.set_webhook(&url).await },
    );
}
