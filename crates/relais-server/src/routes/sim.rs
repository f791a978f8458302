//! The `sim` sandbox: what a simulated phone received, and its replies.

use crate::AppState;
use crate::extract::{ApiJson, Caller};
use crate::problem::{ApiError, ApiResult};
use crate::routes::inbound::{InboundView, inbound_error};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use relais_core::phone::normalize_phone;
use relais_core::tenant::Scope;
use relais_store::SimEntry;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sim/phones", get(phones))
        .route("/sim/phones/{number}/messages", get(phone_messages))
        .route("/sim/phones/{number}/reply", post(phone_reply))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SimMessage {
    pub id: String,
    /// `received` (the phone got it from Relais) or `sent` (the phone's reply).
    pub direction: String,
    pub text: String,
    /// The Relais message, for received ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[schema(value_type = String)]
    pub at: jiff::Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SimPhone {
    pub number: String,
    pub messages: Vec<SimMessage>,
}

/// A simulated phone that received or sent something.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimPhoneListed {
    pub number: String,
    /// Messages it received and sent.
    pub messages: i64,
    /// When it last received or sent one.
    #[schema(value_type = String)]
    pub last_at: jiff::Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SimPhones {
    /// The most recently active first, 100 at most.
    pub phones: Vec<SimPhoneListed>,
}

/// The phones listed at most: the sandbox page shows them side by side.
const PHONES_LISTED: u32 = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimReply {
    pub text: String,
    /// The provider's id for the reply; a second reply with the same id plays a provider
    /// that redelivers, and is stored as an inbound message once.
    #[serde(default)]
    pub provider_id: Option<String>,
}

/// The reply in the phone's log, and the inbound message the tenant received.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimReplied {
    pub id: String,
    pub direction: String,
    pub text: String,
    #[schema(value_type = String)]
    pub at: jiff::Timestamp,
    /// The stored, annotated inbound message (`GET /v1/inbound/{id}`).
    pub inbound: InboundView,
    /// `true` when the provider id was already known: nothing new was stored.
    pub duplicate: bool,
}

fn view(e: SimEntry) -> SimMessage {
    SimMessage {
        id: e.id,
        direction: e.direction,
        text: e.text,
        message_id: e.message_id,
        at: e.at,
    }
}

fn number(state: &AppState, raw: &str) -> ApiResult<String> {
    normalize_phone(raw, state.settings.default_country)
        .map(|p| p.into_string())
        .map_err(|e| ApiError::invalid_field("/number", e.to_string()))
}

/// The simulated phones that received or sent something, the most recently active first.
#[utoipa::path(get, path = "/v1/sim/phones", tag = "sim",
    responses((status = 200, body = SimPhones)))]
pub async fn phones(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<SimPhones>> {
    caller.require(Scope::Read)?;
    let phones = state
        .store
        .sim_phones(&caller.tenant_id, PHONES_LISTED)
        .await?;
    Ok(axum::Json(SimPhones {
        phones: phones
            .into_iter()
            .map(|p| SimPhoneListed {
                number: p.number,
                messages: p.messages,
                last_at: p.last_at,
            })
            .collect(),
    }))
}

/// What a simulated phone received and sent, oldest first.
#[utoipa::path(get, path = "/v1/sim/phones/{number}/messages", tag = "sim",
    responses((status = 200, body = SimPhone), (status = 422, body = crate::problem::Problem)))]
pub async fn phone_messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> ApiResult<axum::Json<SimPhone>> {
    caller.require(Scope::Read)?;
    let number = number(&state, &raw)?;
    let messages = state.store.sim_messages(&caller.tenant_id, &number).await?;
    Ok(axum::Json(SimPhone {
        number,
        messages: messages.into_iter().map(view).collect(),
    }))
}

/// The simulated phone replies; the reply is stored as an inbound message, annotated by
/// NLU (201), or found already stored when its `provider_id` was seen before (200).
#[utoipa::path(post, path = "/v1/sim/phones/{number}/reply", tag = "sim", request_body = SimReply,
    responses((status = 201, body = SimReplied), (status = 200, body = SimReplied),
        (status = 422, body = crate::problem::Problem)))]
pub async fn phone_reply(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<SimReply>,
) -> ApiResult<(StatusCode, axum::Json<SimReplied>)> {
    caller.require(Scope::Send)?;
    let number = number(&state, &raw)?;
    if body.text.trim().is_empty() {
        return Err(ApiError::invalid_field("/text", "must not be empty"));
    }
    let replied = relais_engine::sim::reply(
        &state.inbound,
        &*state.store,
        &*state.clock,
        &caller.tenant_id,
        &number,
        &body.text,
        body.provider_id,
    )
    .await
    .map_err(inbound_error)?;
    let status = if replied.inbound.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        axum::Json(SimReplied {
            id: replied.entry.id,
            direction: replied.entry.direction,
            text: replied.entry.text,
            at: replied.entry.at,
            duplicate: replied.inbound.duplicate,
            inbound: replied.inbound.message.into(),
        }),
    ))
}
