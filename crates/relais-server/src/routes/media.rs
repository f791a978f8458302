//! `/v1/media/{id}`: the media customers sent (a web chat visitor's images), for the
//! tenant's keys and agents, answered so that a browser only ever shows it as an image.

use crate::AppState;
use crate::extract::Caller;
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use relais_core::tenant::Scope;
use relais_store::Media;

pub fn router() -> Router<AppState> {
    Router::new().route("/media/{id}", get(get_media))
}

/// Where the API serves the tenant's media `id`.
pub fn url(id: &str) -> String {
    format!("/v1/media/{id}")
}

/// The bytes of an upload under its stored type. The type was proven from the bytes at
/// upload, and `nosniff` keeps the browser to it; `sandbox` makes the answer a page
/// without scripts or origin should a browser open it as a document, and `inline` shows
/// it rather than saving it.
pub fn media_response(media: Media) -> Response {
    let content_type = HeaderValue::from_str(&media.mime_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let mut response = media.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("inline"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    // An upload never changes: the browser may keep it, but only for this user.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400, immutable"),
    );
    response
}

/// The bytes of an image a customer sent, with its type.
#[utoipa::path(get, path = "/v1/media/{id}", tag = "inbound",
    params(("id" = String, Path, description = "The media's id, as an inbound message's `media.id` gives it")),
    responses(
        (status = 200, description = "The image's bytes, under its type (image/jpeg, image/png, image/gif or image/webp)"),
        (status = 404, body = crate::problem::Problem)))]
pub async fn get_media(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require(Scope::Read)?;
    let media = state
        .store
        .media(&caller.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("media `{id}`")))?;
    Ok(media_response(media))
}
