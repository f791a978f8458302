//! Answers in a conversation: a reply goes to the customer on the channel they last
//! wrote on, unless the sender picks another, and never outside a channel's
//! customer-service window (see [`relais_core::channel::ChannelKind::customer_service_window`]).
//! A reply and a change of state are published on the live event stream once stored.

use crate::events::{EventKind, Events};
use crate::send::{AcceptError, Accepted, Acceptor, Idempotency, SendRequest};
use jiff::{SignedDuration, Timestamp};
use relais_core::channel::ChannelKind;
use relais_core::conversation::ConversationState;
use relais_store::{Conversation, Store, StoreError};

/// Why a reply was refused; nothing was sent.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("conversation {0} not found")]
    NotFound(String),
    #[error(
        "the customer last wrote on {channel} at {last_inbound_at}; its customer-service window{} closed at {closed_at}: only an approved template may be sent now",
        if *human_agent { ", even the longer one of human agents," } else { "" }
    )]
    WindowClosed {
        channel: ChannelKind,
        last_inbound_at: Timestamp,
        closed_at: Timestamp,
        /// The window was the human agents' longer one.
        human_agent: bool,
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
    /// Written by a human agent (a logged-in agent), not by a bot, the server itself or an
    /// API key: on a channel configured with a longer window for agents (capabilities'
    /// `human_agent_window_hours`, Messenger's `HUMAN_AGENT` tag), it may go after the
    /// customer-service window, for as long as that one lasts.
    pub human_agent: bool,
}

/// When the window of the channel the customer last wrote on closes, if it has one.
pub fn window_closes(conversation: &Conversation) -> Option<Timestamp> {
    let window = conversation.channel.customer_service_window()?;
    conversation.last_inbound_at.checked_add(window).ok()
}

/// How long a human agent may answer on the conversation's channel: its configured
/// channel's `human_agent_window_hours` (none when the channel is not configured, or its
/// configuration turns the agents' window off).
async fn human_agent_window(
    store: &dyn Store,
    tenant: &str,
    conversation: &Conversation,
) -> Result<Option<SignedDuration>, StoreError> {
    let Some(channel_id) = conversation.channel_id.as_deref() else {
        return Ok(None);
    };
    let Some(record) = store.channel(tenant, channel_id).await? else {
        return Ok(None);
    };
    Ok(
        relais_channels::configured::capabilities(&record.kind, &record.config)
            .filter(|caps| caps.service_window_hours.is_some())
            .and_then(|caps| caps.human_agent_window_hours)
            .map(|hours| SignedDuration::from_hours(i64::from(hours))),
    )
}

/// Where a reply on the conversation's configured channel goes when the customer does
/// not take it in time ([`relais_channels::configured::reply_fallback`]): only for a
/// contact who has an address there, and a tenant who has a channel of that kind.
async fn reply_fallback(
    store: &dyn Store,
    tenant: &str,
    conversation: &Conversation,
) -> Result<Option<(relais_core::channel::ChannelKind, SignedDuration)>, StoreError> {
    let Some(channel_id) = conversation.channel_id.as_deref() else {
        return Ok(None);
    };
    let Some(record) = store.channel(tenant, channel_id).await? else {
        return Ok(None);
    };
    let Some((kind, after)) =
        relais_channels::configured::reply_fallback(&record.kind, &record.config)
    else {
        return Ok(None);
    };
    let reachable = store
        .contact(tenant, &conversation.contact_id)
        .await?
        .is_some_and(|contact| contact.address_on(kind).is_some());
    if !reachable
        || crate::routing::Accounts::load(store, tenant, kind)
            .await?
            .is_empty()
    {
        return Ok(None);
    }
    Ok(Some((kind, after)))
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
    // An agent's reply on the conversation's channel may have the longer window of
    // human agents, when the configured channel gives one.
    let agent_window = if reply.human_agent && same_channel {
        human_agent_window(store, tenant, &conversation).await?
    } else {
        None
    };
    let body = if same_channel {
        let closes = match agent_window {
            Some(window) => conversation.last_inbound_at.checked_add(window).ok(),
            None => window_closes(&conversation),
        };
        if let Some(closed_at) = closes
            && now >= closed_at
            && !template
        {
            return Err(ReplyError::WindowClosed {
                channel: conversation.channel,
                last_inbound_at: conversation.last_inbound_at,
                closed_at,
                human_agent: agent_window.is_some(),
            });
        }
        let channel = conversation
            .channel_id
            .clone()
            .unwrap_or_else(|| conversation.channel.as_str().to_owned());
        let mut body = serde_json::json!({
            "to": {"channel": conversation.channel.as_str(), "address": conversation.address},
            "channel": channel,
            "content": reply.content,
            "purpose": "transactional",
        });
        if let Some((kind, after)) = reply_fallback(store, tenant, &conversation).await? {
            // Not taken on the customer's channel in time (a web chat visitor who left
            // the page): their own address on the fallback's channel.
            body["channels"] = serde_json::json!([
                channel,
                {"channel": kind.as_str(), "after": "not_delivered",
                 "within": format!("{}s", after.as_secs())}
            ]);
            if let Some(map) = body.as_object_mut() {
                map.remove("channel");
            }
        }
        body
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
    let mut request: SendRequest =
        serde_json::from_value(body).map_err(|e| ReplyError::Invalid(e.to_string()))?;
    request.human_agent = agent_window.is_some();
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
