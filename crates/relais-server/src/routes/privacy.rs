//! GDPR: a contact's export (`GET /v1/contacts/{id}/export`, JSON or a zip of CSVs), their
//! erasure (`POST /v1/contacts/{id}/erase`), and the tenant's retention status
//! (`GET /v1/privacy/retention`, `POST /v1/privacy/retention/sweep`). See docs/privacy.md.

use crate::AppState;
use crate::extract::{ApiPath, ApiQuery, Caller};
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use relais_core::tenant::Scope;
use relais_engine::privacy::PrivacyError;
use relais_engine::privacy::retention::RetentionStatus;
use relais_store::ErasureReport;
use serde::Deserialize;
use utoipa::IntoParams;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/contacts/{id}/export", get(export_contact))
        .route("/contacts/{id}/erase", post(erase_contact))
        .route("/privacy/retention", get(retention))
        .route("/privacy/retention/sweep", post(sweep))
}

impl From<PrivacyError> for ApiError {
    fn from(e: PrivacyError) -> Self {
        match e {
            PrivacyError::NotFound(id) => ApiError::not_found(format!("contact {id}")),
            PrivacyError::Erased(_) => ApiError::new(StatusCode::CONFLICT, "erased", e.to_string()),
            PrivacyError::ProofMissing => ApiError::invalid_field("/opt_in/proof", e.to_string()),
            PrivacyError::Store(s) => s.into(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ExportQuery {
    /// `json` (default) or `zip` (one CSV per kind, and `export.json`). `Accept:
    /// application/zip` asks for the zip too.
    pub format: Option<String>,
}

/// Everything Relais holds about a contact: profile, identities, consents with proofs,
/// messages out and in, conversations and notes, NLU annotations, flow answers, clicks,
/// customer events, campaign and journey membership.
#[utoipa::path(get, path = "/v1/contacts/{id}/export", tag = "privacy", params(ExportQuery),
    responses((status = 200, description = "The export: JSON, or with `format=zip` a zip of CSVs (`application/zip`)", body = Object),
    (status = 404, body = crate::problem::Problem)))]
pub async fn export_contact(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ExportQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.require(Scope::Admin)?;
    let zip = match q.format.as_deref() {
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/zip")),
        Some("json") => false,
        Some("zip") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format must be `json` or `zip`, not `{other}`"
            )));
        }
    };
    let export =
        relais_engine::privacy::export_contact(&*state.store, &caller.tenant_id, &id).await?;
    if !zip {
        return Ok(axum::Json(export).into_response());
    }
    let bytes = relais_engine::privacy::export_zip(&export)?;
    let disposition = format!("attachment; filename=\"contact-{id}.zip\"");
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// Erase a contact: every trace of the person is removed or irreversibly anonymised, in
/// one transaction; counts stay. Their addresses are then refused to `POST /v1/contacts`
/// and imports unless a fresh opt-in comes with them.
#[utoipa::path(post, path = "/v1/contacts/{id}/erase", tag = "privacy",
    responses((status = 200, description = "What was deleted or anonymised, by table", body = Object),
    (status = 404, body = crate::problem::Problem)))]
pub async fn erase_contact(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<ErasureReport>> {
    caller.require(Scope::Admin)?;
    Ok(axum::Json(
        relais_engine::privacy::erase_contact(
            &*state.store,
            &caller.tenant_id,
            &id,
            state.clock.now(),
        )
        .await?,
    ))
}

/// The tenant's retention policy (the `retention` section of `/v1/settings`) and what
/// the last sweep purged.
#[utoipa::path(get, path = "/v1/privacy/retention", tag = "privacy",
    responses((status = 200, body = Object)))]
pub async fn retention(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<RetentionStatus>> {
    caller.require(Scope::Read)?;
    Ok(axum::Json(
        relais_engine::privacy::retention::status(&*state.store, &caller.tenant_id).await?,
    ))
}

/// Sweep the tenant's expired content now (the server also sweeps every hour) and answer
/// the retention status.
#[utoipa::path(post, path = "/v1/privacy/retention/sweep", tag = "privacy",
    responses((status = 200, body = Object)))]
pub async fn sweep(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<RetentionStatus>> {
    caller.require(Scope::Admin)?;
    relais_engine::privacy::retention::sweep_tenant(
        &*state.store,
        &caller.tenant_id,
        state.clock.now(),
    )
    .await?;
    Ok(axum::Json(
        relais_engine::privacy::retention::status(&*state.store, &caller.tenant_id).await?,
    ))
}
