//! The simulator's HTTP side: `POST /mo {"from","to","text"[,"system_id"]}` injects a
//! mobile-originated message; `GET /stats` shows the counters.

use std::sync::atomic::Ordering;

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

pub(crate) fn router(handle: SimHandle) -> Router {
    Router::new()
        .route("/mo", post(mo))
        .route("/stats", get(stats))
        .with_state(handle)
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
    let s = &h.stats;
    Json(json!({
        "submits": s.submits.load(Ordering::Relaxed),
        "throttled": s.throttled.load(Ordering::Relaxed),
        "receipts_sent": s.receipts_sent.load(Ordering::Relaxed),
        "mo_sent": s.mo_sent.load(Ordering::Relaxed),
    }))
}
