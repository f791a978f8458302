//! `/v1/segments`: a tenant's saved filters over its contacts, each shown with how many
//! contacts it holds now and a sample of them; `/v1/segments/preview` tries a filter
//! without saving it.

use crate::AppState;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::problem::{ApiError, ApiResult, FieldError};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use relais_core::tenant::Scope;
use relais_engine::segments::{self, DEFAULT_SAMPLE, Preview, SegmentError, SegmentView};
use relais_store::SegmentRecord;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/segments", get(list_segments).post(create_segment))
        .route("/segments/preview", post(preview_segment))
        .route(
            "/segments/{id}",
            get(get_segment).put(put_segment).delete(delete_segment),
        )
}

impl From<SegmentError> for ApiError {
    fn from(e: SegmentError) -> Self {
        match e {
            SegmentError::Filter(parse) => {
                let detail = format!(
                    "the filter does not parse at character {}: {}",
                    parse.position, parse.message
                );
                ApiError {
                    errors: vec![FieldError {
                        pointer: "/filter".into(),
                        detail: detail.clone(),
                    }],
                    ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail)
                }
            }
            SegmentError::Name(detail) => ApiError::invalid_field("/name", detail),
            SegmentError::NotFound(id) => ApiError::not_found(format!("segment `{id}`")),
            SegmentError::NameTaken(name) => ApiError::conflict(format!(
                "a segment named `{name}` exists; change its filter with PUT /v1/segments/{name}"
            )),
            SegmentError::Store(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSegment {
    pub name: String,
    pub filter: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterBody {
    pub filter: String,
}

#[derive(Debug, Deserialize)]
pub struct SampleQuery {
    /// Contacts shown with the count (0 to 100, default 10).
    pub sample: Option<i64>,
}

#[derive(Debug, serde::Serialize)]
pub struct SegmentList {
    pub data: Vec<SegmentRecord>,
}

/// Saves a segment: 201 with its count and a sample; 422 with the character where a
/// filter goes wrong; 409 when the name is taken.
pub async fn create_segment(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewSegment>,
) -> ApiResult<(StatusCode, axum::Json<SegmentView>)> {
    caller.require(Scope::Admin)?;
    let view = segments::create(
        &*state.store,
        &caller.tenant_id,
        &body.name,
        &body.filter,
        state.clock.now(),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

pub async fn list_segments(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<SegmentList>> {
    caller.require(Scope::Read)?;
    let data = state.store.list_segments(&caller.tenant_id).await?;
    Ok(axum::Json(SegmentList { data }))
}

/// A segment by id or name, with how many contacts it holds now.
pub async fn get_segment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<SampleQuery>,
) -> ApiResult<axum::Json<SegmentView>> {
    caller.require(Scope::Read)?;
    let view = segments::get(
        &*state.store,
        &caller.tenant_id,
        &id,
        query.sample.unwrap_or(DEFAULT_SAMPLE),
        state.clock.now(),
    )
    .await?;
    Ok(axum::Json(view))
}

/// Replaces a segment's filter.
pub async fn put_segment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<FilterBody>,
) -> ApiResult<axum::Json<SegmentView>> {
    caller.require(Scope::Admin)?;
    let view = segments::update(
        &*state.store,
        &caller.tenant_id,
        &id,
        &body.filter,
        state.clock.now(),
    )
    .await?;
    Ok(axum::Json(view))
}

pub async fn delete_segment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    segments::delete(&*state.store, &caller.tenant_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many contacts a filter holds now, and a sample, without saving it.
pub async fn preview_segment(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<SampleQuery>,
    ApiJson(body): ApiJson<FilterBody>,
) -> ApiResult<axum::Json<Preview>> {
    caller.require(Scope::Read)?;
    let preview = segments::preview(
        &*state.store,
        &caller.tenant_id,
        &body.filter,
        query.sample.unwrap_or(DEFAULT_SAMPLE),
        state.clock.now(),
    )
    .await?;
    Ok(axum::Json(preview))
}
