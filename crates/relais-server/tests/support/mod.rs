//! What every HTTP test does with a request: run it through the router and read the answer.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Status, body (JSON, or the text as a JSON string when it is not JSON) and Content-Type.
pub async fn respond(app: &axum::Router, request: Request<Body>) -> (StatusCode, Value, String) {
    let resp = app.clone().oneshot(request).await.unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value, content_type)
}

/// A JSON call (or one without a body) authenticated with `token` (an API key or an
/// agent's session token): status and body.
#[allow(dead_code)]
pub async fn call(
    app: &axum::Router,
    token: &str,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    let body = match body {
        Some(json) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let (status, value, _) = respond(app, req.body(body).unwrap()).await;
    (status, value)
}
