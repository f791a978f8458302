//! The web chat widget's Web Push opt-in, for pages of the channel's allowed sites:
//! - `GET /webchat/{channel}/push` answers `{"vapid_public_key"}`, the key the page
//!   subscribes with, `null` when the tenant has no Web Push channel (the widget then
//!   shows no opt-in; not a 404, which browsers log as an error on every page of the
//!   site);
//! - `POST /webchat/{channel}/push` with the visitor's token (`X-Relais-Visitor`) and the
//!   browser's `PushSubscription.toJSON()` keeps it as a `webpush` identity of the
//!   visitor's contact;
//! - `DELETE /webchat/{channel}/push` with the token and `{"endpoint"}` removes it.

use super::webchat::{for_page, known_visitor};
use crate::AppState;
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use relais_channels::webchat::Hub;
use relais_channels::webpush::opt_in::SubscriptionJson;
use relais_engine::web_push_opt_in::{self, OptInError};
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/webchat/{channel}/push",
        get(key)
            .post(subscribe)
            .delete(unsubscribe)
            .options(super::webchat::preflight),
    )
}

/// The VAPID public key the page passes to `pushManager.subscribe` as
/// `applicationServerKey`. Never the private key.
#[utoipa::path(get, path = "/webchat/{channel}/push", tag = "webchat",
    params(("channel" = String, Path, description = "The web chat channel's id")),
    responses(
        (status = 200, description = "`{\"vapid_public_key\"}`, `null` when the tenant has no Web Push channel"),
        (status = 403, body = crate::problem::Problem, description = "A page of a site the channel does not allow")),
    security(()))]
pub async fn key(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let headers = &headers;
    for_page(&channel, headers, |hub| async move {
        let key = web_push_opt_in::push_key(&*state.store, tenant(&hub)).await?;
        Ok(axum::Json(json!({"vapid_public_key": key.map(|key| key.public_key)})).into_response())
    })
    .await
}

/// Keeps the visitor's push subscription. Body: `{"endpoint", "keys": {"p256dh",
/// "auth"}}` as `PushSubscription.toJSON()` gives it.
#[utoipa::path(post, path = "/webchat/{channel}/push", tag = "webchat",
    params(("channel" = String, Path, description = "The web chat channel's id"),
        ("X-Relais-Visitor" = String, Header, description = "The visitor's token")),
    request_body(content = serde_json::Value, description = "`PushSubscription.toJSON()`"),
    responses(
        (status = 201, description = "Kept as a `webpush` identity of the visitor's contact: `{\"contact_id\"}`"),
        (status = 401, body = crate::problem::Problem, description = "No valid visitor token"),
        (status = 403, body = crate::problem::Problem, description = "A page of a site the channel does not allow"),
        (status = 404, body = crate::problem::Problem, description = "The tenant has no Web Push channel"),
        (status = 409, body = crate::problem::Problem, description = "The subscription belongs to another contact"),
        (status = 422, body = crate::problem::Problem, description = "Not an https:// endpoint, or keys of the wrong size")),
    security(()))]
pub async fn subscribe(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let headers = &headers;
    for_page(&channel, headers, |hub| async move {
        keep(&state, &hub, headers, &body).await
    })
    .await
}

async fn keep(
    state: &AppState,
    hub: &Hub,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let visitor = known_visitor(hub, headers)?;
    let subscription: SubscriptionJson = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid_field(
            "",
            format!(
                "the body must be PushSubscription.toJSON(), {{\"endpoint\", \"keys\": {{\"p256dh\", \"auth\"}}}}: {e}"
            ),
        )
    })?;
    let now = state.clock.now();
    match web_push_opt_in::subscribe(
        &*state.store,
        tenant(hub),
        &visitor.identity(),
        &subscription,
        now,
    )
    .await
    {
        Ok(contact) => Ok((
            StatusCode::CREATED,
            axum::Json(json!({"contact_id": contact.id})),
        )
            .into_response()),
        Err(OptInError::NoPushChannel) => Err(no_push_channel()),
        Err(OptInError::Invalid(e)) => Err(ApiError::invalid_field(pointer_of(&e), e.to_string())),
        Err(e @ OptInError::TakenByAnother) => Err(ApiError::conflict(e.to_string())),
        Err(OptInError::Store(e)) => Err(e.into()),
    }
}

/// Removes the visitor's subscription at `{"endpoint"}`: 204 whether or not it was kept.
#[utoipa::path(delete, path = "/webchat/{channel}/push", tag = "webchat",
    params(("channel" = String, Path, description = "The web chat channel's id"),
        ("X-Relais-Visitor" = String, Header, description = "The visitor's token")),
    request_body(content = serde_json::Value, description = "`{\"endpoint\"}`"),
    responses(
        (status = 204, description = "The visitor's contact no longer has it"),
        (status = 401, body = crate::problem::Problem, description = "No valid visitor token"),
        (status = 403, body = crate::problem::Problem, description = "A page of a site the channel does not allow")),
    security(()))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let headers = &headers;
    for_page(&channel, headers, |hub| async move {
        drop_subscription(&state, &hub, headers, &body).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

async fn drop_subscription(
    state: &AppState,
    hub: &Hub,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<()> {
    #[derive(serde::Deserialize)]
    struct Endpoint {
        endpoint: String,
    }
    let visitor = known_visitor(hub, headers)?;
    let Endpoint { endpoint } = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid_field(
            "/endpoint",
            format!("the body must be {{\"endpoint\"}}: {e}"),
        )
    })?;
    web_push_opt_in::unsubscribe(&*state.store, tenant(hub), &visitor.identity(), &endpoint)
        .await?;
    Ok(())
}

fn tenant(hub: &Hub) -> &str {
    &hub.identity().tenant_id
}

fn no_push_channel() -> ApiError {
    ApiError::not_found("a Web Push channel of this site's tenant")
}

fn pointer_of(e: &relais_channels::webpush::SubscriptionError) -> &'static str {
    use relais_channels::webpush::SubscriptionError;
    match e {
        SubscriptionError::Shape(_) => "",
        SubscriptionError::Endpoint => "/endpoint",
        SubscriptionError::P256dh => "/keys/p256dh",
        SubscriptionError::Auth => "/keys/auth",
    }
}
