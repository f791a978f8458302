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

/// Liveness, store reachability and whether the store takes writes: a store that answers
/// reads but cannot write (a full disk) makes every send fail, so health says so.
#[utoipa::path(get, path = "/healthz", tag = "system", responses(
    (status = 200, description = "The server answers and its store takes writes"),
    (status = 503, description = "The store cannot be read or written; `detail` says why")))]
pub async fn healthz(State(state): State<AppState>) -> axum::response::Response {
    let checked = tokio::time::timeout(HEALTH_TIMEOUT, async {
        state
            .store
            .tenant_by_name(relais_core::tenant::DEFAULT_TENANT)
            .await?;
        state.store.check_writable().await
    })
    .await;
    let failure = match checked {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!(
            "the store did not answer within {} s",
            HEALTH_TIMEOUT.as_secs()
        )),
    };
    match failure {
        None => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ok", "store": "writable"})),
        )
            .into_response(),
        Some(detail) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, crate::problem::RETRY_AFTER_SECS)],
            axum::Json(serde_json::json!({"status": "unavailable", "detail": detail})),
        )
            .into_response(),
    }
}

/// How long a scrape waits for the outbox's depth: one indexed count, normally under a
/// millisecond; Prometheus's default scrape timeout is 10 s.
const QUEUE_DEPTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a health check waits for the store.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The counters, and the gauges read at scrape time: the outbox's depth is counted now,
/// so that it is as fresh as the scrape (a store that does not answer in time leaves the
/// last value).
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if state.metrics.is_some()
        && let Ok(Ok(ready)) = tokio::time::timeout(
            QUEUE_DEPTH_TIMEOUT,
            state.store.outbox_ready(state.clock.now()),
        )
        .await
    {
        metrics::gauge!(relais_engine::counters::OUTBOX_READY).set(ready as f64);
    }
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
