//! The simulator's HTTP side: `POST /mo {"from","to","text"[,"system_id"]}` injects a
//! mobile-originated message; `GET /stats` shows the counters; `POST /restart
//! {"down_ms"}` drops every bind, stops listening for that long and listens again.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::simulator::{SimError, SimHandle};

#[derive(Debug, Deserialize)]
struct Mo {
    from: String,
    to: String,
    text: String,
    #[serde(default)]
    system_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Restart {
    #[serde(default)]
    down_ms: u64,
}

pub(crate) fn router(handle: SimHandle) -> Router {
    Router::new()
        .route("/mo", post(mo))
        .route("/stats", get(stats))
        .route("/restart", post(restart))
        .with_state(handle)
}

async fn restart(State(h): State<SimHandle>, Json(r): Json<Restart>) -> (StatusCode, Json<Value>) {
    match h.restart(Duration::from_millis(r.down_ms)).await {
        Ok(()) => (StatusCode::OK, Json(json!({ "listening": h.smpp_addr }))),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": e.to_string() })),
        ),
    }
}

async fn mo(State(h): State<SimHandle>, Json(mo): Json<Mo>) -> (StatusCode, Json<Value>) {
    match h
        .inject_mo(mo.system_id.as_deref(), &mo.from, &mo.to, &mo.text)
        .await
    {
        Ok(parts) => (StatusCode::ACCEPTED, Json(json!({ "parts": parts }))),
        Err(SimError::NotBound) => (
            StatusCode::CONFLICT,
            Json(json!({ "error": "no ESME bound to receive" })),
        ),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": e.to_string() })),
        ),
    }
}

async fn stats(State(h): State<SimHandle>) -> Json<Value> {
    Json(json!(h.counters()))
}
