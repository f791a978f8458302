//! Unauthenticated endpoints: health, metrics, the API description and its docs page.

use crate::AppState;
use crate::openapi::openapi_json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/docs", get(docs))
}

/// Liveness and store reachability.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, description = "The server and its store answer")))]
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state
        .store
        .tenant_by_name(relais_core::tenant::DEFAULT_TENANT)
        .await
    {
        Ok(_) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ok"})),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "unavailable", "detail": e.to_string()})),
        ),
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json())
}

/// A self-contained page that renders /openapi.json: no asset is fetched from elsewhere.
pub async fn docs() -> Html<&'static str> {
    Html(include_str!("../docs.html"))
}
