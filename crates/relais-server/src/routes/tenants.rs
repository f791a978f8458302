//! Tenants (operator keys) and API keys (admin keys of a tenant).

use crate::AppState;
use crate::extract::{ApiJson, Caller};
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use relais_core::tenant::{Scope, Scopes, generate_api_key};
use relais_engine::tenants::{TenantError, create_tenant as create_with_key, issue_key};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tenants", post(create_tenant).get(list_tenants))
        .route("/api-keys", post(create_api_key))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Lowercase letters, digits, `-` and `_`.
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub created_at: jiff::Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTenant {
    pub tenant: TenantView,
    /// The tenant's first admin key. Shown once: Relais keeps only its hash.
    pub api_key: String,
}

fn view(t: relais_store::Tenant) -> TenantView {
    TenantView {
        id: t.id,
        name: t.name,
        created_at: t.created_at,
    }
}

/// Create a tenant with its first admin key (operator keys only).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses((status = 201, body = CreatedTenant), (status = 409, body = crate::problem::Problem)))]
pub async fn create_tenant(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateTenant>,
) -> ApiResult<(StatusCode, axum::Json<CreatedTenant>)> {
    caller.require(Scope::Operator)?;
    let (tenant, key) = create_with_key(&*state.store, &body.name, state.clock.now())
        .await
        .map_err(|e| match e {
            TenantError::InvalidName(d) => ApiError::invalid_field("/name", d),
            TenantError::Store(s) => s.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedTenant {
            tenant: view(tenant),
            api_key: key.secret,
        }),
    ))
}

/// List tenants (operator keys only).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", responses((status = 200, body = Vec<TenantView>)))]
pub async fn list_tenants(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<TenantView>>> {
    caller.require(Scope::Operator)?;
    Ok(axum::Json(
        state
            .store
            .list_tenants()
            .await?
            .into_iter()
            .map(view)
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// Any of `admin`, `send`, `read`.
    pub scopes: Vec<Scope>,
    pub label: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    pub id: String,
    /// Shown once: Relais keeps only its hash.
    pub api_key: String,
    pub scopes: Vec<Scope>,
}

/// Issue another API key for the caller's tenant (admin keys only).
#[utoipa::path(post, path = "/v1/api-keys", tag = "tenants", request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey)))]
pub async fn create_api_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> ApiResult<(StatusCode, axum::Json<CreatedApiKey>)> {
    caller.require(Scope::Admin)?;
    if body.scopes.is_empty() {
        return Err(ApiError::invalid_field(
            "/scopes",
            "name at least one scope",
        ));
    }
    if body.scopes.contains(&Scope::Operator) {
        return Err(ApiError::invalid_field(
            "/scopes",
            "operator keys are issued only at installation",
        ));
    }
    let key = generate_api_key();
    let label = body.label.unwrap_or_default();
    let record = issue_key(
        &*state.store,
        &caller.tenant_id,
        &key,
        Scopes::new(body.scopes.clone()),
        &label,
        state.clock.now(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedApiKey {
            id: record.id,
            api_key: key.secret,
            scopes: body.scopes,
        }),
    ))
}
