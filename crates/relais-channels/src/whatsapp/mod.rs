//! The WhatsApp Cloud API channel: one business phone number, reached through Meta's
//! Graph API, sending session messages and approved templates, and told by signed
//! webhooks what customers wrote and what became of what we sent.
//!
//! One concept per module:
//! - [`config`]: the channel's `config`, checked once ([`WhatsAppConfig::parse`]);
//! - [`signature`]: the `X-Hub-Signature-256` check of a webhook's raw body;
//! - [`handshake`]: the `hub.challenge` answer of Meta's subscription handshake;
//! - [`webhook`] and [`notification`]: a delivery read into inbound messages and
//!   statuses, and their conversion into the engine's [`NewInbound`] and
//!   [`StatusReport`];
//! - [`send`] and [`template_message`]: the request body for a content;
//! - [`errors`]: what a Graph API error answer means (the table is there);
//! - [`adapter`]: [`WhatsAppChannel`], the [`ChannelAdapter`] that posts them;
//! - [`templates`]: reading the business account's templates, page by page;
//! - `hook`: a call to the channel's `/hooks/` address, answered or read into events.
//!
//! Invariants:
//! - A webhook body is trusted only after [`signature::verify`] accepted the bytes as
//!   they arrived; parsing comes after, and a delivery is read whole or refused whole.
//! - Secrets (access token, app secret, verify token) never show in `Debug` output, and
//!   are compared in constant time.
//! - What WhatsApp cannot carry is refused as a permanent `bad_content` error, never cut:
//!   degrading content is the engine's job, this channel only guards.
//! - Only mapping happens here: which status wins, dedupe by wamid and the 24-hour window
//!   are decided by the engine.
//! - Nothing here panics on input from outside, and nothing here touches the store.
//!
//! [`NewInbound`]: crate::event::NewInbound
//! [`StatusReport`]: crate::event::StatusReport
//! [`ChannelAdapter`]: crate::adapter::ChannelAdapter

pub mod adapter;
pub mod config;
pub mod errors;
pub mod handshake;
mod hook;
pub mod notification;
pub mod send;
pub mod signature;
pub mod template_message;
pub mod templates;
pub mod webhook;

pub use adapter::{ClientError, WhatsAppChannel, http_client};
pub use config::WhatsAppConfig;
pub use errors::{ErrorCode, classify};
pub use handshake::{HandshakeError, SubscriptionRequest};
pub(crate) use hook::receive as receive_webhook;
pub use notification::{
    BusinessNumber, DeliveryState, InboundKind, InboundMessage, MediaType, Notification,
    ReplySource, StatusError, StatusUpdate,
};
pub use send::request_body;
pub use signature::{SIGNATURE_HEADER, SignatureError};
pub use templates::{
    ApprovedTemplate, TemplateCategory, TemplateStatus, TemplateSyncError, fetch_templates,
};
pub use webhook::{WebhookError, parse_webhook};
