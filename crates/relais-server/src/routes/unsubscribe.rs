//! `GET` and `POST /unsubscribe/{token}`: the one-click unsubscribe address of a marketing
//! mail's `List-Unsubscribe` header (RFC 8058). No API key: the token is signed.
//!
//! A mail program posts `List-Unsubscribe=One-Click` to it; a person who opens the link
//! gets a page whose button posts the same form (no script). Only the post changes
//! anything (a link scanner's `GET` does not unsubscribe anyone); a made-up token gets a
//! 404, a mangled one a 400, and neither changes anything.

use crate::AppState;
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Html;
use axum::routing::get;
use relais_engine::unsubscribe::{UnsubscribeError, check, one_click};

pub fn router() -> Router<AppState> {
    Router::new().route("/unsubscribe/{token}", get(page).post(unsubscribe))
}

async fn page(Path(token): Path<String>) -> ApiResult<Html<String>> {
    check(&token).map_err(refusal)?;
    Ok(Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width\"><title>Unsubscribe</title></head>\
<body><h1>Unsubscribe</h1><p>Stop receiving marketing e-mail from us?</p>\
<form method=\"post\" action=\"/unsubscribe/{token}\">\
<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
<button type=\"submit\">Unsubscribe</button></form></body></html>"
    )))
}

async fn unsubscribe(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Html<&'static str>> {
    // The token first: a forged link is a 404 whatever it posts.
    check(&token).map_err(refusal)?;
    if !is_one_click(&headers, &body) {
        return Err(ApiError::bad_request(
            "the body must be the form `List-Unsubscribe=One-Click` (RFC 8058)",
        ));
    }
    one_click(&*state.store, &token, state.clock.now())
        .await
        .map_err(refusal)?;
    Ok(Html(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Unsubscribed</title></head>\
<body><h1>Unsubscribed</h1><p>You will not receive marketing e-mail from us any more.</p></body></html>",
    ))
}

/// Whether the body is the one-click form, URL-encoded or as `multipart/form-data`
/// (RFC 8058 3.1 allows both).
fn is_one_click(headers: &HeaderMap, body: &[u8]) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let text = String::from_utf8_lossy(body);
        return text.contains("name=\"List-Unsubscribe\"") && text.contains("One-Click");
    }
    form_urlencoded::parse(body)
        .any(|(name, value)| name == "List-Unsubscribe" && value == "One-Click")
}

fn refusal(error: UnsubscribeError) -> ApiError {
    match error {
        UnsubscribeError::Malformed(e) => ApiError::bad_request(e.to_string()),
        UnsubscribeError::Unknown(why) => ApiError::new(StatusCode::NOT_FOUND, "not-found", why),
        UnsubscribeError::Store(e) => e.into(),
    }
}
