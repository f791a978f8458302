//! Messages, their event log, and the outbox: the one queue of work to do.
//!
//! A message is written with its first events and its outbox row in one transaction, so an
//! accepted message is never lost and never sits without work scheduled for it. Workers
//! claim outbox rows with a lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: its single
//! writer); a row whose lease ran out is claimable again. Every outcome of an attempt
//! (the provider's acknowledgement, a retry, a failure, a move to the next channel) is
//! written with the outbox row's completion in one transaction ([`Settlement`]), so a
//! message the provider acknowledged is never sent again.
//!
//! Status only moves forward: every status change goes through
//! [`relais_core::status::advance`], inside the transaction that reads the current status.

use crate::StoreResult;
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use relais_core::campaign::CampaignLabel;
use relais_core::circuit::{Circuit, CircuitBreaker, Reachability};
use relais_core::contact::Identity;
use relais_core::status::MessageStatus;

/// How an event is kept in its message's `events` column: one compact JSON array per
/// message, in order, appended to by text concatenation in SQL so that a status change
/// never reads the log back (see `LogBatch::write`).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredEvent<'a> {
    status: std::borrow::Cow<'a, str>,
    /// Microseconds since the Unix epoch.
    at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    reason: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    detail: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attempt: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    channel: Option<std::borrow::Cow<'a, str>>,
}

/// `events` as a compact JSON array (no spaces, so arrays concatenate as text).
fn events_json<'e>(events: impl IntoIterator<Item = &'e MessageEvent>) -> String {
    use std::borrow::Cow;
    let stored: Vec<StoredEvent<'_>> = events
        .into_iter()
        .map(|e| StoredEvent {
            status: Cow::Borrowed(e.status.as_str()),
            at: crate::micros(e.at),
            reason: e.reason.as_deref().map(Cow::Borrowed),
            detail: e.detail.as_deref().map(Cow::Borrowed),
            attempt: e.attempt,
            channel: e.channel.as_deref().map(Cow::Borrowed),
        })
        .collect();
    // A Vec of plain structs always serializes.
    serde_json::to_string(&stored).unwrap_or_else(|_| "[]".to_owned())
}

/// The event log of a message as stored in its `events` column.
fn events_from_db(message_id: &str, text: &str) -> crate::StoreResult<Vec<MessageEvent>> {
    let corrupt =
        |e: String| crate::StoreError::Corrupt(format!("events of message {message_id}: {e}"));
    let stored: Vec<StoredEvent<'_>> =
        serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    stored
        .into_iter()
        .map(|e| {
            Ok(MessageEvent {
                status: e.status.parse().map_err(
                    |e: relais_core::status::UnknownMessageStatus| corrupt(e.to_string()),
                )?,
                at: crate::from_micros(e.at)?,
                reason: e.reason.map(std::borrow::Cow::into_owned),
                detail: e.detail.map(std::borrow::Cow::into_owned),
                attempt: e.attempt,
                channel: e.channel.map(std::borrow::Cow::into_owned),
            })
        })
        .collect()
}

/// One entry of a message's event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEvent {
    pub status: MessageStatus,
    pub at: Timestamp,
    /// A stable code saying why (`opted_out`, `quiet_hours`, `provider_error`, …).
    pub reason: Option<String>,
    /// Words for a person.
    pub detail: Option<String>,
    /// The attempt number on the channel, from 1.
    pub attempt: Option<i64>,
    pub channel: Option<String>,
}

impl MessageEvent {
    pub fn new(status: MessageStatus, at: Timestamp) -> Self {
        MessageEvent {
            status,
            at,
            reason: None,
            detail: None,
            attempt: None,
            channel: None,
        }
    }
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
    pub fn attempt(mut self, attempt: i64) -> Self {
        self.attempt = Some(attempt);
        self
    }
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }
}

/// A message to store, as the accept path built it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub id: String,
    pub tenant_id: String,
    pub contact_id: Option<String>,
    pub to_address: String,
    /// The channel of the current step of the chain.
    pub channel: String,
    pub step: i64,
    /// The fallback chain as the API wrote it (a JSON list).
    pub chain: serde_json::Value,
    /// The personalised content (JSON, the API's `content` shape).
    pub content: serde_json::Value,
    pub purpose: String,
    /// Who the message says it comes from (`from` in the API); `None` leaves it to the
    /// channel (an SMPP channel's `source_addr`).
    pub sender: Option<String>,
    /// The campaign label the request gave (`campaign` in the API).
    pub campaign: Option<CampaignLabel>,
    /// A human agent's reply on a channel that gives agents a longer window: when the
    /// customer last wrote there. `None` for every other message.
    pub human_agent_since: Option<Timestamp>,
    pub status: MessageStatus,
    pub segments: Option<i64>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub send_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    /// The first entries of the event log, in order.
    pub events: Vec<MessageEvent>,
    /// When the outbox row is due; `None` writes no outbox row (a rejected message).
    pub due_at: Option<Timestamp>,
}

impl NewMessage {
    /// The outbox item a dispatcher would load for this message once it is stored with
    /// `lease`, built without reading it back (timestamps at the store's microsecond
    /// precision). `None` for a message with no outbox row.
    pub fn to_outbox_item(&self, lease: &Lease) -> Option<OutboxItem> {
        let due_at = self.due_at?;
        if !lease.covers(Some(due_at), &self.channel) {
            return None;
        }
        let stored = |t: Timestamp| Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t);
        Some(OutboxItem {
            message: Message {
                id: self.id.clone(),
                tenant_id: self.tenant_id.clone(),
                contact_id: self.contact_id.clone(),
                to_address: self.to_address.clone(),
                channel: self.channel.clone(),
                step: self.step,
                chain: self.chain.clone(),
                content: self.content.clone(),
                purpose: self.purpose.clone(),
                sender: self.sender.clone(),
                campaign: self.campaign.clone(),
                human_agent_since: self.human_agent_since.map(stored),
                status: self.status,
                segments: self.segments,
                provider_id: None,
                idempotency_key: self.idempotency_key.clone(),
                request_hash: self.request_hash.clone(),
                send_at: self.send_at.map(stored),
                expires_at: self.expires_at.map(stored),
                created_at: stored(self.created_at),
                updated_at: stored(self.created_at),
            },
            due_at: stored(due_at),
            attempts: 0,
            phase: OutboxPhase::Send,
            lease_until: stored(lease.until),
        })
    }
}

/// A lease written with the outbox rows at insert: the rows due by `due_by` go to
/// `owner`'s dispatcher straight from the accept path instead of being claimed, except
/// those of the lanes in `closed` (channels that cannot take work now).
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub owner: String,
    pub until: Timestamp,
    pub due_by: Timestamp,
    pub closed: Vec<String>,
}

impl Lease {
    /// Whether a message due at `due_at` on `channel` is leased on insert.
    pub fn covers(&self, due_at: Option<Timestamp>, channel: &str) -> bool {
        due_at.is_some_and(|due| due <= self.due_by) && !self.closed.iter().any(|c| c == channel)
    }
}

/// The lane of the outbox rows that are fallback timers (they need no channel).
pub const WATCH_LANE: &str = "~watch";

/// The answer given to a batch request made with an Idempotency-Key, kept to answer its
/// retries the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRequest {
    pub tenant_id: String,
    pub idempotency_key: String,
    /// The digest of the request's body: another body with the same key is a conflict.
    pub request_hash: String,
    /// The answer's JSON body.
    pub response: String,
    pub created_at: Timestamp,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: String,
    pub tenant_id: String,
    pub contact_id: Option<String>,
    pub to_address: String,
    pub channel: String,
    pub step: i64,
    pub chain: serde_json::Value,
    pub content: serde_json::Value,
    pub purpose: String,
    pub sender: Option<String>,
    pub campaign: Option<CampaignLabel>,
    /// See [`NewMessage::human_agent_since`].
    pub human_agent_since: Option<Timestamp>,
    pub status: MessageStatus,
    pub segments: Option<i64>,
    pub provider_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub send_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MessageWithEvents {
    pub message: Message,
    pub events: Vec<MessageEvent>,
}

/// What an outbox row asks for when it comes due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxPhase {
    /// Send the message on its current step's channel.
    Send,
    /// A fallback timer: check whether the current step was delivered (or read) in time.
    Watch,
}

impl OutboxPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxPhase::Send => "send",
            OutboxPhase::Watch => "watch",
        }
    }
    fn parse(s: &str) -> StoreResult<Self> {
        match s {
            "send" => Ok(OutboxPhase::Send),
            "watch" => Ok(OutboxPhase::Watch),
            other => Err(crate::StoreError::Corrupt(format!(
                "outbox phase `{other}`"
            ))),
        }
    }
}

/// A claimed outbox row with its message.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub message: Message,
    pub due_at: Timestamp,
    /// Attempts already made on the current step.
    pub attempts: i64,
    pub phase: OutboxPhase,
    pub lease_until: Timestamp,
}

impl OutboxItem {
    /// The lane that takes this row: the channel of a message to send, [`WATCH_LANE`]
    /// for a fallback timer.
    pub fn lane(&self) -> &str {
        match self.phase {
            OutboxPhase::Send => &self.message.channel,
            OutboxPhase::Watch => WATCH_LANE,
        }
    }
}

/// What becomes of the outbox row when an attempt is settled.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboxNext {
    /// No more work: the row is deleted.
    Done,
    /// Work again at `due_at` (a retry, a fallback timer, a rate-limit delay); the lease is
    /// released.
    Reschedule {
        due_at: Timestamp,
        phase: OutboxPhase,
        attempts: i64,
    },
}

/// Moves a message to another step of its chain.
#[derive(Debug, Clone, PartialEq)]
pub struct StepMove {
    pub step: i64,
    pub channel: String,
    /// The address on that channel: the same phone number from one phone channel to
    /// another, the contact's own address on another kind (a push subscription's fallback
    /// to SMS).
    pub to_address: String,
    pub content: serde_json::Value,
    pub segments: Option<i64>,
}

/// Everything an attempt's outcome writes, in one transaction with the outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    /// The `sending` mark of the attempt this settles, stamped when the attempt started;
    /// offered to the status before everything else, and logged even when a receipt that
    /// overtook the acknowledgement already moved the status past it.
    pub sending: Option<MessageEvent>,
    /// Offered to the message's status through `advance`; its event is written only if
    /// the status moved, except a `sent` overtaken by the provider's receipt: the status
    /// stays, the acknowledgement is still logged.
    pub status: Option<MessageEvent>,
    /// Written to the event log as they are (attempt failures, retries), without touching
    /// the status.
    pub events: Vec<MessageEvent>,
    /// The provider's id for the message (its acknowledgement).
    pub provider_id: Option<String>,
    pub move_to: Option<StepMove>,
    /// An identity of the message's contact that the provider said is dead for good (a
    /// push subscription gone): removed from that contact, and only from it, in the same
    /// transaction. Nothing happens when the contact no longer has it.
    pub drop_identity: Option<Identity>,
    pub outbox: OutboxNext,
}

impl Settlement {
    pub fn new(outbox: OutboxNext) -> Self {
        Settlement {
            sending: None,
            status: None,
            events: Vec::new(),
            provider_id: None,
            move_to: None,
            drop_identity: None,
            outbox,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    Canceled,
    /// Too late: the message already had this status.
    TooLate(MessageStatus),
}

/// A reviewer's decision on a message the content checks held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Review {
    /// Sent after all: `status` is `queued` (or `scheduled`, when `due_at` is later than
    /// now), and an outbox row due at `due_at` is written.
    Release {
        status: MessageStatus,
        due_at: Timestamp,
        detail: String,
    },
    /// Never sent: the message becomes `rejected` with the reviewer's reason.
    Reject { detail: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewOutcome {
    /// The message moved to this status.
    Done(MessageStatus),
    /// The message is not held (it was released, rejected or canceled before): this is
    /// its status, nothing changed.
    NotHeld(MessageStatus),
}

/// One message a simulated phone received or sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEntry {
    pub id: String,
    pub number: String,
    /// `in` (the phone received it) or `out` (the phone sent it, a reply).
    pub direction: String,
    pub message_id: Option<String>,
    pub text: String,
    pub at: Timestamp,
}

/// A simulated phone and how much it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPhoneSummary {
    pub number: String,
    /// Messages it received and sent.
    pub messages: i64,
    pub last_at: Timestamp,
}

/// A customer's endpoint for outgoing webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    /// `whsec_` and the base64 key, as Standard Webhooks writes it.
    pub secret: String,
    pub created_at: Timestamp,
    /// Whether its endpoint answers lately; while the circuit is open none of its
    /// deliveries is claimed.
    pub circuit: Circuit,
}

/// One event to deliver to one webhook, and how its delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// Also the `webhook-id` header: the same on every retry, so receivers can dedupe.
    pub id: String,
    pub webhook_id: String,
    pub event_type: String,
    /// The JSON body, exactly as signed.
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub due_at: Timestamp,
    pub last_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A claimed delivery with where and how to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub delivery: WebhookDelivery,
    pub url: String,
    pub secret: String,
}

/// What an attempt told about its webhook's endpoint. The store applies
/// `breaker.after(circuit, reachability, now, jitter)` to the webhook's stored circuit in
/// the transaction that records the attempt, so that attempts finishing together on
/// several nodes each count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointNews {
    pub reachability: Reachability,
    pub breaker: CircuitBreaker,
    /// A draw in `[0, 1]`: where the end of the open period falls, if the attempt opens the
    /// circuit.
    pub jitter: f64,
}

/// How a delivery attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered {
        code: i64,
    },
    Retry {
        due_at: Timestamp,
        code: Option<i64>,
        error: String,
    },
    Failed {
        code: Option<i64>,
        error: String,
    },
}

/// Storage for messages; a supertrait of [`crate::Store`].
/// Which messages [`MessageStore::list_messages`] returns; every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    /// The recipient's address, as stored (E.164 for phones).
    pub to: Option<String>,
    pub status: Option<MessageStatus>,
    /// A channel kind, or a configured channel's id.
    pub channel: Option<String>,
    pub contact_id: Option<String>,
    pub campaign: Option<CampaignLabel>,
    /// Created at or after.
    pub created_from: Option<Timestamp>,
    /// Created before.
    pub created_before: Option<Timestamp>,
    /// The sender the request gave (`from`).
    pub sender: Option<String>,
}

#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Writes messages, their first events and their outbox rows in one transaction.
    /// A reused `idempotency_key` of the same tenant fails the whole batch with
    /// [`crate::StoreError::Conflict`].
    async fn insert_messages(&self, batch: &[NewMessage]) -> StoreResult<()> {
        self.insert_accepted(batch, None, &[], &[]).await
    }
    /// [`MessageStore::insert_messages`] with the outbox rows that `lease` covers leased to
    /// its owner: no claim is needed, the accept path hands them to its dispatcher.
    async fn insert_messages_leased(
        &self,
        batch: &[NewMessage],
        lease: Option<&Lease>,
    ) -> StoreResult<()> {
        self.insert_accepted(batch, lease, &[], &[]).await
    }
    /// [`MessageStore::insert_messages_leased`], with the answers of batch requests made
    /// with an Idempotency-Key and the contacts planned for the messages' recipients
    /// ([`crate::ContactStore::plan_contacts`]) in the same transaction; a key already
    /// recorded fails it all with [`crate::StoreError::Conflict`], an identity another
    /// contact took meanwhile with [`crate::StoreError::IdentityTaken`].
    async fn insert_accepted(
        &self,
        batch: &[NewMessage],
        lease: Option<&Lease>,
        requests: &[BatchRequest],
        contacts: &[crate::PlannedContact],
    ) -> StoreResult<()>;
    /// The recorded answer of the batch request made with `key`.
    async fn batch_request(&self, tenant: &str, key: &str) -> StoreResult<Option<BatchRequest>>;
    /// Gives up `lease_owner`'s leases on these messages' outbox rows, so that any
    /// dispatcher claims them now (a dispatcher stopping with hand-offs it did not send).
    async fn release_leases(&self, lease_owner: &str, message_ids: &[String]) -> StoreResult<()>;
    async fn message(&self, tenant: &str, id: &str) -> StoreResult<Option<MessageWithEvents>>;
    /// The tenant's messages matching `filter`, newest first, by cursor (the last id).
    async fn list_messages(
        &self,
        tenant: &str,
        filter: &MessageFilter,
        page: &crate::PageRequest,
    ) -> StoreResult<crate::Page<Message>>;
    /// The contact's latest `limit` messages, newest first.
    async fn messages_of_contact(
        &self,
        tenant: &str,
        contact_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;
    /// The contact's latest `limit` messages to `address` on `channel` (a configured
    /// channel's id), newest first: what one web chat visitor was sent, however much the
    /// rest of the contact's history holds.
    async fn messages_to_address(
        &self,
        tenant: &str,
        contact_id: &str,
        channel: &str,
        address: &str,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;
    async fn message_by_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
    ) -> StoreResult<Option<Message>>;
    /// The tenant's messages accepted with any of `keys`, in no order (a group of requests
    /// looks its keys up at once).
    async fn messages_by_idempotency_keys(
        &self,
        tenant: &str,
        keys: &[&str],
    ) -> StoreResult<Vec<Message>>;
    /// Leases up to `limit` due rows (due at or before `now`, not leased or lease ran out)
    /// to `lease_owner` until `now + lease_for`.
    async fn claim_due(
        &self,
        now: Timestamp,
        limit: u32,
        lease_owner: &str,
        lease_for: SignedDuration,
    ) -> StoreResult<Vec<OutboxItem>> {
        self.claim_due_by(now, now, limit, lease_owner, lease_for)
            .await
    }
    /// [`MessageStore::claim_due`] of the rows of one lane (see [`OutboxItem::lane`]), due
    /// at or before `due_by` and `now`: a dispatcher claims for each channel only what that
    /// channel can send now.
    async fn claim_lane(
        &self,
        lane: &str,
        now: Timestamp,
        due_by: Timestamp,
        limit: u32,
        lease_owner: &str,
        lease_for: SignedDuration,
    ) -> StoreResult<Vec<OutboxItem>>;
    /// [`MessageStore::claim_due`] of the rows of lanes not in `known`: work for channels
    /// the dispatcher has no lane for (a deleted channel, a kind with no adapter).
    async fn claim_strays(
        &self,
        known: &[String],
        now: Timestamp,
        limit: u32,
        lease_owner: &str,
        lease_for: SignedDuration,
    ) -> StoreResult<Vec<OutboxItem>>;
    /// Extends to `until` the leases `lease_owner` still holds on these messages' rows
    /// (a dispatcher's heartbeat for the work it has in hand); the ids it still held.
    async fn extend_leases(
        &self,
        lease_owner: &str,
        message_ids: &[String],
        until: Timestamp,
    ) -> StoreResult<Vec<String>>;
    /// [`MessageStore::claim_due`] of the rows due at or before `due_by` only (a
    /// dispatcher with hand-offs due at `due_by` claims what is older first).
    async fn claim_due_by(
        &self,
        now: Timestamp,
        due_by: Timestamp,
        limit: u32,
        lease_owner: &str,
        lease_for: SignedDuration,
    ) -> StoreResult<Vec<OutboxItem>>;
    /// Applies an attempt's outcome and completes or reschedules its outbox row, in one
    /// transaction. `false` (and nothing written) when `lease_owner` no longer holds the row.
    async fn settle(
        &self,
        message_id: &str,
        lease_owner: &str,
        settlement: &Settlement,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let one = [(message_id.to_owned(), settlement.clone())];
        Ok(self
            .settle_all(lease_owner, &one, now)
            .await?
            .first()
            .copied()
            .unwrap_or(false))
    }
    /// [`MessageStore::settle`] for a whole round of attempts in one transaction: whether
    /// each settlement was written, in order (`false` where the lease was lost).
    async fn settle_all(
        &self,
        lease_owner: &str,
        settlements: &[(String, Settlement)],
        now: Timestamp,
    ) -> StoreResult<Vec<bool>> {
        self.settle_round(lease_owner, settlements, &[], now).await
    }
    /// [`MessageStore::settle_all`], then the receipts that came in meanwhile offered as
    /// [`MessageStore::record_statuses`] would, in the same transaction: a provider that
    /// answers at once has a message's acknowledgement and its receipt written as one row
    /// update, in that order. Receipts for unknown messages are ignored.
    async fn settle_round(
        &self,
        lease_owner: &str,
        settlements: &[(String, Settlement)],
        receipts: &[(String, MessageEvent)],
        now: Timestamp,
    ) -> StoreResult<Vec<bool>>;
    /// Offers a status (a receipt) to a message; the new status, or `None` when it was
    /// stale or a duplicate and nothing changed.
    async fn record_status(
        &self,
        message_id: &str,
        incoming: &MessageEvent,
    ) -> StoreResult<Option<MessageStatus>>;
    /// [`MessageStore::record_status`] for many receipts in one transaction, so that a
    /// burst of receipts costs one commit; a receipt for an unknown message gives `None`.
    async fn record_statuses(
        &self,
        receipts: &[(String, MessageEvent)],
    ) -> StoreResult<Vec<Option<MessageStatus>>>;
    /// The message a provider knows by `provider_id` on `channel` (for receipts that carry
    /// only the provider's id).
    async fn message_by_provider_id(
        &self,
        channel: &str,
        provider_id: &str,
    ) -> StoreResult<Option<Message>>;
    /// Moves a message whose step `from_step` failed (a receipt said so) to another step:
    /// writes `events`, the new step, and an outbox row due at `due_at`, in one
    /// transaction. `false` (nothing written) when the message is no longer on
    /// `from_step`, e.g. for a duplicate receipt.
    async fn fall_back(
        &self,
        message_id: &str,
        from_step: i64,
        events: &[MessageEvent],
        to: &StepMove,
        due_at: Timestamp,
    ) -> StoreResult<bool>;
    /// Cancels a message that has not started sending, and drops its outbox row.
    async fn cancel(&self, tenant: &str, id: &str, at: Timestamp) -> StoreResult<CancelOutcome>;
    /// Releases or rejects a `held` message (see [`Review`]), in one transaction.
    async fn review_held(
        &self,
        tenant: &str,
        id: &str,
        review: &Review,
        at: Timestamp,
    ) -> StoreResult<ReviewOutcome>;
    /// Adds entries to simulated phones' logs, in one transaction.
    async fn sim_record(&self, tenant: &str, entries: &[SimEntry]) -> StoreResult<()>;
    /// What a simulated phone received and sent, oldest first.
    async fn sim_messages(&self, tenant: &str, number: &str) -> StoreResult<Vec<SimEntry>>;
    /// The tenant's simulated phones that received or sent something, the most recently
    /// active first, `limit` at most.
    async fn sim_phones(&self, tenant: &str, limit: u32) -> StoreResult<Vec<SimPhoneSummary>>;
    /// Queues `payload` (an event of type `event_type`) for every webhook of the tenant,
    /// once: the delivery of webhook `h` is `{key}_{h}`, so queueing the same key again
    /// adds nothing. The number of deliveries queued now.
    async fn queue_webhook_event(
        &self,
        tenant: &str,
        key: &str,
        event_type: &str,
        payload: &str,
        at: Timestamp,
    ) -> StoreResult<u64>;
    /// Registers a webhook; from now on every status change of the tenant's messages is
    /// queued for it, in the transaction that makes the change.
    async fn create_webhook(
        &self,
        tenant: &str,
        url: &str,
        secret: &str,
        now: Timestamp,
    ) -> StoreResult<Webhook>;
    async fn webhooks(&self, tenant: &str) -> StoreResult<Vec<Webhook>>;
    /// Deletes a webhook of the tenant with its whole delivery log, so that nothing queued
    /// for it is attempted again; `false` when the tenant has no such webhook.
    async fn delete_webhook(&self, tenant: &str, id: &str) -> StoreResult<bool>;
    /// Replaces a webhook's stored secret (the same secret sealed anew); `false` when the
    /// tenant has no such webhook.
    async fn set_webhook_secret(&self, tenant: &str, id: &str, secret: &str) -> StoreResult<bool>;
    /// The latest deliveries (at most 100) of a webhook, oldest first.
    async fn webhook_deliveries(
        &self,
        tenant: &str,
        webhook_id: &str,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Leases up to `limit` due deliveries to `lease_owner`, oldest due first, skipping
    /// every webhook whose circuit is open: none of their rows is read or written. A
    /// webhook whose open circuit is due gets one delivery claimed, a probe, and its circuit
    /// stays open until `now + lease_for` (half-open), so that no other is claimed
    /// meanwhile, on this node or another.
    async fn claim_webhook_deliveries(
        &self,
        now: Timestamp,
        limit: u32,
        lease_owner: &str,
        lease_for: SignedDuration,
    ) -> StoreResult<Vec<DueDelivery>>;
    /// Records an attempt: the delivery's `outcome`, and `news` applied to its webhook's
    /// circuit, in one transaction. The circuit after it; `None`, writing nothing, when
    /// `lease_owner` no longer holds the delivery (or the webhook was deleted).
    async fn finish_webhook_delivery(
        &self,
        delivery: &WebhookDelivery,
        lease_owner: &str,
        outcome: &DeliveryOutcome,
        news: &EndpointNews,
        now: Timestamp,
    ) -> StoreResult<Option<Circuit>>;
    /// Gives back deliveries leased to `lease_owner` and not attempted (their webhook's
    /// circuit opened meanwhile), so that they are claimable as soon as it closes.
    async fn release_webhook_deliveries(
        &self,
        ids: &[String],
        lease_owner: &str,
    ) -> StoreResult<()>;
    /// Fails, with `error`, in one statement, every delivery still pending that was created
    /// at or before `created_by` and that no worker holds; how many.
    async fn expire_webhook_deliveries(
        &self,
        created_by: Timestamp,
        error: &str,
        now: Timestamp,
    ) -> StoreResult<u64>;
    /// Deletes from the delivery log, oldest first, at most `limit` finished deliveries
    /// (delivered or failed) created before `created_before`; pending ones stay whatever
    /// their age. How many, in one statement.
    async fn prune_webhook_deliveries(
        &self,
        created_before: Timestamp,
        limit: u32,
    ) -> StoreResult<u64>;
}

/// The number of rows (or list items) a multi-row statement is padded to: the next power
/// of two from 8. A statement is prepared once per size, and sizes vary with every burst of
/// receipts; SQLite parsed a new 1,000-row statement for most of them (a tenth of its
/// writer's time in the SMPP benchmark).
fn statement_size(rows: usize) -> usize {
    rows.next_power_of_two().max(8)
}

macro_rules! impl_message_store {
    ($modname:ident, $store:ty, $db:ty, $lock:expr) => {
        mod $modname {
            use super::*;
            use crate::{StoreError, from_micros, micros, new_id};
            use sqlx::Row;

            type Db = $db;
            type Tx<'a> = sqlx::Transaction<'a, Db>;
            type DbRow = <Db as sqlx::Database>::Row;

            /// Bind parameters per statement, under both backends' limits.
            const PARAMS: usize = 16_000;

            const MESSAGE_COLUMNS: &str = "id, tenant_id, contact_id, to_address, channel, step, chain, content, purpose, sender, campaign, human_agent_since, status, segments, provider_id, idempotency_key, request_hash, send_at, expires_at, created_at, updated_at";

            fn status_from_db(s: &str) -> StoreResult<MessageStatus> {
                s.parse()
                    .map_err(|e: relais_core::status::UnknownMessageStatus| StoreError::Corrupt(e.to_string()))
            }

            fn campaign_from_db(label: Option<String>) -> StoreResult<Option<CampaignLabel>> {
                label
                    .map(|l| {
                        CampaignLabel::parse(&l)
                            .map_err(|e| StoreError::Corrupt(format!("message campaign `{l}`: {e}")))
                    })
                    .transpose()
            }

            fn json_from_db(what: &str, s: &str) -> StoreResult<serde_json::Value> {
                serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("message {what}: {e}")))
            }

            fn opt_ts(v: Option<i64>) -> StoreResult<Option<Timestamp>> {
                v.map(from_micros).transpose()
            }

            fn message_from_row(row: &DbRow) -> StoreResult<Message> {
                let status: String = row.try_get("status")?;
                let chain: String = row.try_get("chain")?;
                let content: String = row.try_get("content")?;
                Ok(Message {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    contact_id: row.try_get("contact_id")?,
                    to_address: row.try_get("to_address")?,
                    channel: row.try_get("channel")?,
                    step: row.try_get("step")?,
                    chain: json_from_db("chain", &chain)?,
                    content: json_from_db("content", &content)?,
                    purpose: row.try_get("purpose")?,
                    sender: row.try_get("sender")?,
                    campaign: campaign_from_db(row.try_get("campaign")?)?,
                    human_agent_since: opt_ts(row.try_get("human_agent_since")?)?,
                    status: status_from_db(&status)?,
                    segments: row.try_get("segments")?,
                    provider_id: row.try_get("provider_id")?,
                    idempotency_key: row.try_get("idempotency_key")?,
                    request_hash: row.try_get("request_hash")?,
                    send_at: opt_ts(row.try_get("send_at")?)?,
                    expires_at: opt_ts(row.try_get("expires_at")?)?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                    updated_at: from_micros(row.try_get("updated_at")?)?,
                })
            }

            fn delivery_from_row(row: &DbRow) -> StoreResult<WebhookDelivery> {
                Ok(WebhookDelivery {
                    id: row.try_get("id")?,
                    webhook_id: row.try_get("webhook_id")?,
                    event_type: row.try_get("event_type")?,
                    payload: row.try_get("payload")?,
                    status: row.try_get("status")?,
                    attempts: row.try_get("attempts")?,
                    due_at: from_micros(row.try_get("due_at")?)?,
                    last_code: row.try_get("last_code")?,
                    last_error: row.try_get("last_error")?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                    updated_at: from_micros(row.try_get("updated_at")?)?,
                })
            }

            const WEBHOOK_COLUMNS: &str = "id, tenant_id, url, secret, created_at, failures, opens, failing_since, retry_at";

            fn count_from_db(what: &str, n: i64) -> StoreResult<u32> {
                u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("webhook {what}: {n}")))
            }

            fn circuit_from_row(row: &DbRow) -> StoreResult<Circuit> {
                Ok(Circuit {
                    failures: count_from_db("failures", row.try_get("failures")?)?,
                    opens: count_from_db("opens", row.try_get("opens")?)?,
                    failing_since: opt_ts(row.try_get("failing_since")?)?,
                    retry_at: opt_ts(row.try_get("retry_at")?)?,
                })
            }

            fn webhook_from_row(row: &DbRow) -> StoreResult<Webhook> {
                Ok(Webhook {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    url: row.try_get("url")?,
                    secret: row.try_get("secret")?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                    circuit: circuit_from_row(row)?,
                })
            }

            fn idempotency_conflict(e: sqlx::Error) -> StoreError {
                match &e {
                    sqlx::Error::Database(db) if $crate::noted(db.is_unique_violation()) => StoreError::Conflict(
                        "a message with this Idempotency-Key already exists".into(),
                    ),
                    _ => e.into(),
                }
            }

            async fn load_messages(
                conn: &mut <Db as sqlx::Database>::Connection,
                ids: &[String],
            ) -> StoreResult<Vec<Message>> {
                let mut out = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(PARAMS) {
                    let mut q = sqlx::QueryBuilder::<Db>::new(format!(
                        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN ("
                    ));
                    let mut sep = q.separated(", ");
                    let last = chunk.last().map(String::as_str).unwrap_or_default();
                    for id in chunk.iter().map(String::as_str).chain(std::iter::repeat(last)).take(statement_size(chunk.len())) {
                        sep.push_bind(id);
                    }
                    q.push(")");
                    for row in q.build().fetch_all(&mut *conn).await? {
                        out.push(message_from_row(&row)?);
                    }
                }
                Ok(out)
            }

            /// A message whose status and event log a transaction changes, as it stands
            /// in that transaction, with what the transaction adds to it.
            struct Tracked<'a> {
                status: MessageStatus,
                /// The status as it was read: a row is written only if it still has it.
                loaded: MessageStatus,
                tenant: String,
                /// The new status and when it was set, if it moved.
                moved: Option<(MessageStatus, Timestamp)>,
                /// Entries appended to the log, in order.
                appended: Vec<&'a MessageEvent>,
                /// The provider's id for the message, when it acknowledged it.
                provider_id: Option<&'a str>,
            }

            /// Status changes and log entries for many messages, gathered in memory then
            /// written with one multi-row statement: the dispatcher settles a whole round,
            /// and a burst of receipts, in one transaction.
            struct LogBatch<'a> {
                tracked: std::collections::HashMap<String, Tracked<'a>>,
                /// The webhooks of their tenants, by tenant (most tenants have none).
                hooks: std::collections::HashMap<String, Vec<String>>,
                /// Messages in the order they were first changed, so that writes (and
                /// PostgreSQL's row locks) follow one order.
                changed: Vec<&'a str>,
                /// Status changes to offer to the tenants' webhooks.
                notices: Vec<Notice<'a>>,
            }

            /// A status change for the tenant's webhooks; its payload is built only for a
            /// tenant that registered one.
            struct Notice<'a> {
                tenant: String,
                message_id: &'a str,
                status: MessageStatus,
                event: &'a MessageEvent,
                at: Timestamp,
            }

            impl Notice<'_> {
                fn payload(&self) -> String {
                    serde_json::json!({
                        "type": "message.status",
                        "timestamp": self.event.at.to_string(),
                        "data": {
                            "id": self.message_id,
                            "status": self.status.as_str(),
                            "at": self.event.at.to_string(),
                            "channel": self.event.channel,
                            "reason": self.event.reason,
                            "detail": self.event.detail,
                        },
                    })
                    .to_string()
                }
            }

            impl<'a> LogBatch<'a> {
                /// Reads the current status of `ids` through `conn`; `locking` locks the rows
                /// (PostgreSQL, inside the writing transaction).
                async fn load(
                    conn: &mut <Db as sqlx::Database>::Connection,
                    ids: &[&str],
                    locking: bool,
                ) -> StoreResult<LogBatch<'a>> {
                    let mut tracked = std::collections::HashMap::with_capacity(ids.len());
                    // SQLite, reading ahead: the rows come back as one JSON document, which
                    // costs far less than a row each through the driver.
                    let aggregate = $lock.is_empty();
                    for chunk in ids.chunks(PARAMS) {
                        let mut q = sqlx::QueryBuilder::<Db>::new(if aggregate {
                            "SELECT json_group_array(json_array(m.id, m.status, m.tenant_id)) FROM messages m WHERE m.id IN ("
                        } else {
                            "SELECT m.id, m.status, m.tenant_id FROM messages m WHERE m.id IN ("
                        });
                        let mut sep = q.separated(", ");
                        // Repeating the last id pads the list to a size the connection has
                        // prepared before (a repeated id changes nothing).
                        let last = chunk.last().copied().unwrap_or_default();
                        for id in chunk.iter().copied().chain(std::iter::repeat(last)).take(statement_size(chunk.len())) {
                            sep.push_bind(id);
                        }
                        // PostgreSQL: lock the rows (in id order, so two writers never
                        // deadlock) so that a concurrent receipt and settlement cannot both
                        // advance from the status they read; SQLite has one writer.
                        q.push(if $lock.is_empty() || !locking { ")" } else { ") ORDER BY m.id FOR UPDATE OF m" });
                        let rows: Vec<(String, String, String)> = if aggregate {
                            let doc: String = q.build_query_scalar().fetch_one(&mut *conn).await?;
                            serde_json::from_str(&doc).map_err(|e| {
                                StoreError::Corrupt(format!("message statuses read back as JSON: {e}"))
                            })?
                        } else {
                            q.build_query_as().fetch_all(&mut *conn).await?
                        };
                        for (id, status, tenant) in rows {
                            let status = status_from_db(&status)?;
                            tracked.insert(
                                id,
                                Tracked {
                                    status,
                                    loaded: status,
                                    tenant,
                                    moved: None,
                                    appended: Vec::new(),
                                    provider_id: None,
                                },
                            );
                        }
                    }
                    // Most tenants register no webhook: one query finds those that do, and
                    // their hooks (webhooks are never deleted, so ids read ahead stay good).
                    let mut tenants: Vec<&str> = tracked.values().map(|t: &Tracked| t.tenant.as_str()).collect();
                    tenants.sort_unstable();
                    tenants.dedup();
                    let mut hooks: std::collections::HashMap<String, Vec<String>> =
                        std::collections::HashMap::new();
                    for chunk in tenants.chunks(PARAMS) {
                        let mut q = sqlx::QueryBuilder::<Db>::new(
                            "SELECT id, tenant_id FROM webhooks WHERE tenant_id IN (",
                        );
                        let mut sep = q.separated(", ");
                        for tenant in chunk {
                            sep.push_bind(*tenant);
                        }
                        q.push(") ORDER BY id");
                        for row in q.build().fetch_all(&mut *conn).await? {
                            hooks
                                .entry(row.try_get("tenant_id")?)
                                .or_default()
                                .push(row.try_get("id")?);
                        }
                    }
                    Ok(LogBatch {
                        tracked,
                        hooks,
                        changed: Vec::new(),
                        notices: Vec::new(),
                    })
                }

                /// The status of a tracked message as the transaction has it.
                fn status(&self, message_id: &str) -> Option<MessageStatus> {
                    self.tracked.get(message_id).map(|t| t.status)
                }

                /// The tracked message `message_id`, noted as changed.
                fn change(&mut self, message_id: &'a str) -> Option<&mut Tracked<'a>> {
                    let t = self.tracked.get_mut(message_id)?;
                    if t.appended.is_empty() && t.moved.is_none() && t.provider_id.is_none() {
                        self.changed.push(message_id);
                    }
                    Some(t)
                }

                /// Appends `event` to the log as it is; `false` for an unknown message.
                fn append(&mut self, message_id: &'a str, event: &'a MessageEvent) -> bool {
                    let Some(t) = self.change(message_id) else {
                        return false;
                    };
                    t.appended.push(event);
                    true
                }

                /// Records the provider's id for the message (written with its status).
                fn acknowledge(&mut self, message_id: &'a str, provider_id: &'a str) {
                    if let Some(t) = self.change(message_id) {
                        t.provider_id = Some(provider_id);
                    }
                }

                /// Offers `incoming` to the message's status through `advance`, logging it
                /// when the status moves; the new status, `None` when it did not move.
                fn advance(
                    &mut self,
                    message_id: &'a str,
                    incoming: &'a MessageEvent,
                    now: Timestamp,
                ) -> StoreResult<Option<MessageStatus>> {
                    let Some(t) = self.tracked.get(message_id) else {
                        return Err(StoreError::NotFound(format!("message {message_id}")));
                    };
                    let Some(next) = relais_core::status::advance(t.status, incoming.status) else {
                        return Ok(None);
                    };
                    let Some(t) = self.change(message_id) else {
                        return Err(StoreError::NotFound(format!("message {message_id}")));
                    };
                    t.status = next;
                    t.moved = Some((next, now));
                    t.appended.push(incoming);
                    let tenant = t.tenant.clone();
                    self.notices.push(Notice { tenant, message_id, status: next, event: incoming, at: now });
                    Ok(Some(next))
                }

                /// The statements that write the changes, and how many rows they must
                /// change: a row is written only if its message still has the status it
                /// was read with.
                fn updates(&self) -> (Vec<sqlx::QueryBuilder<Db>>, u64) {
                    // (id, status read, new status, when, entries to append as a JSON
                    // array, provider id)
                    type Row<'r> = (&'r str, &'static str, Option<&'static str>, Option<i64>, String, Option<&'r str>);
                    let rows: Vec<Row<'a>> = self
                        .changed
                        .iter()
                        .filter_map(|id| self.tracked.get(*id).map(|t| (*id, t)))
                        .map(|(id, t)| {
                            (
                                id,
                                t.loaded.as_str(),
                                t.moved.map(|(s, _)| s.as_str()),
                                t.moved.map(|(_, at)| micros(at)),
                                events_json(t.appended.iter().copied()),
                                t.provider_id,
                            )
                        })
                        .collect();
                    let expected = rows.len() as u64;
                    let mut statements = Vec::new();
                    let mut rows = rows.into_iter().peekable();
                    while rows.peek().is_some() {
                        let chunk: Vec<Row<'a>> = rows.by_ref().take(PARAMS / 6).collect();
                        // The log grows by text: `[a,b]` and `[c]` make `[a,b,c]`, without
                        // reading the log back or parsing it.
                        let mut q = sqlx::QueryBuilder::<Db>::new(
                            "UPDATE messages SET status = COALESCE(v.column3, messages.status), \
                             updated_at = COALESCE(v.column4, messages.updated_at), \
                             events = CASE WHEN v.column5 = '[]' THEN messages.events \
                               WHEN messages.events = '[]' THEN v.column5 \
                               ELSE substr(messages.events, 1, length(messages.events) - 1) || ',' || substr(v.column5, 2) END, \
                             provider_id = COALESCE(v.column6, messages.provider_id) \
                             FROM (",
                        );
                        // Rows for no message (id '') pad the statement to a size the
                        // connection has prepared before.
                        let padding = statement_size(chunk.len()) - chunk.len();
                        let pad: Row<'a> = ("", "", None, None, "[]".to_owned(), None);
                        let rows = chunk.into_iter().chain(std::iter::repeat_n(pad, padding));
                        q.push_values(rows, |mut b, (id, loaded, status, at, appended, provider_id)| {
                            b.push_bind(id)
                                .push_bind(loaded)
                                .push_bind(status)
                                .push_bind(at)
                                .push_bind(appended)
                                .push_bind(provider_id);
                        });
                        q.push(") AS v WHERE messages.id = v.column1 AND messages.status = v.column2");
                        statements.push(q);
                    }
                    (statements, expected)
                }

                /// Writes the changes in `tx`; `false`, writing nothing more, when a message
                /// no longer has the status it was read with.
                async fn write(&self, tx: &mut Tx<'_>) -> StoreResult<bool> {
                    self.apply(self.updates(), tx).await
                }

                /// Runs `updates` (from [`LogBatch::updates`]) in `tx`, then queues the
                /// webhook notices; `false`, writing nothing more, when a message no longer
                /// had the status it was read with.
                async fn apply(
                    &self,
                    updates: (Vec<sqlx::QueryBuilder<Db>>, u64),
                    tx: &mut Tx<'_>,
                ) -> StoreResult<bool> {
                    let (mut statements, expected) = updates;
                    let mut changed = 0;
                    for q in &mut statements {
                        changed += q.build().execute(&mut **tx).await?.rows_affected();
                    }
                    if changed != expected {
                        return Ok(false);
                    }
                    self.notify(tx).await?;
                    Ok(true)
                }

                /// Queues the status changes for the webhooks of the tenants that have one.
                async fn notify(&self, tx: &mut Tx<'_>) -> StoreResult<()> {
                    let mut deliveries: Vec<(String, &str, &str, String, i64)> = Vec::new();
                    for notice in &self.notices {
                        let Some(tenant_hooks) = self.hooks.get(&notice.tenant) else {
                            continue;
                        };
                        let batch = new_id();
                        let payload = notice.payload();
                        for hook in tenant_hooks {
                            deliveries.push((
                                format!("msg_{batch}_{hook}"),
                                notice.tenant.as_str(),
                                hook.as_str(),
                                payload.clone(),
                                micros(notice.at),
                            ));
                        }
                    }
                    for chunk in deliveries.chunks(PARAMS / 10) {
                        let mut q = sqlx::QueryBuilder::<Db>::new(
                            "INSERT INTO webhook_deliveries (id, tenant_id, webhook_id, event_type, payload, status, attempts, due_at, created_at, updated_at) ",
                        );
                        q.push_values(chunk, |mut b, (id, tenant, hook, payload, at)| {
                            b.push_bind(id.as_str())
                                .push_bind(*tenant)
                                .push_bind(*hook)
                                .push_bind("message.status")
                                .push_bind(payload.as_str())
                                .push_bind("pending")
                                .push_bind(0i64)
                                .push_bind(*at)
                                .push_bind(*at)
                                .push_bind(*at);
                        });
                        q.build().execute(&mut **tx).await?;
                    }
                    Ok(())
                }
            }

            /// Writes `log` in `tx`, which read it under lock: nothing can have moved.
            async fn write_locked(log: &LogBatch<'_>, tx: &mut Tx<'_>) -> StoreResult<()> {
                if log.write(tx).await? {
                    Ok(())
                } else {
                    Err(StoreError::Conflict(
                        "a message changed status while it was being written".into(),
                    ))
                }
            }

            /// The messages a round touches, in id order.
            fn round_ids<'a>(
                settled: impl Iterator<Item = &'a str>,
                receipts: &'a [(String, MessageEvent)],
            ) -> Vec<&'a str> {
                let mut ids: Vec<&str> = settled.collect();
                ids.extend(receipts.iter().map(|(id, _)| id.as_str()));
                ids.sort_unstable();
                ids.dedup();
                ids
            }

            /// The outbox statements of a round: finished messages leave the outbox, the
            /// others are due again; a settlement whose lease was lost writes nothing. With
            /// `returning`, each returns the ids whose lease `lease_owner` still held;
            /// without, only their count tells (no row per message crosses to the caller).
            fn outbox_statements<'a>(
                lease_owner: &'a str,
                settlements: &'a [(String, Settlement)],
                returning: bool,
            ) -> Vec<sqlx::QueryBuilder<Db>> {
                let mut statements = Vec::new();
                let done: Vec<&str> = settlements
                    .iter()
                    .filter(|(_, s)| s.outbox == OutboxNext::Done)
                    .map(|(id, _)| id.as_str())
                    .collect();
                for chunk in done.chunks(PARAMS - 1) {
                    let mut q = sqlx::QueryBuilder::<Db>::new("DELETE FROM outbox WHERE lease_owner = ");
                    q.push_bind(lease_owner).push(" AND message_id IN (");
                    let mut sep = q.separated(", ");
                    let last = chunk.last().copied().unwrap_or_default();
                    for id in chunk.iter().copied().chain(std::iter::repeat(last)).take(statement_size(chunk.len())) {
                        sep.push_bind(id);
                    }
                    q.push(if returning { ") RETURNING message_id" } else { ")" });
                    statements.push(q);
                }
                // The lane of a rescheduled row: the fallback timers' lane, the channel a
                // step move goes to, or (NULL) the message's channel as it is.
                let later: Vec<(&str, i64, &str, i64, Option<&str>)> = settlements
                    .iter()
                    .filter_map(|(id, s)| match &s.outbox {
                        OutboxNext::Done => None,
                        OutboxNext::Reschedule { due_at, phase, attempts } => {
                            let lane = match phase {
                                OutboxPhase::Watch => Some(WATCH_LANE),
                                OutboxPhase::Send => s.move_to.as_ref().map(|m| m.channel.as_str()),
                            };
                            Some((id.as_str(), micros(*due_at), phase.as_str(), *attempts, lane))
                        }
                    })
                    .collect();
                for chunk in later.chunks(PARAMS / 5 - 1) {
                    let mut q = sqlx::QueryBuilder::<Db>::new(
                        "UPDATE outbox SET due_at = v.column2, phase = v.column3, attempts = v.column4, \
                         lane = COALESCE(v.column5, (SELECT channel FROM messages WHERE messages.id = outbox.message_id)), \
                         lease_owner = NULL, lease_until = NULL FROM (",
                    );
                    q.push_values(chunk, |mut b, (id, due_at, phase, attempts, lane)| {
                        b.push_bind(*id).push_bind(*due_at).push_bind(*phase).push_bind(*attempts).push_bind(*lane);
                    });
                    q.push(") AS v WHERE outbox.message_id = v.column1 AND outbox.lease_owner = ");
                    q.push_bind(lease_owner);
                    if returning {
                        q.push(" RETURNING outbox.message_id");
                    }
                    statements.push(q);
                }
                statements
            }

            /// Offers a round's settlements, then the receipts read meanwhile, to `log`.
            fn apply_round<'a>(
                log: &mut LogBatch<'a>,
                settled: &[(&'a str, &'a Settlement)],
                receipts: &'a [(String, MessageEvent)],
                now: Timestamp,
            ) -> StoreResult<()> {
                for (id, s) in settled {
                    if let Some(mark) = &s.sending
                        && log.advance(id, mark, now)?.is_none()
                        && log.status(id) != Some(MessageStatus::Sending)
                    {
                        log.append(id, mark);
                    }
                    if let Some(provider_id) = &s.provider_id {
                        log.acknowledge(id, provider_id);
                    }
                    for event in &s.events {
                        log.append(id, event);
                    }
                    if let Some(status) = &s.status
                        && log.advance(id, status, now)?.is_none()
                        && status.status == MessageStatus::Sent
                    {
                        // The provider's receipt came before its acknowledgement was
                        // settled (an SMSC answering at once): the status stays where
                        // the receipt put it, the acknowledgement and its provider id
                        // still go in the log.
                        log.append(id, status);
                    }
                }
                apply_receipts(log, receipts)?;
                Ok(())
            }

            /// Offers each receipt to its message: the status it moved to, `None` when it
            /// did not move (or the message is unknown).
            fn apply_receipts<'a>(
                log: &mut LogBatch<'a>,
                receipts: &'a [(String, MessageEvent)],
            ) -> StoreResult<Vec<Option<MessageStatus>>> {
                let mut out = Vec::with_capacity(receipts.len());
                for (id, receipt) in receipts {
                    match log.advance(id, receipt, receipt.at) {
                        Ok(moved) => out.push(moved),
                        Err(StoreError::NotFound(_)) => out.push(None),
                        Err(e) => return Err(e),
                    }
                }
                Ok(out)
            }

            /// SQLite has one writer, and statuses rarely change between a read and the
            /// write that follows it: a round's statuses are read, and its writes built,
            /// before the writer's lock is taken, each row written only if its message
            /// still has the status read. `None`, having written nothing, when a lease was
            /// lost or a status moved meanwhile: the caller takes the locked path.
            async fn settle_read_ahead(
                store: &$store,
                lease_owner: &str,
                settlements: &[(String, Settlement)],
                receipts: &[(String, MessageEvent)],
                now: Timestamp,
            ) -> StoreResult<Option<Vec<bool>>> {
                let ids = round_ids(settlements.iter().map(|(id, _)| id.as_str()), receipts);
                let mut log = LogBatch::load(&mut *store.reader().acquire().await?, &ids, false).await?;
                let settled: Vec<(&str, &Settlement)> =
                    settlements.iter().map(|(id, s)| (id.as_str(), s)).collect();
                apply_round(&mut log, &settled, receipts, now)?;
                let mut outbox = outbox_statements(lease_owner, settlements, false);
                let updates = log.updates();
                let mut tx = store.begin_write().await?;
                let mut kept = 0;
                for q in &mut outbox {
                    kept += q.build().execute(&mut *tx).await?.rows_affected();
                }
                if usize::try_from(kept).is_ok_and(|kept| kept == settlements.len())
                    && log.apply(updates, &mut tx).await?
                {
                    tx.commit().await?;
                    return Ok(Some(vec![true; settlements.len()]));
                }
                tx.rollback().await?;
                Ok(None)
            }

            /// [`settle_read_ahead`] for receipts alone.
            async fn record_read_ahead(
                store: &$store,
                receipts: &[(String, MessageEvent)],
            ) -> StoreResult<Option<Vec<Option<MessageStatus>>>> {
                let ids = round_ids(std::iter::empty(), receipts);
                let mut log = LogBatch::load(&mut *store.reader().acquire().await?, &ids, false).await?;
                let moved = apply_receipts(&mut log, receipts)?;
                let updates = log.updates();
                let mut tx = store.begin_write().await?;
                if log.apply(updates, &mut tx).await? {
                    tx.commit().await?;
                    return Ok(Some(moved));
                }
                tx.rollback().await?;
                Ok(None)
            }

            /// Statements written in one transaction. SQLite gets them as one script
            /// (`BEGIN; …; COMMIT`) that its connection's thread runs at once: one round trip
            /// to that thread instead of one per statement while the store's one writer is
            /// held; under load each round trip waited about 0.3 ms for a core, most of the
            /// time the writer was held. PostgreSQL runs them one by one in a transaction.
            struct Script {
                statements: Vec<sqlx::QueryBuilder<Db>>,
            }

            impl Script {
                fn new() -> Self {
                    Script { statements: Vec::new() }
                }

                /// A new statement starting with `sql`, to complete.
                fn statement(&mut self, sql: impl Into<String>) -> &mut sqlx::QueryBuilder<Db> {
                    let sql: String = sql.into();
                    let sqlite = $lock.is_empty();
                    if sqlite {
                        if self.statements.is_empty() {
                            self.statements.push(sqlx::QueryBuilder::new("BEGIN; "));
                        } else {
                            self.statements[0].push("; ");
                        }
                        self.statements[0].push(sql);
                    } else {
                        self.statements.push(sqlx::QueryBuilder::new(sql));
                    }
                    let last = self.statements.len() - 1;
                    &mut self.statements[last]
                }

                async fn run(mut self, pool: &sqlx::Pool<Db>) -> Result<(), sqlx::Error> {
                    if self.statements.is_empty() {
                        return Ok(());
                    }
                    if $lock.is_empty() {
                        let mut script = self.statements.remove(0);
                        script.push("; COMMIT");
                        let mut conn = pool.acquire().await?;
                        // Dropped before the script finished (its caller went away), the
                        // connection may be left in the script's transaction: the next
                        // acquisition then checks it (see sqlite.rs).
                        let armed = $crate::ScriptGuard::arm();
                        let result = script
                            .build()
                            .persistent(false)
                            .execute(&mut *conn)
                            .await;
                        if result.is_err() {
                            // A failed statement leaves the script's transaction open.
                            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                        }
                        armed.disarm();
                        return result.map(|_| ());
                    }
                    #[allow(clippy::disallowed_methods)] // PostgreSQL: SQLite returned above.
                    let mut tx = pool.begin().await?;
                    for q in &mut self.statements {
                        q.build().execute(&mut *tx).await?;
                    }
                    tx.commit().await
                }
            }

            /// Which outbox rows a claim may take.
            enum Lanes<'a> {
                Any,
                Only(&'a str),
                /// Rows of none of these lanes (work for channels this node has no lane for).
                NoneOf(&'a [String]),
            }

            /// Leases up to `limit` rows of `lanes` due by `due_by` (and by `now`) whose
            /// lease is free or ran out, oldest first, and loads their messages.
            async fn claim(
                store: &$store,
                lanes: Lanes<'_>,
                now: Timestamp,
                due_by: Timestamp,
                limit: u32,
                lease_owner: &str,
                lease_for: SignedDuration,
            ) -> StoreResult<Vec<OutboxItem>> {
                let until = now.checked_add(lease_for).unwrap_or(Timestamp::MAX);
                // One statement is its own transaction: the writer waits for no BEGIN
                // and COMMIT round trips.
                let mut q = sqlx::QueryBuilder::<Db>::new("UPDATE outbox SET lease_owner = ");
                q.push_bind(lease_owner)
                    .push(", lease_until = ")
                    .push_bind(micros(until))
                    .push(" WHERE message_id IN (SELECT message_id FROM outbox WHERE ");
                match lanes {
                    Lanes::Any => {}
                    Lanes::Only(lane) => {
                        q.push("lane = ").push_bind(lane.to_owned()).push(" AND ");
                    }
                    Lanes::NoneOf(known) if !known.is_empty() => {
                        q.push("lane NOT IN (");
                        let mut sep = q.separated(", ");
                        for lane in known {
                            sep.push_bind(lane.clone());
                        }
                        q.push(") AND ");
                    }
                    Lanes::NoneOf(_) => {}
                }
                q.push("due_at <= ")
                    .push_bind(micros(due_by.min(now)))
                    .push(" AND (lease_until IS NULL OR lease_until <= ")
                    .push_bind(micros(now))
                    .push(") ORDER BY due_at, message_id LIMIT ")
                    .push_bind(i64::from(limit))
                    .push($lock)
                    .push(") RETURNING message_id, due_at, attempts, phase, lease_until");
                let rows = q.build().fetch_all(store.writer()).await?;
                let mut claimed = Vec::with_capacity(rows.len());
                for row in &rows {
                    let phase: String = row.try_get("phase")?;
                    claimed.push((
                        row.try_get::<String, _>("message_id")?,
                        from_micros(row.try_get("due_at")?)?,
                        row.try_get::<i64, _>("attempts")?,
                        OutboxPhase::parse(&phase)?,
                        from_micros(row.try_get("lease_until")?)?,
                    ));
                }
                if claimed.is_empty() {
                    return Ok(Vec::new());
                }
                // The claim is committed: the leased rows change only through their
                // lease holder now, so a reader loads them and the writer is free.
                let ids: Vec<String> = claimed.iter().map(|c| c.0.clone()).collect();
                let mut messages: std::collections::HashMap<String, Message> =
                    load_messages(&mut *store.reader().acquire().await?, &ids)
                        .await?
                        .into_iter()
                        .map(|m| (m.id.clone(), m))
                        .collect();
                claimed.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
                Ok(claimed
                    .into_iter()
                    .filter_map(|(id, due_at, attempts, phase, lease_until)| {
                        messages.remove(&id).map(|message| OutboxItem {
                            message,
                            due_at,
                            attempts,
                            phase,
                            lease_until,
                        })
                    })
                    .collect())
            }

            #[async_trait]
            impl MessageStore for $store {
                async fn insert_accepted(
                    &self,
                    batch: &[NewMessage],
                    lease: Option<&Lease>,
                    requests: &[BatchRequest],
                    contacts: &[$crate::PlannedContact],
                ) -> StoreResult<()> {
                    if batch.is_empty() && requests.is_empty() && contacts.is_empty() {
                        return Ok(());
                    }
                    // The statements are built before the write lock is taken: the one
                    // writer never waits for their arguments to be encoded.
                    let mut script = Script::new();
                    // The planned contacts first, then their identities, whose key refuses
                    // one that another contact took meanwhile.
                    let empty_attributes = "{}";
                    for chunk in contacts.chunks(PARAMS / 7) {
                        let q = script.statement(
                            "INSERT INTO contacts (id, tenant_id, attributes, timezone, locale, created_at, updated_at) ",
                        );
                        q.push_values(chunk, |mut b, c| {
                            b.push_bind(c.id.as_str())
                                .push_bind(c.tenant_id.as_str())
                                .push_bind(empty_attributes)
                                .push_bind(None::<String>)
                                .push_bind(None::<String>)
                                .push_bind(micros(c.created_at))
                                .push_bind(micros(c.created_at));
                        });
                    }
                    for chunk in contacts.chunks(PARAMS / 5) {
                        let q = script.statement(
                            "INSERT INTO identities (tenant_id, channel, address, contact_id, created_at) ",
                        );
                        q.push_values(chunk, |mut b, c| {
                            b.push_bind(c.tenant_id.as_str())
                                .push_bind(c.identity.channel.as_str())
                                .push_bind(c.identity.address.as_str())
                                .push_bind(c.id.as_str())
                                .push_bind(micros(c.created_at));
                        });
                    }
                    for chunk in batch.chunks(PARAMS / 22) {
                        let q = script.statement(format!(
                            "INSERT INTO messages ({MESSAGE_COLUMNS}, events) "
                        ));
                        q.push_values(chunk, |mut b, m| {
                            b.push_bind(m.id.as_str())
                                .push_bind(m.tenant_id.as_str())
                                .push_bind(m.contact_id.clone())
                                .push_bind(m.to_address.as_str())
                                .push_bind(m.channel.as_str())
                                .push_bind(m.step)
                                .push_bind(m.chain.to_string())
                                .push_bind(m.content.to_string())
                                .push_bind(m.purpose.as_str())
                                .push_bind(m.sender.clone())
                                .push_bind(m.campaign.as_ref().map(CampaignLabel::as_str))
                                .push_bind(m.human_agent_since.map(micros))
                                .push_bind(m.status.as_str())
                                .push_bind(m.segments)
                                .push_bind(None::<String>)
                                .push_bind(m.idempotency_key.clone())
                                .push_bind(m.request_hash.clone())
                                .push_bind(m.send_at.map(micros))
                                .push_bind(m.expires_at.map(micros))
                                .push_bind(micros(m.created_at))
                                .push_bind(micros(m.created_at))
                                .push_bind(events_json(&m.events));
                        });
                    }
                    let due: Vec<(&NewMessage, Timestamp)> = batch
                        .iter()
                        .filter_map(|m| m.due_at.map(|d| (m, d)))
                        .collect();
                    for chunk in due.chunks(PARAMS / 7) {
                        let q = script.statement(
                            "INSERT INTO outbox (message_id, tenant_id, due_at, phase, attempts, lease_owner, lease_until, lane) ",
                        );
                        q.push_values(chunk, |mut b, (m, due_at)| {
                            let leased = lease.filter(|l| l.covers(Some(*due_at), &m.channel));
                            b.push_bind(m.id.as_str())
                                .push_bind(m.tenant_id.as_str())
                                .push_bind(micros(*due_at))
                                .push_bind(OutboxPhase::Send.as_str())
                                .push_bind(0i64)
                                .push_bind(leased.map(|l| l.owner.as_str()))
                                .push_bind(leased.map(|l| micros(l.until)))
                                .push_bind(m.channel.as_str());
                        });
                    }
                    for chunk in requests.chunks(PARAMS / 5) {
                        let q = script.statement(
                            "INSERT INTO batch_requests (tenant_id, idempotency_key, request_hash, response, created_at) ",
                        );
                        q.push_values(chunk, |mut b, r| {
                            b.push_bind(r.tenant_id.as_str())
                                .push_bind(r.idempotency_key.as_str())
                                .push_bind(r.request_hash.as_str())
                                .push_bind(r.response.as_str())
                                .push_bind(micros(r.created_at));
                        });
                    }
                    // Unique keys: an identity taken meanwhile, or an Idempotency-Key.
                    script.run(self.writer()).await.map_err(|e| match &e {
                        sqlx::Error::Database(db)
                            if db.is_unique_violation()
                                && (db.message().contains("identities")
                                    || db.constraint().is_some_and(|c| c.contains("identities"))) =>
                        {
                            $crate::noted(true);
                            StoreError::IdentityTaken(
                                "a recipient's identity was taken by another contact meanwhile".into(),
                            )
                        }
                        _ => idempotency_conflict(e),
                    })
                }

                async fn batch_request(&self, tenant: &str, key: &str) -> StoreResult<Option<BatchRequest>> {
                    let row = sqlx::query(
                        "SELECT tenant_id, idempotency_key, request_hash, response, created_at FROM batch_requests \
                         WHERE tenant_id = $1 AND idempotency_key = $2",
                    )
                    .bind(tenant)
                    .bind(key)
                    .fetch_optional(self.reader())
                    .await?;
                    row.map(|r| {
                        Ok(BatchRequest {
                            tenant_id: r.try_get("tenant_id")?,
                            idempotency_key: r.try_get("idempotency_key")?,
                            request_hash: r.try_get("request_hash")?,
                            response: r.try_get("response")?,
                            created_at: from_micros(r.try_get("created_at")?)?,
                        })
                    })
                    .transpose()
                }

                async fn message(&self, tenant: &str, id: &str) -> StoreResult<Option<MessageWithEvents>> {
                    let mut conn = self.reader().acquire().await?;
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {MESSAGE_COLUMNS}, events FROM messages WHERE tenant_id = $1 AND id = $2"
                    )))
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
                    let Some(row) = row else { return Ok(None) };
                    let message = message_from_row(&row)?;
                    let events: String = row.try_get("events")?;
                    let events = events_from_db(id, &events)?;
                    Ok(Some(MessageWithEvents { message, events }))
                }

                async fn list_messages(
                    &self,
                    tenant: &str,
                    filter: &MessageFilter,
                    page: &crate::PageRequest,
                ) -> StoreResult<crate::Page<Message>> {
                    let limit = i64::from(page.limit.clamp(1, 1000));
                    // The campaign's condition is written only when asked: neither planner
                    // uses an index for `($10 IS NULL OR campaign = $10)`, and the campaign
                    // index is partial (`campaign IS NOT NULL`), which `campaign = $10` implies.
                    let campaign = if filter.campaign.is_some() { "AND campaign = $10 " } else { "" };
                    // The same for the sender, numbered after the campaign's when both are asked.
                    let sender = match (&filter.sender, filter.campaign.is_some()) {
                        (None, _) => "",
                        (Some(_), true) => "AND sender = $11 ",
                        (Some(_), false) => "AND sender = $10 ",
                    };
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant_id = $1 \
                           AND ($2 IS NULL OR id < $2) AND ($3 IS NULL OR to_address = $3) \
                           AND ($4 IS NULL OR status = $4) AND ($5 IS NULL OR channel = $5) \
                           AND ($6 IS NULL OR contact_id = $6) AND ($7 IS NULL OR created_at >= $7) \
                           AND ($8 IS NULL OR created_at < $8) {campaign}{sender}\
                         ORDER BY id DESC LIMIT $9"
                    )))
                    .bind(tenant)
                    .bind(page.after.as_deref())
                    .bind(filter.to.as_deref())
                    .bind(filter.status.map(|s| s.as_str()))
                    .bind(filter.channel.as_deref())
                    .bind(filter.contact_id.as_deref())
                    .bind(filter.created_from.map(micros))
                    .bind(filter.created_before.map(micros))
                    .bind(limit + 1);
                    if let Some(campaign) = &filter.campaign {
                        query = query.bind(campaign.as_str());
                    }
                    if let Some(sender) = &filter.sender {
                        query = query.bind(sender.as_str());
                    }
                    let rows = query.fetch_all(self.reader()).await?;
                    let mut data = rows.iter().map(message_from_row).collect::<StoreResult<Vec<_>>>()?;
                    let more = data.len() as i64 > limit;
                    data.truncate(limit as usize);
                    let next_cursor = if more { data.last().map(|m| m.id.clone()) } else { None };
                    Ok(crate::Page { data, next_cursor })
                }

                async fn messages_of_contact(&self, tenant: &str, contact_id: &str, limit: u32) -> StoreResult<Vec<Message>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant_id = $1 AND contact_id = $2 \
                         ORDER BY created_at DESC, id DESC LIMIT $3"
                    )))
                    .bind(tenant)
                    .bind(contact_id)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(message_from_row)
                    .collect()
                }

                async fn messages_to_address(
                    &self,
                    tenant: &str,
                    contact_id: &str,
                    channel: &str,
                    address: &str,
                    limit: u32,
                ) -> StoreResult<Vec<Message>> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant_id = $1 AND contact_id = $2 \
                         AND channel = $3 AND to_address = $4 ORDER BY created_at DESC, id DESC LIMIT $5"
                    )))
                    .bind(tenant)
                    .bind(contact_id)
                    .bind(channel)
                    .bind(address)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?
                    .iter()
                    .map(message_from_row)
                    .collect()
                }

                async fn message_by_idempotency_key(&self, tenant: &str, key: &str) -> StoreResult<Option<Message>> {
                    Ok(self.messages_by_idempotency_keys(tenant, &[key]).await?.pop())
                }

                async fn messages_by_idempotency_keys(&self, tenant: &str, keys: &[&str]) -> StoreResult<Vec<Message>> {
                    let mut found = Vec::new();
                    for chunk in keys.chunks(PARAMS) {
                        let mut q = sqlx::QueryBuilder::<Db>::new(format!(
                            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant_id = "
                        ));
                        q.push_bind(tenant);
                        q.push(" AND idempotency_key IN (");
                        let mut sep = q.separated(", ");
                        for key in chunk {
                            sep.push_bind(*key);
                        }
                        q.push(")");
                        for row in q.build().fetch_all(self.reader()).await? {
                            found.push(message_from_row(&row)?);
                        }
                    }
                    Ok(found)
                }

                async fn claim_due_by(
                    &self,
                    now: Timestamp,
                    due_by: Timestamp,
                    limit: u32,
                    lease_owner: &str,
                    lease_for: SignedDuration,
                ) -> StoreResult<Vec<OutboxItem>> {
                    claim(self, Lanes::Any, now, due_by, limit, lease_owner, lease_for).await
                }

                async fn claim_lane(
                    &self,
                    lane: &str,
                    now: Timestamp,
                    due_by: Timestamp,
                    limit: u32,
                    lease_owner: &str,
                    lease_for: SignedDuration,
                ) -> StoreResult<Vec<OutboxItem>> {
                    claim(self, Lanes::Only(lane), now, due_by, limit, lease_owner, lease_for).await
                }

                async fn claim_strays(
                    &self,
                    known: &[String],
                    now: Timestamp,
                    limit: u32,
                    lease_owner: &str,
                    lease_for: SignedDuration,
                ) -> StoreResult<Vec<OutboxItem>> {
                    claim(self, Lanes::NoneOf(known), now, now, limit, lease_owner, lease_for).await
                }

                async fn extend_leases(
                    &self,
                    lease_owner: &str,
                    message_ids: &[String],
                    until: Timestamp,
                ) -> StoreResult<Vec<String>> {
                    let mut kept = Vec::with_capacity(message_ids.len());
                    if message_ids.is_empty() {
                        return Ok(kept);
                    }
                    // One statement per chunk, each its own transaction: a heartbeat never
                    // holds the writer for long.
                    for chunk in message_ids.chunks(PARAMS - 2) {
                        let mut q = sqlx::QueryBuilder::<Db>::new("UPDATE outbox SET lease_until = ");
                        q.push_bind(micros(until)).push(" WHERE lease_owner = ");
                        q.push_bind(lease_owner).push(" AND message_id IN (");
                        let mut sep = q.separated(", ");
                        let last = chunk.last().map(String::as_str).unwrap_or_default();
                        for id in chunk.iter().map(String::as_str).chain(std::iter::repeat(last)).take(statement_size(chunk.len())) {
                            sep.push_bind(id);
                        }
                        q.push(") RETURNING message_id");
                        for row in q.build().fetch_all(self.writer()).await? {
                            kept.push(row.try_get("message_id")?);
                        }
                    }
                    Ok(kept)
                }

                async fn release_leases(&self, lease_owner: &str, message_ids: &[String]) -> StoreResult<()> {
                    if message_ids.is_empty() {
                        return Ok(());
                    }
                    let mut tx = self.begin_write().await?;
                    for chunk in message_ids.chunks(PARAMS - 1) {
                        let mut q = sqlx::QueryBuilder::<Db>::new(
                            "UPDATE outbox SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ",
                        );
                        q.push_bind(lease_owner).push(" AND message_id IN (");
                        let mut ids = q.separated(", ");
                        for id in chunk {
                            ids.push_bind(id.as_str());
                        }
                        q.push(")");
                        q.build().execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn settle_round(
                    &self,
                    lease_owner: &str,
                    settlements: &[(String, Settlement)],
                    receipts: &[(String, MessageEvent)],
                    now: Timestamp,
                ) -> StoreResult<Vec<bool>> {
                    if settlements.is_empty() && receipts.is_empty() {
                        return Ok(Vec::new());
                    }
                    // A move to another step (a failed step of a fallback chain) and a dead
                    // address are rare and write more than the message: they take the
                    // locked path.
                    if $lock.is_empty()
                        && settlements.iter().all(|(_, s)| s.move_to.is_none() && s.drop_identity.is_none())
                        && let Some(kept) = settle_read_ahead(self, lease_owner, settlements, receipts, now).await?
                    {
                        return Ok(kept);
                    }
                    let mut tx = self.begin_write().await?;
                    // The outbox rows first: a settlement whose lease was lost writes nothing.
                    let mut kept: std::collections::HashSet<String> = std::collections::HashSet::new();
                    for q in &mut outbox_statements(lease_owner, settlements, true) {
                        for row in q.build().fetch_all(&mut *tx).await? {
                            kept.insert(row.try_get("message_id")?);
                        }
                    }
                    let settled: Vec<(&str, &Settlement)> = settlements
                        .iter()
                        .filter(|(id, _)| kept.contains(id))
                        .map(|(id, s)| (id.as_str(), s))
                        .collect();
                    for (id, s) in &settled {
                        if let Some(step) = &s.move_to {
                            sqlx::query(
                                "UPDATE messages SET step = $1, channel = $2, content = $3, segments = $4, provider_id = NULL, updated_at = $5, to_address = $7 WHERE id = $6",
                            )
                            .bind(step.step)
                            .bind(step.channel.as_str())
                            .bind(step.content.to_string())
                            .bind(step.segments)
                            .bind(micros(now))
                            .bind(*id)
                            .bind(step.to_address.as_str())
                            .execute(&mut *tx)
                            .await?;
                        }
                        if let Some(identity) = &s.drop_identity {
                            // The message's own tenant and contact: a settlement cannot
                            // remove anyone else's identity.
                            sqlx::query(
                                "DELETE FROM identities WHERE channel = $1 AND address = $2 \
                                 AND tenant_id = (SELECT tenant_id FROM messages WHERE id = $3) \
                                 AND contact_id = (SELECT contact_id FROM messages WHERE id = $3)",
                            )
                            .bind(identity.channel.as_str())
                            .bind(identity.address.as_str())
                            .bind(*id)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                    let ids = round_ids(settled.iter().map(|(id, _)| *id), receipts);
                    let mut log = LogBatch::load(&mut tx, &ids, true).await?;
                    apply_round(&mut log, &settled, receipts, now)?;
                    write_locked(&log, &mut tx).await?;
                    tx.commit().await?;
                    Ok(settlements.iter().map(|(id, _)| kept.contains(id)).collect())
                }

                async fn record_status(
                    &self,
                    message_id: &str,
                    incoming: &MessageEvent,
                ) -> StoreResult<Option<MessageStatus>> {
                    let mut tx = self.begin_write().await?;
                    let mut log = LogBatch::load(&mut tx, &[message_id], true).await?;
                    let moved = log.advance(message_id, incoming, incoming.at)?;
                    write_locked(&log, &mut tx).await?;
                    tx.commit().await?;
                    Ok(moved)
                }

                async fn record_statuses(
                    &self,
                    receipts: &[(String, MessageEvent)],
                ) -> StoreResult<Vec<Option<MessageStatus>>> {
                    if receipts.is_empty() {
                        return Ok(Vec::new());
                    }
                    if $lock.is_empty()
                        && let Some(moved) = record_read_ahead(self, receipts).await?
                    {
                        return Ok(moved);
                    }
                    let mut tx = self.begin_write().await?;
                    let ids = round_ids(std::iter::empty(), receipts);
                    let mut log = LogBatch::load(&mut tx, &ids, true).await?;
                    let moved = apply_receipts(&mut log, receipts)?;
                    write_locked(&log, &mut tx).await?;
                    tx.commit().await?;
                    Ok(moved)
                }

                async fn message_by_provider_id(&self, channel: &str, provider_id: &str) -> StoreResult<Option<Message>> {
                    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE provider_id = $1 AND channel = $2"
                    )))
                    .bind(provider_id)
                    .bind(channel)
                    .fetch_optional(self.reader())
                    .await?;
                    row.as_ref().map(message_from_row).transpose()
                }

                async fn fall_back(
                    &self,
                    message_id: &str,
                    from_step: i64,
                    events: &[MessageEvent],
                    to: &StepMove,
                    due_at: Timestamp,
                ) -> StoreResult<bool> {
                    let mut tx = self.begin_write().await?;
                    let tenant: Option<String> = sqlx::query_scalar(
                        "UPDATE messages SET step = $1, channel = $2, content = $3, segments = $4, provider_id = NULL, updated_at = $5, to_address = $8 \
                         WHERE id = $6 AND step = $7 RETURNING tenant_id",
                    )
                    .bind(to.step)
                    .bind(to.channel.as_str())
                    .bind(to.content.to_string())
                    .bind(to.segments)
                    .bind(micros(due_at))
                    .bind(message_id)
                    .bind(from_step)
                    .bind(to.to_address.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(tenant) = tenant else {
                        tx.rollback().await?;
                        return Ok(false);
                    };
                    sqlx::query("DELETE FROM outbox WHERE message_id = $1")
                        .bind(message_id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("INSERT INTO outbox (message_id, tenant_id, due_at, phase, attempts, lane) VALUES ($1, $2, $3, $4, 0, $5)")
                        .bind(message_id)
                        .bind(tenant.as_str())
                        .bind(micros(due_at))
                        .bind(OutboxPhase::Send.as_str())
                        .bind(to.channel.as_str())
                        .execute(&mut *tx)
                        .await?;
                    let mut log = LogBatch::load(&mut tx, &[message_id], true).await?;
                    for event in events {
                        log.append(message_id, event);
                    }
                    write_locked(&log, &mut tx).await?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn cancel(&self, tenant: &str, id: &str, at: Timestamp) -> StoreResult<CancelOutcome> {
                    let mut tx = self.begin_write().await?;
                    let status: Option<String> = sqlx::query_scalar(
                        "SELECT status FROM messages WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(status) = status else {
                        return Err(StoreError::NotFound(format!("message {id}")));
                    };
                    let current = status_from_db(&status)?;
                    // A message whose outbox row is leased is with a dispatcher, on its way to
                    // the provider (its `sending` mark is written with the outcome).
                    let lease: Option<Option<i64>> = sqlx::query_scalar(
                        "SELECT lease_until FROM outbox WHERE message_id = $1",
                    )
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(Some(until)) = lease
                        && until > micros(at)
                        && !current.is_final()
                    {
                        tx.rollback().await?;
                        return Ok(CancelOutcome::TooLate(MessageStatus::Sending));
                    }
                    let event = MessageEvent::new(MessageStatus::Canceled, at)
                        .reason("canceled")
                        .detail("canceled through the API");
                    let mut log = LogBatch::load(&mut tx, &[id], true).await?;
                    if log.advance(id, &event, at)?.is_none() {
                        tx.rollback().await?;
                        return Ok(CancelOutcome::TooLate(current));
                    }
                    write_locked(&log, &mut tx).await?;
                    sqlx::query("DELETE FROM outbox WHERE message_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(CancelOutcome::Canceled)
                }

                async fn review_held(
                    &self,
                    tenant: &str,
                    id: &str,
                    review: &Review,
                    at: Timestamp,
                ) -> StoreResult<ReviewOutcome> {
                    let mut tx = self.begin_write().await?;
                    let row: Option<(String, String)> = sqlx::query_as(
                        "SELECT status, channel FROM messages WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some((status, channel)) = row else {
                        return Err(StoreError::NotFound(format!("message {id}")));
                    };
                    let current = status_from_db(&status)?;
                    if current != MessageStatus::Held {
                        tx.rollback().await?;
                        return Ok(ReviewOutcome::NotHeld(current));
                    }
                    let event = match review {
                        Review::Release { status, detail, .. } => MessageEvent::new(*status, at)
                            .reason("released")
                            .detail(detail.clone())
                            .channel(channel.clone()),
                        Review::Reject { detail } => MessageEvent::new(MessageStatus::Rejected, at)
                            .reason("content_check")
                            .detail(detail.clone()),
                    };
                    let mut log = LogBatch::load(&mut tx, &[id], true).await?;
                    let Some(moved) = log.advance(id, &event, at)? else {
                        tx.rollback().await?;
                        return Ok(ReviewOutcome::NotHeld(current));
                    };
                    write_locked(&log, &mut tx).await?;
                    if let Review::Release { due_at, .. } = review {
                        sqlx::query(
                            "INSERT INTO outbox (message_id, tenant_id, due_at, phase, attempts, lease_owner, lease_until, lane) \
                             VALUES ($1, $2, $3, $4, 0, NULL, NULL, $5)",
                        )
                        .bind(id)
                        .bind(tenant)
                        .bind(micros(*due_at))
                        .bind(OutboxPhase::Send.as_str())
                        .bind(channel.as_str())
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    Ok(ReviewOutcome::Done(moved))
                }

                async fn sim_record(&self, tenant: &str, entries: &[SimEntry]) -> StoreResult<()> {
                    if entries.is_empty() {
                        return Ok(());
                    }
                    let mut tx = self.begin_write().await?;
                    for chunk in entries.chunks(PARAMS / 7) {
                        let mut q = sqlx::QueryBuilder::<Db>::new(
                            "INSERT INTO sim_messages (id, tenant_id, number, direction, message_id, text, at) ",
                        );
                        q.push_values(chunk, |mut b, entry| {
                            b.push_bind(entry.id.as_str())
                                .push_bind(tenant)
                                .push_bind(entry.number.as_str())
                                .push_bind(entry.direction.as_str())
                                .push_bind(entry.message_id.clone())
                                .push_bind(entry.text.as_str())
                                .push_bind(micros(entry.at));
                        });
                        q.build().execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn sim_messages(&self, tenant: &str, number: &str) -> StoreResult<Vec<SimEntry>> {
                    let rows = sqlx::query(
                        "SELECT id, number, direction, message_id, text, at FROM sim_messages WHERE tenant_id = $1 AND number = $2 ORDER BY at, id",
                    )
                    .bind(tenant)
                    .bind(number)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter()
                        .map(|row| {
                            Ok(SimEntry {
                                id: row.try_get("id")?,
                                number: row.try_get("number")?,
                                direction: row.try_get("direction")?,
                                message_id: row.try_get("message_id")?,
                                text: row.try_get("text")?,
                                at: from_micros(row.try_get("at")?)?,
                            })
                        })
                        .collect()
                }
                async fn sim_phones(&self, tenant: &str, limit: u32) -> StoreResult<Vec<SimPhoneSummary>> {
                    let rows = sqlx::query(
                        "SELECT number, COUNT(*) AS messages, MAX(at) AS last_at FROM sim_messages WHERE tenant_id = $1 GROUP BY number ORDER BY MAX(at) DESC, number LIMIT $2",
                    )
                    .bind(tenant)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter()
                        .map(|row| {
                            Ok(SimPhoneSummary {
                                number: row.try_get("number")?,
                                messages: row.try_get("messages")?,
                                last_at: from_micros(row.try_get("last_at")?)?,
                            })
                        })
                        .collect()
                }
                async fn queue_webhook_event(
                    &self,
                    tenant: &str,
                    key: &str,
                    event_type: &str,
                    payload: &str,
                    at: Timestamp,
                ) -> StoreResult<u64> {
                    let at = micros(at);
                    let done = sqlx::query(
                        "INSERT INTO webhook_deliveries (id, tenant_id, webhook_id, event_type, payload, status, attempts, due_at, created_at, updated_at) \
                         SELECT $1 || '_' || id, tenant_id, id, $2, $3, 'pending', 0, $4, $4, $4 FROM webhooks WHERE tenant_id = $5 \
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(key)
                    .bind(event_type)
                    .bind(payload)
                    .bind(at)
                    .bind(tenant)
                    .execute(self.writer())
                    .await?;
                    Ok(done.rows_affected())
                }

                async fn create_webhook(&self, tenant: &str, url: &str, secret: &str, now: Timestamp) -> StoreResult<Webhook> {
                    let hook = Webhook {
                        id: new_id(),
                        tenant_id: tenant.to_owned(),
                        url: url.to_owned(),
                        secret: secret.to_owned(),
                        created_at: now,
                        circuit: Circuit::default(),
                    };
                    sqlx::query("INSERT INTO webhooks (id, tenant_id, url, secret, created_at) VALUES ($1, $2, $3, $4, $5)")
                        .bind(hook.id.as_str())
                        .bind(tenant)
                        .bind(url)
                        .bind(secret)
                        .bind(micros(now))
                        .execute(self.writer())
                        .await?;
                    Ok(hook)
                }

                async fn webhooks(&self, tenant: &str) -> StoreResult<Vec<Webhook>> {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 ORDER BY id"
                    )))
                    .bind(tenant)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter().map(webhook_from_row).collect()
                }

                async fn delete_webhook(&self, tenant: &str, id: &str) -> StoreResult<bool> {
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Ok(false);
                    }
                    sqlx::query("DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2")
                        .bind(tenant)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn set_webhook_secret(&self, tenant: &str, id: &str, secret: &str) -> StoreResult<bool> {
                    let done = sqlx::query("UPDATE webhooks SET secret = $1 WHERE tenant_id = $2 AND id = $3")
                        .bind(secret)
                        .bind(tenant)
                        .bind(id)
                        .execute(self.writer())
                        .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn webhook_deliveries(&self, tenant: &str, webhook_id: &str) -> StoreResult<Vec<WebhookDelivery>> {
                    let rows = sqlx::query(
                        "SELECT id, webhook_id, event_type, payload, status, attempts, due_at, last_code, last_error, created_at, updated_at \
                         FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2 ORDER BY created_at DESC, id DESC LIMIT 100",
                    )
                    .bind(tenant)
                    .bind(webhook_id)
                    .fetch_all(self.reader())
                    .await?;
                    let mut out = rows.iter().map(delivery_from_row).collect::<StoreResult<Vec<_>>>()?;
                    out.reverse();
                    Ok(out)
                }

                async fn claim_webhook_deliveries(
                    &self,
                    now: Timestamp,
                    limit: u32,
                    lease_owner: &str,
                    lease_for: SignedDuration,
                ) -> StoreResult<Vec<DueDelivery>> {
                    let until = now.checked_add(lease_for).unwrap_or(Timestamp::MAX);
                    // Asked every round, so a read, on the reader: a server with nothing to
                    // deliver does not queue a write transaction behind the send pipeline's.
                    // It finds the webhooks with a delivery due, one probe of
                    // `webhook_deliveries_pending` each, skipping open circuits: the backlog
                    // of a dead endpoint (all of it due) is not read.
                    let lanes: Vec<(String, Option<i64>)> = sqlx::query_as(
                        "SELECT id, retry_at FROM (SELECT w.id, w.retry_at, \
                           (SELECT d.due_at FROM webhook_deliveries d \
                             WHERE d.webhook_id = w.id AND d.status = 'pending' AND d.due_at <= $1 \
                               AND (d.lease_until IS NULL OR d.lease_until <= $1) \
                             ORDER BY d.due_at LIMIT 1) AS first_due \
                           FROM webhooks w WHERE w.retry_at IS NULL OR w.retry_at <= $1) AS lanes \
                         WHERE first_due IS NOT NULL ORDER BY first_due, id LIMIT $2",
                    )
                    .bind(micros(now))
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                    if lanes.is_empty() {
                        return Ok(Vec::new());
                    }
                    // Each webhook is a lane with its share of `limit`, taken oldest due first:
                    // the backlog of one (an endpoint that just came back) does not hold up the
                    // others. Read in index order, a claim reads no more rows than it takes.
                    let claim = format!(
                        "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2 \
                         WHERE id IN (SELECT id FROM webhook_deliveries \
                           WHERE webhook_id = $3 AND status = 'pending' AND due_at <= $4 \
                             AND (lease_until IS NULL OR lease_until <= $4) \
                           ORDER BY due_at, id LIMIT $5{}) \
                         AND EXISTS (SELECT 1 FROM webhooks WHERE id = $3 AND (retry_at IS NULL OR $6)) \
                         RETURNING id",
                        $lock
                    );
                    let mut tx = self.begin_write().await?;
                    let mut ids: Vec<String> = Vec::new();
                    let mut left = usize::try_from(limit).unwrap_or(usize::MAX);
                    for (index, (hook, retry_at)) in lanes.iter().enumerate() {
                        if left == 0 {
                            break;
                        }
                        let probe = retry_at.is_some();
                        let share = if probe {
                            // An open circuit whose time came lets one delivery through, a
                            // probe, and stays open (half-open) until the probe's outcome is
                            // recorded or its lease runs out: no other is claimed meanwhile,
                            // here or on another node.
                            let opened = sqlx::query(
                                "UPDATE webhooks SET retry_at = $1 WHERE id = $2 AND retry_at <= $3",
                            )
                            .bind(micros(until))
                            .bind(hook.as_str())
                            .bind(micros(now))
                            .execute(&mut *tx)
                            .await?;
                            if opened.rows_affected() == 0 {
                                continue;
                            }
                            1
                        } else {
                            left.div_ceil(lanes.len() - index)
                        };
                        // The circuit of a lane read as closed may have opened since (another
                        // node recorded the fifth failure): then it takes nothing.
                        let claimed: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(claim.clone()))
                            .bind(lease_owner)
                            .bind(micros(until))
                            .bind(hook.as_str())
                            .bind(micros(now))
                            .bind(i64::try_from(share).unwrap_or(i64::MAX))
                            .bind(probe)
                            .fetch_all(&mut *tx)
                            .await?;
                        left = left.saturating_sub(claimed.len());
                        ids.extend(claimed);
                    }
                    let mut out = Vec::with_capacity(ids.len());
                    for chunk in ids.chunks(PARAMS) {
                        let mut q = sqlx::QueryBuilder::<Db>::new(
                            "SELECT d.id, d.webhook_id, d.event_type, d.payload, d.status, d.attempts, d.due_at, d.last_code, d.last_error, d.created_at, d.updated_at, w.url, w.secret \
                             FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.id IN (",
                        );
                        let mut sep = q.separated(", ");
                        for id in chunk {
                            sep.push_bind(id.as_str());
                        }
                        q.push(") ORDER BY d.due_at, d.id");
                        for row in q.build().fetch_all(&mut *tx).await? {
                            out.push(DueDelivery {
                                delivery: delivery_from_row(&row)?,
                                url: row.try_get("url")?,
                                secret: row.try_get("secret")?,
                            });
                        }
                    }
                    tx.commit().await?;
                    Ok(out)
                }

                async fn finish_webhook_delivery(
                    &self,
                    delivery: &WebhookDelivery,
                    lease_owner: &str,
                    outcome: &DeliveryOutcome,
                    news: &EndpointNews,
                    now: Timestamp,
                ) -> StoreResult<Option<Circuit>> {
                    let (status, due_at, code, error) = match outcome {
                        DeliveryOutcome::Delivered { code } => ("delivered", None, Some(*code), None),
                        DeliveryOutcome::Retry { due_at, code, error } => ("pending", Some(*due_at), *code, Some(error.as_str())),
                        DeliveryOutcome::Failed { code, error } => ("failed", None, *code, Some(error.as_str())),
                    };
                    let record = || {
                        sqlx::query(
                            "UPDATE webhook_deliveries SET status = $1, due_at = COALESCE($2, due_at), last_code = $3, last_error = $4, \
                             attempts = attempts + 1, lease_owner = NULL, lease_until = NULL, updated_at = $5 \
                             WHERE id = $6 AND lease_owner = $7",
                        )
                        .bind(status)
                        .bind(due_at.map(micros))
                        .bind(code)
                        .bind(error)
                        .bind(micros(now))
                        .bind(delivery.id.as_str())
                        .bind(lease_owner)
                    };
                    match news.reachability {
                        // An answer closes the circuit, whatever it was: nothing to read, and
                        // nothing written but the delivery when it was closed and healthy, as
                        // for every delivery to a healthy endpoint. Two statements, no
                        // transaction: the hot path keeps its one round trip per write.
                        Reachability::Answered => {
                            if record().execute(self.writer()).await?.rows_affected() == 0 {
                                return Ok(None);
                            }
                            sqlx::query(
                                "UPDATE webhooks SET failures = 0, opens = 0, failing_since = NULL, retry_at = NULL \
                                 WHERE id = $1 AND (failures <> 0 OR opens <> 0 OR retry_at IS NOT NULL)",
                            )
                            .bind(delivery.webhook_id.as_str())
                            .execute(self.writer())
                            .await?;
                            Ok(Some(Circuit::default()))
                        }
                        // Nothing to say about the endpoint: its circuit as it stands.
                        Reachability::Untold => {
                            if record().execute(self.writer()).await?.rows_affected() == 0 {
                                return Ok(None);
                            }
                            let row = sqlx::query("SELECT failures, opens, failing_since, retry_at FROM webhooks WHERE id = $1")
                                .bind(delivery.webhook_id.as_str())
                                .fetch_optional(self.writer())
                                .await?;
                            row.as_ref().map(circuit_from_row).transpose()
                        }
                        // A failure counts on the circuit as it stands, locked until the
                        // transaction ends: failures recorded together, on several nodes,
                        // each count. The webhook's row first, then the delivery's, the
                        // order of the claim and of `delete_webhook`.
                        Reachability::Down => {
                            let mut tx = self.begin_write().await?;
                            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                                "SELECT failures, opens, failing_since, retry_at FROM webhooks WHERE id = $1{}",
                                if $lock.is_empty() { "" } else { " FOR UPDATE" }
                            )))
                            .bind(delivery.webhook_id.as_str())
                            .fetch_optional(&mut *tx)
                            .await?;
                            let Some(row) = row else {
                                return Ok(None);
                            };
                            let stored = circuit_from_row(&row)?;
                            let circuit = news.breaker.after(stored, Reachability::Down, now, news.jitter);
                            if circuit != stored {
                                sqlx::query(
                                    "UPDATE webhooks SET failures = $1, opens = $2, failing_since = $3, retry_at = $4 WHERE id = $5",
                                )
                                .bind(i64::from(circuit.failures))
                                .bind(i64::from(circuit.opens))
                                .bind(circuit.failing_since.map(micros))
                                .bind(circuit.retry_at.map(micros))
                                .bind(delivery.webhook_id.as_str())
                                .execute(&mut *tx)
                                .await?;
                            }
                            if record().execute(&mut *tx).await?.rows_affected() == 0 {
                                // Dropped, the transaction takes the failure back: the node
                                // that holds the delivery now reports its own attempt.
                                return Ok(None);
                            }
                            tx.commit().await?;
                            Ok(Some(circuit))
                        }
                    }
                }

                async fn release_webhook_deliveries(&self, ids: &[String], lease_owner: &str) -> StoreResult<()> {
                    for chunk in ids.chunks(PARAMS) {
                        let mut q = sqlx::QueryBuilder::<Db>::new(
                            "UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ",
                        );
                        q.push_bind(lease_owner);
                        q.push(" AND id IN (");
                        let mut sep = q.separated(", ");
                        for id in chunk {
                            sep.push_bind(id.as_str());
                        }
                        q.push(")");
                        q.build().execute(self.writer()).await?;
                    }
                    Ok(())
                }

                async fn expire_webhook_deliveries(
                    &self,
                    created_by: Timestamp,
                    error: &str,
                    now: Timestamp,
                ) -> StoreResult<u64> {
                    let done = sqlx::query(
                        "UPDATE webhook_deliveries SET status = 'failed', last_error = $1, updated_at = $2 \
                         WHERE status = 'pending' AND created_at <= $3 AND (lease_until IS NULL OR lease_until <= $2)",
                    )
                    .bind(error)
                    .bind(micros(now))
                    .bind(micros(created_by))
                    .execute(self.writer())
                    .await?;
                    Ok(done.rows_affected())
                }

                async fn prune_webhook_deliveries(
                    &self,
                    created_before: Timestamp,
                    limit: u32,
                ) -> StoreResult<u64> {
                    let done = sqlx::query(
                        "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries \
                         WHERE status <> 'pending' AND created_at < $1 ORDER BY created_at LIMIT $2)",
                    )
                    .bind(micros(created_before))
                    .bind(i64::from(limit))
                    .execute(self.writer())
                    .await?;
                    Ok(done.rows_affected())
                }
            }
        }
    };
}

impl_message_store!(sqlite_messages, crate::SqliteStore, sqlx::Sqlite, "");
impl_message_store!(
    postgres_messages,
    crate::PostgresStore,
    sqlx::Postgres,
    " FOR UPDATE SKIP LOCKED"
);
