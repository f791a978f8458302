//! The Telegram channel: one bot, reached through the Bot API, and told by webhook
//! updates what people wrote and which buttons they tapped.
//!
//! One concept per module:
//! - [`config`]: the channel's `config`, checked once ([`TelegramConfig::parse`]);
//! - [`send`]: the Bot API method and body for a content;
//! - [`errors`]: what a Bot API error answer means (the table is there);
//! - [`api`]: [`BotApi`], one bot's calls, `setWebhook` and `answerCallbackQuery`;
//! - [`adapter`]: [`TelegramChannel`], the [`ChannelAdapter`] that sends;
//! - [`update`]: one webhook update read into an inbound message;
//! - `hook`: a call to the channel's `/hooks/` address, checked and read into events.
//!
//! Invariants:
//! - An update is read only after its `X-Telegram-Bot-Api-Secret-Token` matched the
//!   channel's `secret_token` (compared in constant time).
//! - Secrets (the bot token, the secret token) never show in `Debug` output, in an
//!   error or in a log line, though the token is part of every Bot API URL.
//! - What Telegram cannot carry is refused as a permanent `bad_content` error, never
//!   cut: degrading content is the engine's job, with Telegram's capabilities.
//! - Telegram sends no delivery or read receipts to bots: a message ends `sent`.
//! - Nothing here panics on input from outside, and nothing here touches the store.
//!
//! [`ChannelAdapter`]: crate::adapter::ChannelAdapter

pub mod adapter;
pub mod api;
pub mod config;
pub mod errors;
mod hook;
pub mod send;
pub mod update;

pub use adapter::TelegramChannel;
pub use api::BotApi;
pub use config::TelegramConfig;
pub use errors::{ErrorCode, Refusal, classify};
pub use hook::SECRET_HEADER;
pub(crate) use hook::receive as receive_webhook;
pub use send::{ApiCall, request};
pub use update::{Inbound, UpdateError, parse_update};

/// The `kind` of a configured Telegram bot.
pub const KIND: &str = "telegram";

/// Registers the channel's webhook in the background (`setWebhook`), when its config
/// names this server's `public_url`; a failure is logged, and the channel works anyway
/// once the operator has called `setWebhook` by hand.
pub(crate) fn register_webhook(api: std::sync::Arc<BotApi>, channel_id: &str) {
    let public_url = api.config().public_url().map(str::to_owned);
    crate::configured::register_hook_in_background(
        "Telegram",
        public_url.as_deref(),
        channel_id,
        "the bot gets no updates until it is set",
        move |url| async move { api.set_webhook(&url).await.map_err(|refusal| refusal.error) },
    );
}
