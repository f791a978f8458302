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
use relais_store::{Assignee, Conversation, ConversationFilter, ConversationOrder};
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
        .route("/conversations/{id}/typing", post(typing))
        .route("/conversations/{id}/assign", post(assign))
        .route("/conversations/{id}/notes", get(list_notes).post(add_note))
        .route("/conversations/{id}/csat", post(rate))
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
    /// The team it belongs to once handed off (by a flow, an agent, or the default team).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The agent who has it.
    pub assignee_id: Option<String>,
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_at: Option<jiff::Timestamp>,
    /// The queue's order: 4 urgent + 2 negative sentiment + 1 VIP.
    pub priority: i64,
    /// `urgent`, `negative_sentiment`, `vip`: why it is that urgent.
    pub priority_reasons: Vec<&'static str>,
    /// Since when the customer waits for an agent's answer.
    #[schema(value_type = Option<String>)]
    pub waiting_since: Option<jiff::Timestamp>,
    /// The SLA clock while the customer waits: `{"target", "due_at", "breached_at"}`.
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sla: Option<serde_json::Value>,
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_response_at: Option<jiff::Timestamp>,
    /// The customer's rating once resolved: `{"score", "comment", "at", "asked_at"}`.
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csat: Option<serde_json::Value>,
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
            assignee_id: c.assignee_id,
            assigned_at: c.assigned_at,
            priority: c.priority,
            priority_reasons: relais_core::agent::Priority(c.priority).reasons(),
            waiting_since: c.waiting_since,
            sla: c.sla_due_at.map(|due| {
                serde_json::json!({
                    "target": c.sla_kind,
                    "due_at": due,
                    "breached_at": c.sla_breached_at,
                })
            }),
            first_response_at: c.first_response_at,
            csat: c.csat_asked_at.or(c.csat_at).map(|asked| {
                serde_json::json!({
                    "score": c.csat_score,
                    "comment": c.csat_comment,
                    "at": c.csat_at,
                    "asked_at": asked,
                })
            }),
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
    /// Agents' private notes, oldest first (the customer never sees them).
    pub notes: Vec<NoteView>,
}

/// A private note.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoteView {
    pub id: String,
    pub agent_id: Option<String>,
    pub text: String,
    #[schema(value_type = String)]
    pub created_at: jiff::Timestamp,
}

impl From<relais_store::Note> for NoteView {
    fn from(n: relais_store::Note) -> Self {
        NoteView {
            id: n.id,
            agent_id: n.agent_id,
            text: n.text,
            created_at: n.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationPage {
    pub data: Vec<ConversationView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ConversationQuery {
    /// `bot`, `pending`, `open` or `resolved`, or several separated by commas
    /// (`pending,open`).
    pub state: Option<String>,
    /// One contact's conversation.
    pub contact_id: Option<String>,
    /// One team's conversations.
    pub team: Option<String>,
    /// `me` (the agent logged in), `none` (unassigned) or an agent's id.
    pub assignee: Option<String>,
    /// `recent` (latest activity first, the default) or `priority` (the queue: most
    /// urgent first, then by SLA due time, or without an SLA by waiting time).
    pub order: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A cursor of this list: `<micros>.<id>`, or `<priority>.<waiting key>.<id>` in queue
/// order.
fn is_cursor(cursor: &str) -> bool {
    let parts: Vec<&str> = cursor.split('.').collect();
    let (keys, id) = match parts.as_slice() {
        [at, id] => (vec![*at], *id),
        [priority, wait, id] => (vec![*priority, *wait], *id),
        _ => return false,
    };
    keys.iter().all(|k| k.parse::<i64>().is_ok()) && uuid::Uuid::try_parse(id).is_ok()
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
    let states = match q.state.as_deref() {
        Some(list) => list
            .split(',')
            .map(|s| ConversationState::parse(s.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::bad_parameter("state", e))?,
        None => Vec::new(),
    };
    let assignee = match q.assignee.as_deref() {
        None | Some("") => None,
        Some("none") => Some(Assignee::Nobody),
        Some("me") => Some(Assignee::Agent(
            caller.agent.as_ref().map(|a| a.id.clone()).ok_or_else(|| {
                ApiError::bad_parameter("assignee", "`me` needs an agent's session token")
            })?,
        )),
        Some(id) => Some(Assignee::Agent(id.to_owned())),
    };
    let order = match q.order.as_deref() {
        None | Some("recent") => ConversationOrder::Recent,
        Some("priority") => ConversationOrder::Priority,
        Some(other) => {
            return Err(ApiError::bad_parameter(
                "order",
                format!("is `recent` or `priority`, not `{other}`"),
            ));
        }
    };
    let visible_to = match &caller.agent {
        Some(agent) if agent.role == relais_core::agent::Role::Agent => Some(agent.id.clone()),
        _ => None,
    };
    let filter = ConversationFilter {
        states,
        contact_id: q.contact_id.filter(|c| !c.trim().is_empty()),
        team: q.team.filter(|t| !t.trim().is_empty()),
        assignee,
        visible_to,
        order,
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
        .desk
        .conversation(tenant, &id, &caller.actor())
        .await?;
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
            content: {
                let mut content = serde_json::json!({ "text": m.text });
                if let Some(payload) = &m.payload {
                    content["payload"] = serde_json::json!(payload);
                }
                // Where the console fetches the image, with the agent's token.
                if let Some(media) = &m.media {
                    content["media"] = serde_json::json!({
                        "url": crate::routes::media::url(&media.id),
                        "mime_type": media.mime_type,
                    });
                }
                content
            },
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
    let notes = state.store.notes(tenant, &id).await?;
    Ok(axum::Json(ConversationDetail {
        conversation: conversation.into(),
        messages,
        notes: notes.into_iter().map(NoteView::from).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationUpdate {
    /// `bot`, `pending`, `open` or `resolved`.
    pub state: ConversationState,
}

/// Moves a conversation to another state: `resolved` (asks the customer's rating when the
/// team wants it), `pending` (back to the queue), `open`, or `bot` (given back to the bot).
#[utoipa::path(patch, path = "/v1/conversations/{id}", tag = "conversations", request_body = ConversationUpdate,
    responses((status = 200, body = ConversationView), (status = 404, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
pub async fn update_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(update): ApiJson<ConversationUpdate>,
) -> ApiResult<axum::Json<ConversationView>> {
    caller.require(Scope::Send)?;
    let conversation = state
        .desk
        .set_state(
            &state.acceptor,
            &caller.tenant_id,
            &id,
            update.state,
            &caller.actor(),
        )
        .await?;
    Ok(axum::Json(conversation.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    /// `{"text": …}` or richer, as `POST /v1/messages` takes it; or use `canned`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub content: Option<serde_json::Value>,
    /// A canned reply's name, rendered with the contact (`contact.*`), the agent
    /// (`agent.name`, `agent.email`) and `variables`.
    #[serde(default)]
    pub canned: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: serde_json::Map<String, serde_json::Value>,
    /// Another channel than the one the customer last wrote on (a kind, or a configured
    /// channel's name or id).
    #[serde(default)]
    pub channel: Option<String>,
}

/// Someone of the tenant is typing an answer: the tenant's event stream gets a `typing`
/// event (`{"who": "agent", "agent_id"}`), and a web chat visitor sees it in the widget.
/// Not stored; a client calls it every few seconds while its agent types.
#[utoipa::path(post, path = "/v1/conversations/{id}/typing", tag = "conversations",
    responses((status = 204), (status = 404, body = crate::problem::Problem)))]
pub async fn typing(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Send)?;
    let tenant = caller.tenant_id.as_str();
    let conversation = state
        .desk
        .conversation(tenant, &id, &caller.actor())
        .await?;
    let agent_id = caller.agent.as_ref().map(|a| a.id.clone());
    state.events.typing(
        tenant,
        &conversation.id,
        serde_json::json!({"who": "agent", "agent_id": agent_id, "team": conversation.team,
            "assignee_id": conversation.assignee_id}),
    );
    // A web chat visitor hears of it on their own connection: the widget reads no event
    // stream.
    if conversation.channel == relais_core::channel::ChannelKind::Webchat
        && let Some(hub) = conversation
            .channel_id
            .as_deref()
            .and_then(relais_channels::webchat::hub)
    {
        hub.typing(&conversation.address);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Replies to the customer, on the channel they last wrote on unless `channel` picks
/// another; refused outside the channel's customer-service window (for a logged-in agent,
/// the channel's longer human-agent window where it has one: Messenger's 7 days).
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
    let actor = caller.actor();
    let tenant = caller.tenant_id.as_str();
    let conversation = state.desk.conversation(tenant, &id, &actor).await?;
    if conversation.state == ConversationState::Resolved {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conversation-resolved",
            format!(
                "conversation {id} is resolved: reopen it first (PATCH /v1/conversations/{id} with state `open`), or send a new message with POST /v1/messages"
            ),
        ));
    }
    let content = match (request.content, request.canned) {
        (Some(content), None) => content,
        (None, Some(name)) => {
            let text = state
                .desk
                .render_canned(
                    tenant,
                    &name,
                    &conversation,
                    caller.agent.as_ref(),
                    &request.variables,
                )
                .await?;
            serde_json::json!({ "text": text })
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_field(
                "/canned",
                "send either `content` or `canned`, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::invalid_field(
                "/content",
                "a reply needs `content` (or `canned`, a canned reply's name)",
            ));
        }
    };
    let (_, accepted) = relais_engine::conversations::reply(
        &*state.store,
        &state.acceptor,
        Some(&state.events),
        tenant,
        &id,
        Reply {
            content,
            channel: request.channel,
            // A person logged in as an agent; an API key's reply is not a human agent's.
            human_agent: caller.agent.is_some(),
        },
        idempotency,
        state.clock.now(),
    )
    .await
    .map_err(reply_error)?;
    state.desk.answered(&conversation, &actor).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Accepted {
            id: accepted.id,
            status: accepted.status.as_str().to_owned(),
        }),
    ))
}

/// A refused reply as a problem.
pub fn reply_error(e: ReplyError) -> ApiError {
    match e {
        ReplyError::NotFound(id) => ApiError::not_found(format!("conversation {id}")),
        e @ ReplyError::WindowClosed { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "window-closed",
            e.to_string(),
        ),
        ReplyError::Invalid(detail) => ApiError::invalid_field("/content", detail),
        ReplyError::Accept(e) => accept_error(e),
        ReplyError::Store(e) => e.into(),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// `me`, an agent's id, or `null` to put it back in the queue.
    pub agent: Option<String>,
    /// Moves it to this team.
    #[serde(default)]
    pub team: Option<String>,
}

/// Assigns a conversation: an agent takes it (`"agent": "me"`, also from the bot), an
/// admin gives it to someone, or it goes back to the queue (`"agent": null`).
#[utoipa::path(post, path = "/v1/conversations/{id}/assign", tag = "conversations", request_body = AssignRequest,
    responses((status = 200, body = ConversationView), (status = 403, body = crate::problem::Problem),
        (status = 404, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem)))]
pub async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AssignRequest>,
) -> ApiResult<axum::Json<ConversationView>> {
    caller.require(Scope::Send)?;
    let agent = match req.agent.as_deref() {
        Some("me") => Some(caller.agent.as_ref().map(|a| a.id.clone()).ok_or_else(|| {
            ApiError::invalid_field("/agent", "`me` needs an agent's session token")
        })?),
        other => other.map(str::to_owned),
    };
    let conversation = state
        .desk
        .assign(
            &caller.tenant_id,
            &id,
            agent.as_deref(),
            req.team.as_deref(),
            &caller.actor(),
        )
        .await?;
    Ok(axum::Json(conversation.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    pub text: String,
}

/// Leaves a private note on the conversation (agents see it; the customer never does).
#[utoipa::path(post, path = "/v1/conversations/{id}/notes", tag = "conversations", request_body = NoteRequest,
    responses((status = 201, body = NoteView), (status = 404, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
pub async fn add_note(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NoteRequest>,
) -> ApiResult<(StatusCode, axum::Json<NoteView>)> {
    caller.require(Scope::Send)?;
    let text = req.text.trim();
    if text.is_empty() || text.len() > 10_000 {
        return Err(ApiError::invalid_field(
            "/text",
            "a note is 1 to 10,000 bytes",
        ));
    }
    let actor = caller.actor();
    state
        .desk
        .conversation(&caller.tenant_id, &id, &actor)
        .await?;
    let note = state
        .store
        .add_note(
            &caller.tenant_id,
            &id,
            actor.agent_id(),
            text,
            state.clock.now(),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(note.into())))
}

/// The conversation's private notes, oldest first.
#[utoipa::path(get, path = "/v1/conversations/{id}/notes", tag = "conversations",
    responses((status = 200, body = [NoteView]), (status = 404, body = crate::problem::Problem)))]
pub async fn list_notes(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vec<NoteView>>> {
    caller.require(Scope::Read)?;
    state
        .desk
        .conversation(&caller.tenant_id, &id, &caller.actor())
        .await?;
    let notes = state.store.notes(&caller.tenant_id, &id).await?;
    Ok(axum::Json(notes.into_iter().map(NoteView::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingRequest {
    /// 1 (poor) to 5 (excellent).
    pub score: u8,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Records the customer's rating of a conversation (from a survey page or widget; a
/// customer who answers the satisfaction question with a digit is recorded by itself).
#[utoipa::path(post, path = "/v1/conversations/{id}/csat", tag = "conversations", request_body = RatingRequest,
    responses((status = 200, body = ConversationView), (status = 404, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
pub async fn rate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RatingRequest>,
) -> ApiResult<axum::Json<ConversationView>> {
    caller.require(Scope::Send)?;
    if req.comment.as_ref().is_some_and(|c| c.len() > 2000) {
        return Err(ApiError::invalid_field(
            "/comment",
            "a comment is at most 2,000 bytes",
        ));
    }
    state
        .desk
        .conversation(&caller.tenant_id, &id, &caller.actor())
        .await?;
    let rated = state
        .desk
        .rate(&caller.tenant_id, &id, req.score, req.comment.as_deref())
        .await?;
    Ok(axum::Json(rated.into()))
}
