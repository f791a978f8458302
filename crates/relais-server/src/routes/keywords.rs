//! `/v1/keywords`: the words a customer writes to stop, restart or ask for help, and the
//! replies they get.

use crate::AppState;
use crate::extract::{ApiJson, Caller};
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use relais_core::keywords::Keywords;
use relais_core::tenant::Scope;
use relais_engine::keywords::{KEYWORDS_SETTING, keywords_of};

pub fn router() -> Router<AppState> {
    Router::new().route("/keywords", get(get_keywords).put(put_keywords))
}

/// The tenant's keywords and replies (the defaults, in French and English, until it sets
/// its own).
#[utoipa::path(get, path = "/v1/keywords", tag = "conversations",
    responses((status = 200, body = Keywords)))]
pub async fn get_keywords(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Keywords>> {
    caller.require(Scope::Read)?;
    Ok(axum::Json(
        keywords_of(&*state.store, &caller.tenant_id).await?,
    ))
}

/// Replaces the tenant's keywords and replies; a document that could not work is refused
/// with a pointer to what is wrong, and the keywords in force stay.
#[utoipa::path(put, path = "/v1/keywords", tag = "conversations", request_body = Keywords,
    responses((status = 200, body = Keywords), (status = 422, body = crate::problem::Problem)))]
pub async fn put_keywords(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(keywords): ApiJson<Keywords>,
) -> ApiResult<axum::Json<Keywords>> {
    caller.require(Scope::Admin)?;
    keywords
        .validate()
        .map_err(|e| ApiError::invalid_field(&e.pointer, e.detail))?;
    let value = serde_json::to_value(&keywords).map_err(ApiError::internal)?;
    state
        .store
        .put_setting(
            &caller.tenant_id,
            KEYWORDS_SETTING,
            &value,
            state.clock.now(),
        )
        .await?;
    Ok(axum::Json(keywords))
}
