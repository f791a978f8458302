//! Answers to a customer's message, sent once: each is keyed by the inbound message it
//! answers (and its rank among that message's answers), so the pipeline running the same
//! message again after a crash finds the answer it already accepted instead of sending a
//! second one.

use crate::send::{AcceptContext, AcceptError, Idempotency, SendRequest, accept};
use relais_store::{InboundMessage, StoreError};

/// Accepts `content` for sending back where `message` came from, once per `key`.
pub async fn reply_once(
    ctx: AcceptContext<'_>,
    message: &InboundMessage,
    content: serde_json::Value,
    key: &str,
) -> Result<(), AcceptError> {
    let channel = message
        .channel_id
        .clone()
        .unwrap_or_else(|| message.channel.as_str().to_owned());
    let mut body = serde_json::json!({
        "to": {"channel": message.channel.as_str(), "address": message.from_address},
        "channel": channel,
        "content": content,
        "purpose": "transactional",
    });
    // From the number or short code the customer wrote to, where the channel has one.
    if message.channel_id.is_some() && !message.to_address.is_empty() {
        body["from"] = serde_json::Value::String(message.to_address.clone());
    }
    let request: SendRequest = serde_json::from_value(body.clone())
        .map_err(|e| AcceptError::Store(StoreError::Corrupt(format!("a reply request: {e}"))))?;
    let idempotency = Idempotency::new(key, &body)
        .map_err(|e| AcceptError::Store(StoreError::Corrupt(e.to_string())))?;
    match accept(ctx, &message.tenant_id, request, Some(idempotency)).await {
        Ok(_) => Ok(()),
        // Answered already, with a text that has changed since (the tenant edited it).
        Err(AcceptError::IdempotencyConflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
