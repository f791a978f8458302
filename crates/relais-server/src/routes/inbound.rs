//! `/v1/inbound`: what customers wrote, on every channel, with what NLU read in it.

use crate::AppState;
use crate::extract::{ApiQuery, Caller};
use crate::problem::{ApiError, ApiResult};
use crate::routes::PageQuery;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use relais_core::channel::ChannelKind;
use relais_core::tenant::Scope;
use relais_engine::inbound::InboundError;
use relais_store::{InboundFilter, InboundMessage, Page};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/inbound", get(list_inbound))
        .route("/inbound/{id}", get(get_inbound))
}

/// An inbound message as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundView {
    pub id: String,
    pub channel: ChannelKind,
    /// The configured channel it arrived on, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
    /// The sender, E.164 for phones.
    pub from: String,
    pub to: String,
    /// The contact owning the sender's address, when there is one.
    pub contact_id: Option<String>,
    pub text: String,
    /// The payload of the button or quick reply the customer chose (tapped, or answered by
    /// its number on a channel without buttons), when they chose one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The image the customer sent with it (`{"id", "mime_type", "size"}`; its bytes at
    /// `GET /v1/media/{id}`), when they sent one: `text` may then be empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub media: Option<relais_core::media::MediaRef>,
    pub provider_id: Option<String>,
    #[schema(value_type = String)]
    pub received_at: jiff::Timestamp,
    /// `{model_version, language, intent, sentiment, urgency}` as `POST /v1/nlu/classify`
    /// returns it; `null` when the message could not be classified.
    #[schema(value_type = Option<Object>)]
    pub annotations: Option<serde_json::Value>,
    #[schema(value_type = Option<String>)]
    pub annotated_at: Option<jiff::Timestamp>,
    /// The contact's conversation, once the pipeline placed the message in it.
    pub conversation_id: Option<String>,
}

impl From<InboundMessage> for InboundView {
    fn from(m: InboundMessage) -> Self {
        InboundView {
            id: m.id,
            channel: m.channel,
            channel_id: m.channel_id,
            from: m.from_address,
            to: m.to_address,
            contact_id: m.contact_id,
            text: m.text,
            payload: m.payload,
            media: m.media,
            provider_id: m.provider_id,
            received_at: m.received_at,
            annotations: m.annotations,
            conversation_id: m.conversation_id,
            annotated_at: m.annotated_at,
        }
    }
}

/// A page of inbound messages, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundPage {
    pub data: Vec<InboundView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct InboundQuery {
    /// Only the messages of this contact.
    pub contact_id: Option<String>,
    /// Items per page, 1 to 1000 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// How the inbound path's errors read over HTTP.
pub fn inbound_error(e: InboundError) -> ApiError {
    match e {
        InboundError::Invalid(detail) => ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            detail,
        ),
        InboundError::Store(s) => s.into(),
        InboundError::Flow(why) => ApiError::unavailable(why),
    }
}

/// Inbound messages with their annotations (cursor pagination), oldest first.
#[utoipa::path(get, path = "/v1/inbound", tag = "inbound", params(InboundQuery),
    responses((status = 200, body = InboundPage)))]
pub async fn list_inbound(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<InboundQuery>,
) -> ApiResult<axum::Json<InboundPage>> {
    caller.require(Scope::Read)?;
    let filter = InboundFilter {
        contact_id: q.contact_id.filter(|c| !c.trim().is_empty()),
    };
    let page: Page<InboundMessage> = state
        .store
        .list_inbound(
            &caller.tenant_id,
            &filter,
            &PageQuery {
                limit: q.limit,
                cursor: q.cursor,
            }
            .to_request()?,
        )
        .await?;
    Ok(axum::Json(InboundPage {
        data: page.data.into_iter().map(InboundView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One inbound message with its annotations.
#[utoipa::path(get, path = "/v1/inbound/{id}", tag = "inbound",
    responses((status = 200, body = InboundView), (status = 404, body = crate::problem::Problem)))]
pub async fn get_inbound(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<InboundView>> {
    caller.require(Scope::Read)?;
    state
        .store
        .inbound_message(&caller.tenant_id, &id)
        .await?
        .map(|m| axum::Json(m.into()))
        .ok_or_else(|| ApiError::not_found(format!("inbound message {id}")))
}
