//! Providers' calls: `GET` and `POST /hooks/{channel}`, the address a configured channel
//! shows as its `webhook_url`. No API key: each channel checks its provider's signature
//! (WhatsApp: `X-Hub-Signature-256`), and a call it refuses stores nothing. A delivery is
//! answered 200 only once stored; a 503 makes the provider deliver it again.

use crate::AppState;
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use relais_channels::{WebhookError, WebhookRequest};
use relais_engine::channels::HookError;

pub fn router() -> Router<AppState> {
    Router::new().route("/hooks/{channel}", get(provider_call).post(provider_call))
}

/// The path of a channel's provider calls, for channels told by webhooks.
pub fn webhook_url(kind: &str, channel_id: &str) -> Option<String> {
    relais_channels::takes_webhooks(kind).then(|| format!("/hooks/{channel_id}"))
}

async fn provider_call(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    method: Method,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let request = WebhookRequest {
        is_get: method == Method::GET,
        query: &query,
        headers: &headers,
        body: &body,
    };
    match state.channels.webhook(&channel, &request).await {
        Ok(Some(echo)) => Ok(([(header::CONTENT_TYPE, "text/plain")], echo).into_response()),
        Ok(None) => Ok(StatusCode::OK.into_response()),
        Err(e) => Err(refusal(e)),
    }
}

fn refusal(error: HookError) -> ApiError {
    match error {
        HookError::UnknownChannel(_) => ApiError::not_found(error.to_string()),
        HookError::Refused(WebhookError::Unauthorized(why)) => {
            tracing::warn!(error = %why, "a provider call was refused");
            ApiError::unauthorized(why)
        }
        HookError::Refused(WebhookError::Malformed(why)) => ApiError::bad_request(why),
        HookError::Refused(WebhookError::OtherAccount(why)) => ApiError::forbidden(why),
        HookError::NotStored => ApiError::unavailable("the store did not take the delivery"),
    }
}
