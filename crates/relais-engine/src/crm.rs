//! What the tenant's application (its CRM) hears of a contact's first-party data changing,
//! through its signed outgoing webhooks: `consent.changed` when a keyword or the API
//! writes a consent record, `flow.answer_captured` when a bot flow stores an answer.
//!
//! Each event is queued once per key (the consent record's id; the answer's message and
//! attribute), so a step that runs again after a crash queues nothing new. A tenant
//! without webhooks gets nothing queued and costs one read.

use jiff::Timestamp;
use relais_core::consent::ConsentRecord;
use relais_store::{FlowAnswer, Store, StoreError};
use serde_json::{Value, json};

/// A contact's consent changed (a STOP or START keyword, or `POST /v1/contacts/{id}/consents`).
pub const CONSENT_CHANGED: &str = "consent.changed";

/// A bot flow stored a customer's answer on their contact.
pub const FLOW_ANSWER_CAPTURED: &str = "flow.answer_captured";

/// Appends `record` to the contact's consent ledger, then tells the tenant's webhooks
/// (`consent.changed`, keyed by the record's id).
pub async fn record_consent(
    store: &dyn Store,
    tenant: &str,
    record: &ConsentRecord,
) -> Result<(), StoreError> {
    store.append_consent(tenant, record).await?;
    consent_changed(store, tenant, record, None, record.recorded_at).await
}

/// Queues `consent.changed` for `record` (once per record); `message_id` is the inbound
/// message that carried the keyword, when one did.
pub async fn consent_changed(
    store: &dyn Store,
    tenant: &str,
    record: &ConsentRecord,
    message_id: Option<&str>,
    at: Timestamp,
) -> Result<(), StoreError> {
    let data = json!({
        "consent_id": record.id,
        "contact_id": record.contact_id,
        // `null`: every channel (STOPALL, or a record given without a channel).
        "channel": record.channel,
        "purpose": record.purpose,
        "status": record.status,
        "source": record.source,
        "proof": record.proof,
        "message_id": message_id,
        "recorded_at": record.recorded_at,
    });
    queue(
        store,
        tenant,
        &format!("consent_{}", record.id),
        CONSENT_CHANGED,
        data,
        at,
    )
    .await
}

/// Queues `flow.answer_captured` for `answer` (once per message and attribute).
pub async fn answer_captured(
    store: &dyn Store,
    answer: &FlowAnswer,
    at: Timestamp,
) -> Result<(), StoreError> {
    let data = json!({
        "contact_id": answer.contact_id,
        "conversation_id": answer.conversation_id,
        "flow": answer.flow,
        "node": answer.node,
        "attribute": answer.attribute,
        "value": answer.value,
        "channel": answer.channel,
        "message_id": answer.message_id,
        "at": answer.answered_at,
    });
    queue(
        store,
        &answer.tenant_id,
        &format!("answer_{}_{}", answer.message_id, answer.attribute),
        FLOW_ANSWER_CAPTURED,
        data,
        at,
    )
    .await
}

/// The event in the envelope every webhook event has (`type`, `timestamp`, `data`),
/// queued for each of the tenant's webhooks under `key`.
async fn queue(
    store: &dyn Store,
    tenant: &str,
    key: &str,
    event_type: &str,
    data: Value,
    at: Timestamp,
) -> Result<(), StoreError> {
    // Most tenants have no webhook: a read (on any of the readers) spares them a write on
    // the one writer.
    if store.webhooks(tenant).await?.is_empty() {
        return Ok(());
    }
    let event = json!({"type": event_type, "timestamp": at, "data": data});
    store
        .queue_webhook_event(tenant, key, event_type, &event.to_string(), at)
        .await?;
    Ok(())
}
