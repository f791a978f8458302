//! The Twilio-compatible Messages API, as the engine sees it: Twilio's parameters mapped
//! onto the one accept path of `POST /v1/messages` (consent, quiet hours, fallback and
//! receipts apply unchanged), the tenant's account SID and auth token, the
//! `X-Twilio-Signature` of what Relais posts, the worker that calls each message's
//! `StatusCallback` back, and the one that posts inbound messages and sends TwiML replies.
//!
//! - [`accounts`] issues, shows and checks a tenant's account SID and auth token.
//! - [`create`] turns a `Messages.json` form into a [`crate::send::SendRequest`].
//! - [`signature`] computes `X-Twilio-Signature`.
//! - [`callbacks`] is the status callback worker.
//! - [`inbound`] posts inbound messages to the tenant's URL and sends TwiML replies.
//! - [`services`] keeps Messaging Services: pools of senders, sticky per recipient.
//! - [`manage`] fetches, redacts, cancels and deletes a message by its SID.

pub mod accounts;
pub mod callbacks;
pub mod create;
pub mod inbound;
pub mod manage;
pub mod services;
pub mod signature;

/// The API version of every path and callback.
pub const API_VERSION: &str = "2010-04-01";

/// A refusal in Twilio's terms: its error code, the HTTP status it comes with, and a
/// message. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum TwilioError {
    /// 20003: no credentials, or not these.
    #[error("Authenticate")]
    Unauthenticated,
    /// 20404: no such resource for this account (another tenant's message included).
    #[error("The requested resource {0} was not found")]
    NotFound(String),
    /// 21604.
    #[error("A 'To' phone number is required.")]
    ToRequired,
    /// 21211.
    #[error("Invalid 'To' Phone Number: {0}")]
    InvalidTo(String),
    /// 21603.
    #[error("A 'From' phone number is required.")]
    FromRequired,
    /// 21212.
    #[error("Invalid From Number (caller ID): {0}")]
    InvalidFrom(String),
    /// 21602.
    #[error("Message body is required.")]
    BodyRequired,
    /// 21610: the recipient opted out (or never opted in for marketing).
    #[error("Attempt to send to unsubscribed recipient")]
    Unsubscribed { message_id: String },
    /// 21620.
    #[error("Invalid media URL(s): {0}")]
    InvalidMedia(String),
    /// 21609.
    #[error("Invalid StatusCallback URL: {0}")]
    InvalidCallback(String),
    /// 21701: the tenant has no Messaging Service with this SID.
    #[error("The Messaging Service {0} does not exist")]
    UnknownService(String),
    /// 35111.
    #[error("SendAt timestamp is missing or incorrect format: {0}")]
    InvalidSendAt(String),
    /// 30409.
    #[error("This message cannot be canceled: it is {0}")]
    CannotCancel(String),
    /// 20009.
    #[error("Cannot delete or redact this message before it is complete (it is {0})")]
    InProgress(String),
    /// 20001: any other parameter that Relais cannot take, named.
    #[error("Invalid parameter {name}: {detail}")]
    InvalidParameter { name: String, detail: String },
    /// 20500: the store failed; nothing is known to have changed.
    #[error("Internal Server Error: {0}")]
    Internal(String),
}

impl TwilioError {
    /// Twilio's error code.
    pub fn code(&self) -> u32 {
        match self {
            TwilioError::Unauthenticated => 20003,
            TwilioError::NotFound(_) => 20404,
            TwilioError::ToRequired => 21604,
            TwilioError::InvalidTo(_) => 21211,
            TwilioError::FromRequired => 21603,
            TwilioError::InvalidFrom(_) => 21212,
            TwilioError::BodyRequired => 21602,
            TwilioError::Unsubscribed { .. } => 21610,
            TwilioError::InvalidMedia(_) => 21620,
            TwilioError::InvalidCallback(_) => 21609,
            TwilioError::UnknownService(_) => 21701,
            TwilioError::InvalidSendAt(_) => 35111,
            TwilioError::CannotCancel(_) => 30409,
            TwilioError::InProgress(_) => 20009,
            TwilioError::InvalidParameter { .. } => 20001,
            TwilioError::Internal(_) => 20500,
        }
    }

    /// The HTTP status Twilio answers it with.
    pub fn http_status(&self) -> u16 {
        match self {
            TwilioError::Unauthenticated => 401,
            TwilioError::NotFound(_) => 404,
            TwilioError::Internal(_) => 500,
            _ => 400,
        }
    }
}

impl From<relais_store::StoreError> for TwilioError {
    fn from(e: relais_store::StoreError) -> Self {
        TwilioError::Internal(e.to_string())
    }
}
