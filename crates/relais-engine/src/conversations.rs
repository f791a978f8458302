//! Answers in a conversation: a reply goes to the customer on the channel they last
//! wrote on, unless the sender picks another, and never outside a channel's
//! customer-service window (see [`relais_core::channel::ChannelKind::customer_service_window`]).
//! A reply and a change of state are published on the live event stream once stored.

use crate::events::{EventKind, Events};
use crate::send::{AcceptError, Accepted, Acceptor, Idempotency, SendRequest};
use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::conversation::ConversationState;
use relais_store::{Conversation, Store, StoreError};

/// Why a reply was refused; nothing was sent.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("conversation {0} not found")]
    NotFound(String),
    #[error(
        "the customer last wrote on {channel} at {last_inbound_at}; its customer-service window closed at {closed_at}: only an approved template may be sent now"
    )]
    WindowClosed {
        channel: ChannelKind,
        last_inbound_at: Timestamp,
        closed_at: Timestamp,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Accept(#[from] AcceptError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A reply in a conversation, as `POST /v1/conversations/{id}/messages` takes it.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The message content (`{"text": …}` or richer), as `POST /v1/messages` takes it.
    pub content: serde_json::Value,
    /// Another channel than the one the customer last wrote on (a kind, or a configured
    /// channel's name or id).
    pub channel: Option<String>,
}

/// When the window of the channel the customer last wrote on closes, if it has one.
pub fn window_closes(conversation: &Conversation) -> Option<Timestamp> {
    let window = conversation.channel.customer_service_window()?;
    conversation.last_inbound_at.checked_add(window).ok()
}

/// Accepts `reply` for sending in the conversation `id`, records it as the
/// conversation's latest message and publishes `message.sent` (once per message).
#[allow(clippy::too_many_arguments)]
pub async fn reply(
    store: &dyn Store,
    acceptor: &Acceptor,
    events: Option<&Events>,
    tenant: &str,
    id: &str,
    reply: Reply,
    idempotency: Option<Idempotency>,
    now: Timestamp,
) -> Result<(Conversation, Accepted), ReplyError> {
    let conversation = store
        .conversation(tenant, id)
        .await?
        .ok_or_else(|| ReplyError::NotFound(id.to_owned()))?;
    let same_channel = reply.channel.as_deref().is_none_or(|c| {
        c == conversation.channel.as_str() || Some(c) == conversation.channel_id.as_deref()
    });
    // A template sent by name is what a closed window still allows; the accept path
    // decides whether the channel can send it.
    let template = reply.content.get("template").is_some();
    let body = if same_channel {
        if let Some(closed_at) = window_closes(&conversation)
            && now >= closed_at
            && !template
        {
            return Err(ReplyError::WindowClosed {
                channel: conversation.channel,
                last_inbound_at: conversation.last_inbound_at,
                closed_at,
            });
        }
        let channel = conversation
            .channel_id
            .clone()
            .unwrap_or_else(|| conversation.channel.as_str().to_owned());
        serde_json::json!({
            "to": {"channel": conversation.channel.as_str(), "address": conversation.address},
            "channel": channel,
            "content": reply.content,
            "purpose": "transactional",
        })
    } else {
        // Another channel: the contact's own identity there (routing refuses a channel the
        // contact has no address on).
        serde_json::json!({
            "to": {"contact_id": conversation.contact_id},
            "channel": reply.channel,
            "content": reply.content,
            "purpose": "transactional",
        })
    };
    let request: SendRequest =
        serde_json::from_value(body).map_err(|e| ReplyError::Invalid(e.to_string()))?;
    let accepted = acceptor.accept(tenant, request, idempotency).await?;
    let channel = reply
        .channel
        .as_deref()
        .unwrap_or(conversation.channel.as_str());
    if !accepted.replayed {
        let text = match &reply.content {
            serde_json::Value::Object(map) => map.get("text").cloned().unwrap_or_default(),
            _ => serde_json::Value::Null,
        };
        store
            .note_conversation_reply(
                tenant,
                id,
                &serde_json::json!({
                    "direction": "out",
                    "text": text,
                    "channel": channel,
                    "at": now,
                    "message_id": accepted.id,
                }),
                now,
            )
            .await?;
    }
    // A replay publishes too: a retry (same Idempotency-Key) after a failure here
    // publishes what the first try could not, and the key keeps it to one event.
    if let Some(events) = events {
        events
            .publish_about(
                tenant,
                EventKind::MessageSent,
                Some(id),
                conversation.team.as_deref(),
                serde_json::json!({
                    "id": accepted.id,
                    "status": accepted.status.as_str(),
                    "channel": channel,
                    "content": reply.content,
                    "contact_id": conversation.contact_id,
                    "conversation_id": id,
                }),
                Some(&format!("out_{}", accepted.id)),
            )
            .await?;
    }
    Ok((conversation, accepted))
}

/// Moves the conversation `id` to `state` and publishes `conversation.state_changed`
/// (nothing when it was in that state already); `None` when the tenant has no such
/// conversation.
pub async fn set_state(
    store: &dyn Store,
    events: Option<&Events>,
    tenant: &str,
    id: &str,
    state: ConversationState,
    now: Timestamp,
) -> Result<Option<Conversation>, StoreError> {
    let Some(before) = store.conversation(tenant, id).await? else {
        return Ok(None);
    };
    let Some(after) = store.set_conversation_state(tenant, id, state, now).await? else {
        return Ok(None);
    };
    if let Some(events) = events
        && before.state != after.state
    {
        events
            .publish_about(
                tenant,
                EventKind::ConversationStateChanged,
                Some(id),
                after.team.as_deref(),
                serde_json::json!({
                    "id": id,
                    "state": after.state,
                    "previous_state": before.state,
                    "contact_id": after.contact_id,
                    "resolved_at": after.resolved_at,
                }),
                None,
            )
            .await?;
    }
    Ok(Some(after))
}
