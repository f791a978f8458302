//! The RCS channel: one RCS Business Messaging agent, reached through Google's RBM API
//! with a service account, sending texts, files, rich cards and carousels with
//! suggestions, and told by signed webhooks what users wrote and what became of what we
//! sent.
//!
//! One concept per module:
//! - [`config`] and [`service_account`]: the channel's `config`, checked once
//!   ([`RcsConfig::parse`]), with the service account's key parsed where it enters;
//! - [`jwt`] and [`auth`]: the signed assertion, and the access tokens it buys, cached
//!   until shortly before they expire;
//! - [`signature`]: the `X-Goog-Signature` check of a delivery's payload;
//! - [`handshake`]: the `clientToken`/`secret` answer of Google's webhook verification;
//! - [`webhook`] and [`notification`]: a delivery read into a user message or an event,
//!   and their conversion into the engine's [`NewInbound`] and [`StatusReport`];
//! - [`send`], [`card`] and [`suggestion`]: the request body for a content;
//! - [`errors`]: what an RBM API error answer means (the table is there);
//! - [`capability`]: the last hour's answers of "can this phone take RCS?";
//! - [`adapter`]: [`RcsChannel`], the [`ChannelAdapter`] that asks, then posts;
//! - `hook`: a call to the channel's `/hooks/` address, answered or read into events.
//!
//! Invariants:
//! - A delivery's payload is trusted only after [`signature::verify`] accepted its bytes
//!   as Google signed them (the decoded `message.data`); parsing comes after, and a
//!   delivery is read whole or refused whole, for this channel's agent only.
//! - Secrets (the service account's private key, the client token) never show in `Debug`
//!   output, and the client token is compared in constant time.
//! - Messages are sent with Relais's message id as Google's `messageId`, so a retry after
//!   a crash is never delivered twice, and statuses come back on our own id.
//! - A phone without RCS is a permanent `not_reachable`, so fallback moves on at once.
//! - What RCS cannot carry is refused as a permanent `bad_content` error, never cut:
//!   degrading content is the engine's job, this channel only guards.
//! - Only mapping happens here: which status wins and dedupe by message id are decided by
//!   the engine. Nothing here panics on input from outside, or touches the store.
//!
//! [`NewInbound`]: crate::event::NewInbound
//! [`StatusReport`]: crate::event::StatusReport
//! [`ChannelAdapter`]: crate::adapter::ChannelAdapter

pub mod adapter;
pub mod auth;
pub mod capability;
pub mod card;
pub mod config;
pub mod errors;
pub mod handshake;
mod hook;
pub(crate) mod http;
pub mod jwt;
pub mod notification;
pub mod send;
pub mod service_account;
pub mod signature;
pub mod suggestion;
pub mod webhook;

pub use adapter::RcsChannel;
pub use config::RcsConfig;
pub use errors::{ErrorCode, classify};
pub use handshake::{HandshakeError, Verification};
pub use hook::DeliveryError;
pub(crate) use hook::receive as receive_webhook;
pub use notification::{
    Event, EventKind, InboundKind, InboundMessage, Notification, SuggestionSource,
};
pub use send::request_body;
pub use service_account::ServiceAccount;
pub use signature::{SIGNATURE_HEADER, SignatureError};
pub use webhook::{Envelope, WebhookError, parse_payload, read_envelope};
