//! The contract between the dispatcher and a channel: what an adapter is given, what it
//! answers, what it reports later, and what it says about itself (ready to send, how many
//! messages it may have in flight).

use async_trait::async_trait;
use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::content::Content;
use relais_core::retry::ErrorClass;
use relais_core::status::MessageStatus;

/// One message handed to an adapter, its content already degraded for the channel.
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    pub message_id: String,
    pub tenant_id: String,
    pub channel: ChannelKind,
    pub to: String,
    /// The sender the message shows; `None` leaves it to the channel's configuration.
    pub from: Option<String>,
    pub content: Content,
    /// Why it is sent: a marketing mail carries a one-click unsubscribe link.
    pub purpose: relais_core::consent::Purpose,
    /// A human agent's reply to a customer who last wrote at this instant, on a channel
    /// configured to give agents a longer window (capabilities'
    /// `human_agent_window_hours`); `None` for everything else (API sends, bots,
    /// notifications). Messenger sends it with the `HUMAN_AGENT` tag once 24 h have passed.
    pub human_agent_since: Option<Timestamp>,
    /// 1 for the first attempt on this channel.
    pub attempt: i64,
    pub now: Timestamp,
}

/// The provider took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderAck {
    pub provider_id: String,
}

/// The provider did not take the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct SendError {
    pub class: ErrorClass,
    /// A stable code for the event log (`throttled`, `invalid_number`, …).
    pub code: String,
    pub reason: String,
    /// The provider said the address itself is dead for good (a push subscription the
    /// browser dropped, an app uninstalled): the engine removes it from the contact, so
    /// that nothing is sent to it again. Set only by [`SendError::address_gone`].
    pub address_gone: bool,
}

/// The code of an error whose address is gone for good ([`SendError::address_gone`]).
pub const ADDRESS_GONE: &str = "subscription_gone";

impl SendError {
    pub fn new(class: ErrorClass, code: impl Into<String>, reason: impl Into<String>) -> Self {
        SendError {
            class,
            code: code.into(),
            reason: reason.into(),
            address_gone: false,
        }
    }
    pub fn transient(code: impl Into<String>, reason: impl Into<String>) -> Self {
        SendError::new(ErrorClass::Transient, code, reason)
    }
    pub fn permanent(code: impl Into<String>, reason: impl Into<String>) -> Self {
        SendError::new(ErrorClass::Permanent, code, reason)
    }
    /// The message did not leave: the channel has no live connection. It waits for the
    /// channel without spending an attempt.
    pub fn not_sent(code: impl Into<String>, reason: impl Into<String>) -> Self {
        SendError::new(ErrorClass::NotSent, code, reason)
    }
    /// The address will never work again (Web Push 404/410, FCM `UNREGISTERED`, APNs 410
    /// `Unregistered`): permanent, code [`ADDRESS_GONE`], and the engine drops the
    /// address from the contact.
    pub fn address_gone(reason: impl Into<String>) -> Self {
        SendError {
            address_gone: true,
            ..SendError::permanent(ADDRESS_GONE, reason)
        }
    }
}

/// A status report from a provider (a DLR, a status webhook, a simulated phone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub message_id: String,
    pub status: MessageStatus,
    pub at: Timestamp,
    pub detail: Option<String>,
}

/// Messages an adapter may have sent and not yet recorded, unless it says otherwise: what
/// a crash may send twice on a channel that takes no client reference.
pub const DEFAULT_IN_FLIGHT: usize = 1000;

/// A limit on how many distinct recipients a channel may start conversations with over a
/// moving window (WhatsApp's messaging limit: so many unique customers per 24 h, counted
/// for business-initiated messages only). Past it the provider refuses; the dispatcher
/// makes such messages wait instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipientLimit {
    pub recipients: u64,
    pub window: jiff::SignedDuration,
}

/// One channel's connection to its provider. Every channel has one; the engine never asks
/// which channel it talks to.
#[async_trait]
pub trait ChannelAdapter: Send + Sync {
    fn kind(&self) -> ChannelKind;
    /// What a message is degraded to before it comes here: its kind's capabilities,
    /// unless its configuration gives it more (a Web Push channel whose service worker
    /// reports clicks takes reply buttons).
    fn capabilities(&self) -> relais_core::content::ChannelCapabilities {
        *relais_core::content::ChannelCapabilities::for_kind(self.kind())
    }
    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError>;
    /// Receipts that became due by `now` (adapters that are told by webhooks return none).
    async fn poll_receipts(&self, _now: Timestamp) -> Vec<Receipt> {
        Vec::new()
    }
    /// Called before the outcomes of the sends it answered are written: an adapter that
    /// keeps a log (the sim's phones) writes it in one go here.
    async fn flush(&self) {}
    /// Whether the channel can send now. `false` (no live connection to the provider)
    /// keeps its messages in the outbox, without spending attempts, until it is `true`.
    fn is_ready(&self) -> bool {
        true
    }
    /// The most messages the dispatcher may have sent through this adapter and not yet
    /// recorded as answered: the most a `kill -9` can make it send again. An SMPP channel
    /// answers its window.
    fn max_in_flight(&self) -> usize {
        DEFAULT_IN_FLIGHT
    }
    /// The channel's limit on recipients of business-initiated messages (a provider
    /// template sent outside the recipient's customer-service window), if it has one.
    fn recipient_limit(&self) -> Option<RecipientLimit> {
        None
    }
    /// Stops the channel (closes its connections); called when it is removed or replaced.
    fn close(&self) {}
}
