//! `/v1/conversations`: one thread per contact across every channel, its messages in and
//! out, replies, and its state.

use crate::AppState;
use crate::extract::{ApiJson, ApiQuery, Caller, parse_json};
use crate::problem::{ApiError, ApiResult};
use crate::routes::PageQuery;
use crate::routes::messages::{Accepted, accept_error, idempotency};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use relais_core::channel::ChannelKind;
use relais_core::conversation::ConversationState;
use relais_core::tenant::Scope;
use relais_engine::conversations::{Reply, ReplyError, window_closes};
use relais_store::{Conversation, ConversationFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/conversations", get(list_conversations))
        .route(
            "/conversations/{id}",
            get(get_conversation).patch(update_conversation),
        )
        .route("/conversations/{id}/messages", post(reply))
}

/// Messages of each direction shown in a conversation: the latest ones.
pub const THREAD_MESSAGES: u32 = 200;

/// A conversation as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    pub id: String,
    /// The contact's id.
    pub contact: String,
    pub state: ConversationState,
    /// The channel the customer last wrote on; replies go there by default.
    pub channel: ChannelKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
    /// The customer's address on that channel.
    pub address: String,
    /// `{"direction": "in" | "out", "text", "channel", "at", "message_id"}`.
    #[schema(value_type = Object)]
    pub last_message: serde_json::Value,
    #[schema(value_type = String)]
    pub last_message_at: jiff::Timestamp,
    #[schema(value_type = String)]
    pub last_inbound_at: jiff::Timestamp,
    /// When the channel's customer-service window closes (channels that have one); past
    /// it, only a template may be sent.
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_closes_at: Option<jiff::Timestamp>,
    #[schema(value_type = String)]
    pub created_at: jiff::Timestamp,
    #[schema(value_type = String)]
    pub updated_at: jiff::Timestamp,
    #[schema(value_type = Option<String>)]
    pub resolved_at: Option<jiff::Timestamp>,
    /// The team it waits for, when a bot flow handed it off to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

impl From<Conversation> for ConversationView {
    fn from(c: Conversation) -> Self {
        ConversationView {
            window_closes_at: window_closes(&c),
            id: c.id,
            contact: c.contact_id,
            state: c.state,
            channel: c.channel,
            channel_id: c.channel_id,
            address: c.address,
            last_message: c.last_message,
            last_message_at: c.last_message_at,
            last_inbound_at: c.last_inbound_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
            resolved_at: c.resolved_at,
            team: c.team,
        }
    }
}

/// One message of a thread.
#[derive(Debug, Serialize, ToSchema)]
pub struct ThreadMessage {
    pub id: String,
    /// `in` (the customer wrote it) or `out` (sent to the customer).
    pub direction: String,
    pub channel: String,
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
    /// Outbound messages: their status (`queued`, `delivered`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Inbound messages: what NLU read in them.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub annotations: Option<serde_json::Value>,
    #[schema(value_type = String)]
    pub at: jiff::Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: ConversationView,
    /// The latest messages in and out, on every channel, oldest first.
    pub messages: Vec<ThreadMessage>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationPage {
    pub data: Vec<ConversationView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ConversationQuery {
    /// `bot`, `pending`, `open` or `resolved`.
    pub state: Option<String>,
    /// One contact's conversation.
    pub contact_id: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A cursor of this list: `<micros>.<id>`.
fn is_cursor(cursor: &str) -> bool {
    cursor
        .split_once('.')
        .is_some_and(|(at, id)| at.parse::<i64>().is_ok() && uuid::Uuid::try_parse(id).is_ok())
}

/// Conversations, most recent activity first (cursor pagination).
#[utoipa::path(get, path = "/v1/conversations", tag = "conversations", params(ConversationQuery),
    responses((status = 200, body = ConversationPage), (status = 400, body = crate::problem::Problem)))]
pub async fn list_conversations(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ConversationQuery>,
) -> ApiResult<axum::Json<ConversationPage>> {
    caller.require(Scope::Read)?;
    let filter = ConversationFilter {
        state: q
            .state
            .as_deref()
            .map(ConversationState::parse)
            .transpose()
            .map_err(|e| ApiError::bad_parameter("state", e))?,
        contact_id: q.contact_id.filter(|c| !c.trim().is_empty()),
    };
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .to_request_with(is_cursor)?;
    let page = state
        .store
        .list_conversations(&caller.tenant_id, &filter, &page)
        .await?;
    Ok(axum::Json(ConversationPage {
        data: page.data.into_iter().map(ConversationView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// A conversation with its latest messages in and out, on every channel.
#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "conversations",
    responses((status = 200, body = ConversationDetail), (status = 404, body = crate::problem::Problem)))]
pub async fn get_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ConversationDetail>> {
    caller.require(Scope::Read)?;
    let tenant = caller.tenant_id.as_str();
    let conversation = state
        .store
        .conversation(tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("conversation {id}")))?;
    let mut messages: Vec<ThreadMessage> = Vec::new();
    let inbound = state
        .store
        .inbound_of_contact(tenant, &conversation.contact_id, THREAD_MESSAGES)
        .await?;
    for m in inbound {
        messages.push(ThreadMessage {
            id: m.id,
            direction: "in".into(),
            channel: m.channel.as_str().to_owned(),
            content: serde_json::json!({ "text": m.text }),
            status: None,
            annotations: m.annotations,
            at: m.received_at,
        });
    }
    for m in state
        .store
        .messages_of_contact(tenant, &conversation.contact_id, THREAD_MESSAGES)
        .await?
    {
        messages.push(ThreadMessage {
            id: m.id,
            direction: "out".into(),
            channel: m.channel,
            content: m.content,
            status: Some(m.status.as_str().to_owned()),
            annotations: None,
            at: m.created_at,
        });
    }
    messages.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    let excess = messages.len().saturating_sub(THREAD_MESSAGES as usize);
    messages.drain(..excess);
    Ok(axum::Json(ConversationDetail {
        conversation: conversation.into(),
        messages,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationUpdate {
    /// `bot`, `pending`, `open` or `resolved`.
    pub state: ConversationState,
}

/// Moves a conversation to another state (resolve it, or reopen it).
#[utoipa::path(patch, path = "/v1/conversations/{id}", tag = "conversations", request_body = ConversationUpdate,
    responses((status = 200, body = ConversationView), (status = 404, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
pub async fn update_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(update): ApiJson<ConversationUpdate>,
) -> ApiResult<axum::Json<ConversationView>> {
    caller.require(Scope::Send)?;
    relais_engine::conversations::set_state(
        &*state.store,
        Some(&state.events),
        &caller.tenant_id,
        &id,
        update.state,
        state.clock.now(),
    )
    .await?
    .map(|c| axum::Json(c.into()))
    .ok_or_else(|| ApiError::not_found(format!("conversation {id}")))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    /// `{"text": …}` or richer, as `POST /v1/messages` takes it.
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
    /// Another channel than the one the customer last wrote on (a kind, or a configured
    /// channel's name or id).
    #[serde(default)]
    pub channel: Option<String>,
}

/// Replies to the customer, on the channel they last wrote on unless `channel` picks
/// another; refused outside the channel's customer-service window.
#[utoipa::path(post, path = "/v1/conversations/{id}/messages", tag = "conversations", request_body = ReplyRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body: the same message; same key, other body: 409")),
    responses((status = 202, body = Accepted), (status = 404, body = crate::problem::Problem),
        (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
pub async fn reply(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, axum::Json<Accepted>)> {
    caller.require(Scope::Send)?;
    let request: ReplyRequest = parse_json(&body)?;
    let idempotency = idempotency(&headers, &body)?;
    let (_, accepted) = relais_engine::conversations::reply(
        &*state.store,
        &state.acceptor,
        Some(&state.events),
        &caller.tenant_id,
        &id,
        Reply {
            content: request.content,
            channel: request.channel,
        },
        idempotency,
        state.clock.now(),
    )
    .await
    .map_err(|e| match e {
        ReplyError::NotFound(_) => ApiError::not_found(format!("conversation {id}")),
        e @ ReplyError::WindowClosed { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "window-closed",
            e.to_string(),
        ),
        ReplyError::Invalid(detail) => ApiError::invalid_field("/content", detail),
        ReplyError::Accept(e) => accept_error(e),
        ReplyError::Store(e) => e.into(),
    })?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Accepted {
            id: accepted.id,
            status: accepted.status.as_str().to_owned(),
        }),
    ))
}
