//! Answers to a customer's message, sent once: each is keyed by the inbound message it
//! answers (and its rank among that message's answers), so the pipeline running the same
//! message again after a crash finds the answer it already accepted instead of sending a
//! second one.

use crate::send::{AcceptContext, AcceptError, Idempotency, SendRequest, accept_many};
use relais_store::{InboundMessage, StoreError};

/// One answer to send back where `message` came from, once per `key`.
pub struct Reply<'a> {
    pub message: &'a InboundMessage,
    pub content: serde_json::Value,
    pub key: String,
}

/// Accepts `content` for sending back where `message` came from, once per `key`.
pub async fn reply_once(
    ctx: AcceptContext<'_>,
    message: &InboundMessage,
    content: serde_json::Value,
    key: &str,
) -> Result<(), AcceptError> {
    let reply = Reply {
        message,
        content,
        key: key.to_owned(),
    };
    reply_many(ctx, vec![reply])
        .await
        .pop()
        .unwrap_or_else(|| Err(StoreError::Corrupt("a reply got no answer".into()).into()))
}

/// [`reply_once`] for several answers, accepted together (one transaction); the outcomes
/// in their order.
pub async fn reply_many(
    ctx: AcceptContext<'_>,
    replies: Vec<Reply<'_>>,
) -> Vec<Result<(), AcceptError>> {
    let mut outcomes: Vec<Option<Result<(), AcceptError>>> = Vec::with_capacity(replies.len());
    let mut requests = Vec::with_capacity(replies.len());
    let mut asked = Vec::with_capacity(replies.len());
    for (index, reply) in replies.into_iter().enumerate() {
        match request_of(reply) {
            Ok((tenant, request, idempotency)) => {
                requests.push((tenant, request, Some(idempotency)));
                asked.push(index);
                outcomes.push(None);
            }
            Err(e) => outcomes.push(Some(Err(e))),
        }
    }
    for (index, answer) in asked.into_iter().zip(accept_many(ctx, requests).await) {
        outcomes[index] = Some(match answer {
            Ok(_) => Ok(()),
            // Answered already, with a text that has changed since (the tenant edited it).
            Err(AcceptError::IdempotencyConflict { .. }) => Ok(()),
            Err(e) => Err(e),
        });
    }
    outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| Err(StoreError::Corrupt("a reply got no answer".into()).into()))
        })
        .collect()
}

fn request_of(reply: Reply<'_>) -> Result<(String, SendRequest, Idempotency), AcceptError> {
    let message = reply.message;
    let channel = message
        .channel_id
        .clone()
        .unwrap_or_else(|| message.channel.as_str().to_owned());
    let mut body = serde_json::json!({
        "to": {"channel": message.channel.as_str(), "address": message.from_address},
        "channel": channel,
        "content": reply.content,
        "purpose": "transactional",
    });
    // From the number or short code the customer wrote to, where the channel has one.
    if message.channel_id.is_some() && !message.to_address.is_empty() {
        body["from"] = serde_json::Value::String(message.to_address.clone());
    }
    let request: SendRequest = serde_json::from_value(body.clone())
        .map_err(|e| AcceptError::Store(StoreError::Corrupt(format!("a reply request: {e}"))))?;
    let idempotency = Idempotency::new(&reply.key, &body)
        .map_err(|e| AcceptError::Store(StoreError::Corrupt(e.to_string())))?;
    Ok((message.tenant_id.clone(), request, idempotency))
}
