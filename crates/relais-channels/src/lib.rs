//! Relais's channels: the contract between the dispatcher and a channel ([`adapter`]),
//! and one module per channel.
//!
//! An adapter sends what the engine hands it and tells the engine what its provider
//! reported; the engine never asks which channel it talks to, and this crate knows
//! nothing of the store or of the engine.

pub mod adapter;
pub mod apns;
mod config_keys;
pub mod configured;
pub mod email;
pub mod event;
pub mod fcm;
mod json_node;
pub mod messenger;
pub mod pace;
pub mod rcs;
mod secret;
pub mod sim;
pub mod smpp;
pub mod telegram;
pub mod viber;
pub mod webchat;
pub mod webpush;
pub mod whatsapp;

pub use adapter::{
    ChannelAdapter, DEFAULT_IN_FLIGHT, OutboundMessage, ProviderAck, Receipt, SendError,
};
pub use configured::{
    ChannelEvent, ChannelEvents, ChannelIdentity, ConfigError, MailReader, Mailbox, Started,
    WebhookAnswer, WebhookError, WebhookReader, WebhookRequest, check_config, kind_of,
    routing_rules, start, takes_webhooks,
};
pub use event::{Confirm, ConsentReport, MessageRef, NewInbound, StatusReport};
