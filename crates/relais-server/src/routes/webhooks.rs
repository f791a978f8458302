//! Outgoing webhooks: register an endpoint (its signing secret is shown once), list them
//! with whether their endpoint answers, read a webhook's delivery log, delete one.

use crate::AppState;
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use relais_core::tenant::Scope;
use relais_engine::secrets::WEBHOOK_SECRET;
use relais_engine::webhooks::{check_url, generate_secret};
use relais_store::{Webhook, WebhookDelivery};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks", post(create_webhook).get(list_webhooks))
        .route("/webhooks/{id}", delete(delete_webhook))
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
    pub state: WebhookState,
    /// When the failures in a row began; null while `healthy`.
    #[schema(value_type = Option<String>)]
    pub failing_since: Option<jiff::Timestamp>,
    /// Set once 5 attempts in a row failed: none of the webhook's events is sent until
    /// then, when one goes as a probe (an answer resumes them all, another failure doubles
    /// the wait, up to 10 minutes). Null while events are sent as usual.
    #[schema(value_type = Option<String>)]
    pub retry_at: Option<jiff::Timestamp>,
}

/// Whether the webhook's endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookState {
    /// The last attempt got an answer (a 2xx, or a 4xx refusing that one event), or none
    /// was made yet.
    Healthy,
    /// The last attempts found it down: no connection, a timeout, 5xx, 408 or 429.
    Failing,
}

fn view(hook: Webhook, with_secret: bool) -> WebhookView {
    WebhookView {
        id: hook.id,
        url: hook.url,
        secret: with_secret.then_some(hook.secret),
        created_at: hook.created_at,
        state: if hook.circuit.is_healthy() {
            WebhookState::Healthy
        } else {
            WebhookState::Failing
        },
        failing_since: hook.circuit.failing_since,
        retry_at: hook.circuit.retry_at,
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

/// Registers an endpoint for message status events, signed with Standard Webhooks. The URL
/// must reach a public address (not loopback, private, link-local…) unless the operator
/// set `webhook_allow_private`.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses((status = 201, body = WebhookView), (status = 422, body = crate::problem::Problem)))]
pub async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> ApiResult<(StatusCode, axum::Json<WebhookView>)> {
    caller.require(Scope::Admin)?;
    let url = check_url(&body.url, state.settings.webhook_destinations)
        .await
        .map_err(|e| ApiError::invalid_field("/url", e.to_string()))?;
    let secret = generate_secret();
    let sealed = relais_engine::secrets::current().seal(WEBHOOK_SECRET, &secret);
    let hook = state
        .store
        .create_webhook(&caller.tenant_id, url.as_str(), &sealed, state.clock.now())
        .await?;
    // The store holds it sealed; the answer shows it as generated, once.
    let mut shown = view(hook, false);
    shown.secret = Some(secret);
    Ok((StatusCode::CREATED, axum::Json(shown)))
}

/// The tenant's webhooks (without their secrets), each with whether its endpoint answers.
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
    ApiPath(id): ApiPath<String>,
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

/// Deletes a webhook: events not yet delivered to it are dropped, with its delivery log.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    responses((status = 204, description = "Deleted"), (status = 404, body = crate::problem::Problem)))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    if state.store.delete_webhook(&caller.tenant_id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("webhook {id}")))
    }
}
