//! Outgoing webhooks: register an endpoint (its signing secret is shown once), list them,
//! and read a webhook's delivery log.

use crate::AppState;
use crate::extract::{ApiJson, Caller};
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use relais_core::tenant::Scope;
use relais_engine::webhooks::{generate_secret, validate_url};
use relais_store::{Webhook, WebhookDelivery};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks", post(create_webhook).get(list_webhooks))
        .route("/webhooks/{id}/deliveries", get(list_deliveries))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where events are POSTed, e.g. `https://example.com/relais-events`.
    pub url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    /// The signing secret (`whsec_…`), only in the answer that creates the webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[schema(value_type = String)]
    pub created_at: jiff::Timestamp,
}

fn view(hook: Webhook, with_secret: bool) -> WebhookView {
    WebhookView {
        id: hook.id,
        url: hook.url,
        secret: with_secret.then_some(hook.secret),
        created_at: hook.created_at,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The `webhook-id` header of every attempt.
    pub id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    /// The HTTP status of the last attempt.
    pub last_code: Option<i64>,
    pub last_error: Option<String>,
    #[schema(value_type = String)]
    pub next_attempt_at: jiff::Timestamp,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    #[schema(value_type = String)]
    pub created_at: jiff::Timestamp,
    #[schema(value_type = String)]
    pub updated_at: jiff::Timestamp,
}

fn delivery_view(d: WebhookDelivery) -> DeliveryView {
    DeliveryView {
        payload: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
        id: d.id,
        event_type: d.event_type,
        status: d.status,
        attempts: d.attempts,
        last_code: d.last_code,
        last_error: d.last_error,
        next_attempt_at: d.due_at,
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}

/// Registers an endpoint for message status events, signed with Standard Webhooks.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses((status = 201, body = WebhookView), (status = 422, body = crate::problem::Problem)))]
pub async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> ApiResult<(StatusCode, axum::Json<WebhookView>)> {
    caller.require(Scope::Admin)?;
    validate_url(&body.url).map_err(|e| ApiError::invalid_field("/url", e.to_string()))?;
    let hook = state
        .store
        .create_webhook(
            &caller.tenant_id,
            &body.url,
            &generate_secret(),
            state.clock.now(),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(view(hook, true))))
}

/// The tenant's webhooks (without their secrets).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = Vec<WebhookView>)))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<WebhookView>>> {
    caller.require(Scope::Read)?;
    let hooks = state.store.webhooks(&caller.tenant_id).await?;
    Ok(axum::Json(
        hooks.into_iter().map(|h| view(h, false)).collect(),
    ))
}

/// The latest 100 deliveries of a webhook, oldest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    responses((status = 200, body = Vec<DeliveryView>), (status = 404, body = crate::problem::Problem)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vec<DeliveryView>>> {
    caller.require(Scope::Read)?;
    let hooks = state.store.webhooks(&caller.tenant_id).await?;
    if !hooks.iter().any(|h| h.id == id) {
        return Err(ApiError::not_found(format!("webhook {id}")));
    }
    let deliveries = state
        .store
        .webhook_deliveries(&caller.tenant_id, &id)
        .await?;
    Ok(axum::Json(
        deliveries.into_iter().map(delivery_view).collect(),
    ))
}
