//! `GET /l/{code}`: a tracked short link. No API key: the code itself is the secret (12
//! random base62 characters). A code Relais issued records a click and redirects (302) to
//! the URL it replaced; any other code gets a 404 and records nothing, so the server never
//! redirects anywhere a message of its own did not point.

use crate::AppState;
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub fn router() -> Router<AppState> {
    Router::new().route("/l/{code}", get(follow))
}

/// Records a click on a tracked link and redirects to its URL (a `HEAD` request, sent by
/// link checkers and mail scanners, is redirected without a click being recorded).
#[utoipa::path(get, path = "/l/{code}", tag = "links", security(()),
    params(("code" = String, Path, description = "The code of a short link Relais wrote in a message")),
    responses((status = 302, description = "Redirects to the link's URL; the click is recorded"),
        (status = 404, body = crate::problem::Problem)))]
pub async fn follow(
    State(state): State<AppState>,
    method: Method,
    Path(code): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let click = if method == Method::HEAD {
        relais_engine::tracked_links::peek(&*state.store, &code).await?
    } else {
        relais_engine::tracked_links::follow(&*state.store, &code, user_agent, state.clock.now())
            .await?
    }
    .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such link"))?;
    let location = HeaderValue::from_str(&click.url)
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such link"))?;
    let mut response = StatusCode::FOUND.into_response();
    response.headers_mut().insert(header::LOCATION, location);
    // Each visit must reach the server to be counted.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(response)
}
