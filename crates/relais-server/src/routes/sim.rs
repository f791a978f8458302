//! The `sim` sandbox: what a simulated phone received, and its replies.

use crate::AppState;
use crate::extract::{ApiJson, Caller};
use crate::problem::{ApiError, ApiResult};
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimReply {
    pub text: String,
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

/// The simulated phone replies; the reply is stored as an inbound message.
#[utoipa::path(post, path = "/v1/sim/phones/{number}/reply", tag = "sim", request_body = SimReply,
    responses((status = 201, body = SimMessage), (status = 422, body = crate::problem::Problem)))]
pub async fn phone_reply(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<SimReply>,
) -> ApiResult<(StatusCode, axum::Json<SimMessage>)> {
    caller.require(Scope::Send)?;
    let number = number(&state, &raw)?;
    if body.text.trim().is_empty() {
        return Err(ApiError::invalid_field("/text", "must not be empty"));
    }
    let entry = relais_engine::sim::reply(
        &*state.store,
        &caller.tenant_id,
        &number,
        &body.text,
        state.clock.now(),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(view(entry))))
}
