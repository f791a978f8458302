//! `/v1/templates`: the tenant's stored templates, each a name and its language variants
//! (content with `{{ variables }}`, and optionally the approved WhatsApp template it maps
//! to), which a send names with `content: {"template": NAME}`.

use crate::AppState;
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::problem::{ApiError, ApiResult, FieldError};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use relais_core::stored_template::{StoredTemplate, TemplateMistake, TemplateVariant};
use relais_core::tenant::Scope;
use relais_store::{StoreError, TemplateRecord};
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/templates", get(list_templates).post(create_template))
        .route(
            "/templates/{name}",
            get(get_template).put(put_template).delete(delete_template),
        )
}

/// A stored template as the API shows it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TemplateView {
    pub name: String,
    /// Each with `language`, `content` and, when it maps to one, `whatsapp`: `{"name",
    /// "language"}` of the approved WhatsApp template.
    #[schema(value_type = Vec<Object>)]
    pub variants: Vec<TemplateVariant>,
    #[schema(value_type = String)]
    pub created_at: jiff::Timestamp,
    #[schema(value_type = String)]
    pub updated_at: jiff::Timestamp,
}

impl From<TemplateRecord> for TemplateView {
    fn from(r: TemplateRecord) -> Self {
        TemplateView {
            name: r.name,
            variants: r.variants,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TemplateList {
    pub data: Vec<TemplateView>,
}

/// A template with mistakes: 422, each mistake at its JSON pointer in `errors`.
fn refused(mistakes: Vec<TemplateMistake>) -> ApiError {
    let errors: Vec<FieldError> = mistakes
        .into_iter()
        .map(|m| FieldError {
            pointer: m.pointer,
            detail: m.detail,
        })
        .collect();
    let detail = match errors.as_slice() {
        [one] => format!("the template is not valid: {}: {}", one.pointer, one.detail),
        many => format!(
            "the template is not valid: {} mistakes, each at its pointer in `errors`",
            many.len()
        ),
    };
    ApiError {
        errors,
        ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail)
    }
}

/// Creates a template; 409 when the name is taken (replace it with `PUT`).
#[utoipa::path(post, path = "/v1/templates", tag = "templates",
    request_body(content = Object, description = "`{\"name\", \"variants\": [{\"language\", \"content\", \"whatsapp\"?}]}`"),
    responses((status = 201, body = TemplateView), (status = 409, body = crate::problem::Problem),
        (status = 422, body = crate::problem::Problem)))]
pub async fn create_template(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, axum::Json<TemplateView>)> {
    caller.require(Scope::Admin)?;
    let template = StoredTemplate::parse(None, &body).map_err(refused)?;
    let record = state
        .store
        .insert_template(&caller.tenant_id, &template, state.clock.now())
        .await
        .map_err(|e| match e {
            StoreError::Conflict(detail) => ApiError::conflict(format!(
                "{detail}; replace it with PUT /v1/templates/{}",
                template.name
            )),
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, axum::Json(record.into())))
}

/// The tenant's templates, by name.
#[utoipa::path(get, path = "/v1/templates", tag = "templates",
    responses((status = 200, body = TemplateList)))]
pub async fn list_templates(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<TemplateList>> {
    caller.require(Scope::Read)?;
    let templates = state.store.list_templates(&caller.tenant_id).await?;
    Ok(axum::Json(TemplateList {
        data: templates.into_iter().map(TemplateView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/templates/{name}", tag = "templates",
    responses((status = 200, body = TemplateView), (status = 404, body = crate::problem::Problem)))]
pub async fn get_template(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<axum::Json<TemplateView>> {
    caller.require(Scope::Read)?;
    let record = state
        .store
        .template(&caller.tenant_id, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("template `{name}`")))?;
    Ok(axum::Json(record.into()))
}

/// Creates (201) or replaces (200) the template `name`; the body's `name` may be left out.
#[utoipa::path(put, path = "/v1/templates/{name}", tag = "templates",
    request_body(content = Object, description = "`{\"variants\": [{\"language\", \"content\", \"whatsapp\"?}]}`"),
    responses((status = 200, body = TemplateView), (status = 201, body = TemplateView),
        (status = 422, body = crate::problem::Problem)))]
pub async fn put_template(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, axum::Json<TemplateView>)> {
    caller.require(Scope::Admin)?;
    let template = StoredTemplate::parse(Some(&name), &body).map_err(refused)?;
    let (record, created) = state
        .store
        .put_template(&caller.tenant_id, &template, state.clock.now())
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(record.into())))
}

/// Deletes a template; sends naming it afterwards are refused unless the routed channel
/// has a provider template of that name.
#[utoipa::path(delete, path = "/v1/templates/{name}", tag = "templates",
    responses((status = 204), (status = 404, body = crate::problem::Problem)))]
pub async fn delete_template(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    if state
        .store
        .delete_template(&caller.tenant_id, &name)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("template `{name}`")))
    }
}
