//! Messages: send one, send a batch, read one with its events, cancel one, review one the
//! content checks held (release or reject).

use crate::AppState;
use crate::extract::{Caller, parse_json};
use crate::problem::{ApiError, ApiResult, FieldError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use relais_core::campaign::CampaignLabel;
use relais_core::tenant::Scope;
use relais_engine::send::{AcceptError, BatchItem, Idempotency, SendRequest, item_error};
use relais_store::{CancelOutcome, MessageEvent, MessageWithEvents};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Largest batch body: 10,000 messages of a few kilobytes each.
const BATCH_BODY_LIMIT: usize = 64 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/messages", post(send_message).get(list_messages))
        .route(
            "/messages/batch",
            post(send_batch).layer(DefaultBodyLimit::max(BATCH_BODY_LIMIT)),
        )
        .route("/messages/{id}", get(get_message))
        .route("/messages/{id}/cancel", post(cancel_message))
        .route("/messages/{id}/release", post(release_message))
        .route("/messages/{id}/reject", post(reject_message))
}

/// The body of `POST /v1/messages` (see `docs/messages.md`).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct SendMessageDoc {
    /// `"+33612345678"`, `{"contact_id": …}` or `{"channel": …, "address": …}`.
    #[schema(value_type = Object)]
    pub to: serde_json::Value,
    /// A channel kind, e.g. `sim`, `sms`, `whatsapp`.
    pub channel: Option<String>,
    /// A fallback chain: `["whatsapp", {"channel": "sms", "after": "not_delivered", "within": "10m"}]`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub channels: Option<serde_json::Value>,
    /// `{"text": …}` or richer content.
    #[schema(value_type = Option<Object>)]
    pub content: Option<serde_json::Value>,
    /// A text template, e.g. `Bonjour {{ first_name }}`, instead of `content`.
    pub template: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub variables: Option<serde_json::Value>,
    /// `transactional` (default), `marketing` or a marketing topic.
    pub purpose: Option<String>,
    /// The sender: an alphanumeric ID of up to 11 characters (`MyShop`), a number or a
    /// short code. Each sender is paced at its own rate (`RELAIS_SENDER_RATE`).
    pub from: Option<String>,
    /// RFC 3339 instant.
    pub send_at: Option<String>,
    /// `"10m"`, `"2h"`, `"PT10M"` or seconds.
    #[schema(value_type = Option<String>)]
    pub validity: Option<serde_json::Value>,
    /// A campaign label to find the message by (`GET /v1/messages?campaign=…`): 1 to 64
    /// ASCII letters, digits, `-`, `_` and `.`.
    pub campaign: Option<String>,
    /// `false` leaves the links of the content as they are. By default, when the server has
    /// a `public_url`, each http(s) link is rewritten to a tracked short link
    /// `{public_url}/l/{code}` (see `docs/links.md`).
    pub track_links: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub id: String,
    /// `queued`, `scheduled`, or `rejected` (consent).
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub status: String,
    #[schema(value_type = String)]
    pub at: jiff::Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    #[serde(flatten)]
    pub summary: MessageSummary,
    pub events: Vec<EventView>,
    /// What the anti-phishing content checks found, when they found anything
    /// (`docs/trust.md`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_check: Option<ContentCheckView>,
}

/// The content checks' findings on a message: the score and each reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContentCheckView {
    pub score: u32,
    /// `send` (below the threshold) or `hold`.
    pub verdict: String,
    pub reasons: Vec<ReasonView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReasonView {
    /// A stable code: `domain_not_allowed`, `lookalike_homoglyph`, `lookalike_typo`,
    /// `lookalike_added_words`, `brand_name`, `punycode_domain`, `ip_literal`, `shortener`,
    /// `credential_phrasing`.
    pub code: String,
    pub weight: u32,
    pub detail: String,
}

/// The content checks' findings on the tenant's message, if it scored.
async fn content_check_view(
    state: &AppState,
    tenant: &str,
    id: &str,
) -> ApiResult<Option<ContentCheckView>> {
    Ok(state
        .store
        .content_check(tenant, id)
        .await?
        .map(|check| ContentCheckView {
            score: check.score,
            verdict: check.verdict,
            reasons: check
                .reasons
                .into_iter()
                .map(|r| ReasonView {
                    code: r.code.as_str().to_owned(),
                    weight: r.weight,
                    detail: r.detail,
                })
                .collect(),
        }))
}

/// A message without its event log, as lists show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageSummary {
    pub id: String,
    pub status: String,
    pub channel: String,
    pub to: String,
    pub contact_id: Option<String>,
    pub purpose: String,
    /// The sender shown to the recipient, when the request gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The campaign label the request gave, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// SMS segments of the text (SMS-like channels only).
    pub segments: Option<i64>,
    pub provider_id: Option<String>,
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
    #[schema(value_type = Option<String>)]
    pub send_at: Option<jiff::Timestamp>,
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<jiff::Timestamp>,
    #[schema(value_type = String)]
    pub created_at: jiff::Timestamp,
    #[schema(value_type = String)]
    pub updated_at: jiff::Timestamp,
}

fn event_view(e: MessageEvent) -> EventView {
    EventView {
        status: e.status.as_str().to_owned(),
        at: e.at,
        reason: e.reason,
        detail: e.detail,
        attempt: e.attempt,
        channel: e.channel,
    }
}

fn message_view(m: MessageWithEvents, content_check: Option<ContentCheckView>) -> MessageView {
    let MessageWithEvents { message, events } = m;
    MessageView {
        summary: message_summary(message),
        events: events.into_iter().map(event_view).collect(),
        content_check,
    }
}

/// [`message_view`] with a `clicked` event for each click on the message's tracked links
/// (a click is not a status: the message's own status stays as it is).
async fn message_view_with_clicks(
    state: &AppState,
    tenant: &str,
    m: MessageWithEvents,
) -> ApiResult<MessageView> {
    use relais_engine::tracked_links::{EventOrClick, with_clicks};
    let MessageWithEvents { message, events } = m;
    let events = with_clicks(&*state.store, tenant, &message.id, events).await?;
    let content_check = content_check_view(state, tenant, &message.id).await?;
    Ok(MessageView {
        content_check,
        summary: message_summary(message),
        events: events
            .into_iter()
            .map(|e| match e {
                EventOrClick::Event(e) => event_view(e),
                EventOrClick::Click(c) => EventView {
                    status: "clicked".into(),
                    at: c.at,
                    reason: None,
                    detail: Some(c.url),
                    attempt: None,
                    channel: Some(c.channel),
                },
            })
            .collect(),
    })
}

fn message_summary(message: relais_store::Message) -> MessageSummary {
    MessageSummary {
        id: message.id,
        status: message.status.as_str().to_owned(),
        channel: message.channel,
        to: message.to_address,
        contact_id: message.contact_id,
        purpose: message.purpose,
        from: message.sender,
        campaign: message.campaign.map(CampaignLabel::into_string),
        segments: message.segments,
        provider_id: message.provider_id,
        content: message.content,
        send_at: message.send_at,
        expires_at: message.expires_at,
        created_at: message.created_at,
        updated_at: message.updated_at,
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MessageQuery {
    /// The recipient's address as stored (E.164 for phones: `%2B33612345678`).
    pub to: Option<String>,
    /// A message status (`queued`, `delivered`, `failed`…).
    pub status: Option<String>,
    /// A channel kind (`sim`, `sms`…) or a configured channel's id.
    pub channel: Option<String>,
    pub contact_id: Option<String>,
    /// A campaign label, as given when sending (`soldes-2026`).
    pub campaign: Option<String>,
    /// Created at or after this instant (RFC 3339, `2026-12-01T00:00:00Z`).
    pub since: Option<String>,
    /// Created before this instant (RFC 3339).
    pub until: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    pub data: Vec<MessageSummary>,
    pub next_cursor: Option<String>,
}

/// Sent messages, newest first, filtered by recipient, status, channel, contact, campaign
/// and date (cursor pagination).
#[utoipa::path(get, path = "/v1/messages", tag = "messages", params(MessageQuery),
    responses((status = 200, body = MessagePage), (status = 400, body = crate::problem::Problem)))]
pub async fn list_messages(
    State(state): State<AppState>,
    caller: Caller,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<MessageQuery>,
) -> ApiResult<axum::Json<MessagePage>> {
    caller.require(Scope::Read)?;
    let instant = |name: &str, value: Option<String>| -> ApiResult<Option<jiff::Timestamp>> {
        value
            .map(|v| {
                v.parse::<jiff::Timestamp>().map_err(|e| {
                    ApiError::bad_parameter(name, format!("`{v}` is not an RFC 3339 instant ({e})"))
                })
            })
            .transpose()
    };
    let nonempty = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let filter = relais_store::MessageFilter {
        to: nonempty(q.to),
        status: q
            .status
            .map(|s| {
                s.parse::<relais_core::status::MessageStatus>()
                    .map_err(|e| ApiError::bad_parameter("status", e))
            })
            .transpose()?,
        channel: nonempty(q.channel),
        contact_id: nonempty(q.contact_id),
        campaign: q
            .campaign
            .map(|c| CampaignLabel::parse(&c).map_err(|e| ApiError::bad_parameter("campaign", e)))
            .transpose()?,
        created_from: instant("since", q.since)?,
        created_before: instant("until", q.until)?,
        sender: None,
    };
    let page = crate::routes::PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .to_request()?;
    let page = state
        .store
        .list_messages(&caller.tenant_id, &filter, &page)
        .await?;
    Ok(axum::Json(MessagePage {
        data: page.data.into_iter().map(message_summary).collect(),
        next_cursor: page.next_cursor,
    }))
}

pub(crate) fn accept_error(e: AcceptError) -> ApiError {
    match e {
        AcceptError::Invalid { pointer, detail } => ApiError::invalid_field(&pointer, detail),
        e @ (AcceptError::IdempotencyConflict { .. } | AcceptError::BatchIdempotencyConflict) => {
            ApiError::conflict(e.to_string())
        }
        AcceptError::ContentRefused {
            pointer,
            assessment,
        } => {
            let mut error = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "content-refused",
                format!(
                    "{pointer}: refused by the content checks, {}",
                    assessment.summary()
                ),
            );
            error.errors = assessment
                .reasons
                .iter()
                .map(|r| FieldError {
                    pointer: pointer.clone(),
                    detail: format!("{} (+{}): {}", r.code, r.weight, r.detail),
                })
                .collect();
            error
        }
        AcceptError::Store(e) => e.into(),
    }
}

/// The request's Idempotency-Key with the digest of its body, if it has one.
pub(crate) fn idempotency(headers: &HeaderMap, body: &[u8]) -> ApiResult<Option<Idempotency>> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw
        .to_str()
        .map_err(|_| ApiError::bad_request("the Idempotency-Key header must be text"))?;
    let value: serde_json::Value = parse_json(body)?;
    Idempotency::new(key, &value)
        .map(Some)
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Accepts a message for sending; `Idempotency-Key` makes a retried request safe.
#[utoipa::path(post, path = "/v1/messages", tag = "messages", request_body = SendMessageDoc,
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body: the same message; same key, other body: 409")),
    responses((status = 202, body = Accepted), (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem), (status = 503, body = crate::problem::Problem)))]
pub async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require(Scope::Send)?;
    let request: SendRequest = parse_json(&body)?;
    let idempotency = idempotency(&headers, &body)?;
    let accepted = state
        .acceptor
        .accept(&caller.tenant_id, request, idempotency)
        .await
        .map_err(accept_error)?;
    let mut response = (
        StatusCode::ACCEPTED,
        axum::Json(Accepted {
            id: accepted.id,
            status: accepted.status.as_str().to_owned(),
        }),
    )
        .into_response();
    if accepted.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Up to 10,000 messages, each like the body of `POST /v1/messages`.
    #[schema(value_type = Vec<Object>)]
    pub messages: Vec<Box<serde_json::value::RawValue>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<FieldError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    pub accepted: usize,
    pub refused: usize,
    pub results: Vec<BatchResult>,
}

/// Accepts up to 10,000 messages in one request; each item gets its own result.
/// `Idempotency-Key` makes a retried batch safe: the same key and body get the first
/// answer again (and nothing is sent twice), another body with the same key gets 409.
#[utoipa::path(post, path = "/v1/messages/batch", tag = "messages", request_body = BatchRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body: the first answer, nothing sent twice; same key, other body: 409")),
    responses((status = 202, body = BatchResponse), (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem), (status = 503, body = crate::problem::Problem)))]
pub async fn send_batch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require(Scope::Send)?;
    let batch: BatchRequest = parse_json(&body)?;
    let idempotency = idempotency(&headers, &body)?;
    let answer = state
        .acceptor
        .accept_batch(&caller.tenant_id, batch.messages, idempotency)
        .await
        .map_err(accept_error)?;
    let mut accepted = 0;
    let results: Vec<BatchResult> = answer
        .items
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            BatchItem::Accepted(a) => {
                accepted += 1;
                BatchResult {
                    index,
                    id: Some(a.id),
                    status: Some(a.status.as_str().to_owned()),
                    error: None,
                }
            }
            BatchItem::Refused(e) => {
                let (pointer, detail) = item_error(index, &e);
                BatchResult {
                    index,
                    id: None,
                    status: None,
                    error: Some(FieldError { pointer, detail }),
                }
            }
        })
        .collect();
    let refused = results.len() - accepted;
    let mut response = (
        StatusCode::ACCEPTED,
        axum::Json(BatchResponse {
            accepted,
            refused,
            results,
        }),
    )
        .into_response();
    if answer.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// A message with its status and every event of its life.
#[utoipa::path(get, path = "/v1/messages/{id}", tag = "messages",
    responses((status = 200, body = MessageView), (status = 404, body = crate::problem::Problem)))]
pub async fn get_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<MessageView>> {
    caller.require(Scope::Read)?;
    let message = state
        .store
        .message(&caller.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("message {id}")))?;
    Ok(axum::Json(
        message_view_with_clicks(&state, &caller.tenant_id, message).await?,
    ))
}

/// Cancels a message that has not started sending (`accepted`, `scheduled`, `queued`).
#[utoipa::path(post, path = "/v1/messages/{id}/cancel", tag = "messages",
    responses((status = 200, body = MessageView), (status = 404, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem)))]
pub async fn cancel_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<MessageView>> {
    caller.require(Scope::Send)?;
    match state
        .store
        .cancel(&caller.tenant_id, &id, state.clock.now())
        .await?
    {
        CancelOutcome::Canceled => {}
        CancelOutcome::TooLate(status) => {
            return Err(ApiError::conflict(format!(
                "the message is already `{status}`; only accepted, scheduled or queued messages can be canceled"
            )));
        }
    }
    let message = state
        .store
        .message(&caller.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("message {id}")))?;
    let check = content_check_view(&state, &caller.tenant_id, &id).await?;
    Ok(axum::Json(message_view(message, check)))
}

fn review_error(e: relais_engine::held::ReviewError) -> ApiError {
    use relais_engine::held::ReviewError;
    match e {
        ReviewError::NotFound(id) => ApiError::not_found(format!("message {id}")),
        e @ ReviewError::NotHeld(_) => ApiError::conflict(e.to_string()),
        ReviewError::Store(e) => e.into(),
    }
}

/// Releases a message the content checks held: it is sent (`queued`, or `scheduled` until
/// its `send_at` or the end of quiet hours).
#[utoipa::path(post, path = "/v1/messages/{id}/release", tag = "messages",
    responses((status = 200, body = MessageView), (status = 404, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem)))]
pub async fn release_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<MessageView>> {
    caller.require(Scope::Admin)?;
    relais_engine::held::release(&*state.store, &caller.tenant_id, &id, state.clock.now())
        .await
        .map_err(review_error)?;
    get_message(State(state), caller, Path(id)).await
}

/// Why a reviewer rejects a held message.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Kept in the message's `rejected` event.
    pub reason: Option<String>,
}

/// Rejects a message the content checks held: it becomes `rejected`, for good, and is
/// never sent.
#[utoipa::path(post, path = "/v1/messages/{id}/reject", tag = "messages", request_body = RejectRequest,
    responses((status = 200, body = MessageView), (status = 404, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem)))]
pub async fn reject_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<axum::Json<MessageView>> {
    caller.require(Scope::Admin)?;
    let request: RejectRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RejectRequest::default()
    } else {
        parse_json(&body)?
    };
    relais_engine::held::reject(
        &*state.store,
        &caller.tenant_id,
        &id,
        request.reason.as_deref(),
        state.clock.now(),
    )
    .await
    .map_err(review_error)?;
    get_message(State(state), caller, Path(id)).await
}
