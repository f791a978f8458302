//! `/v1/flows`: the tenant's bot flows (JSON or YAML), and simulations that run one
//! against scripted customer messages without sending anything.

use crate::AppState;
use crate::extract::{ApiJson, ApiPath, Caller, parse_json};
use crate::problem::{ApiError, ApiResult, FieldError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use relais_core::tenant::Scope;
use relais_engine::flows::{FlowsError, Simulation, Transcript};
use relais_store::FlowRecord;
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/flows", get(list_flows))
        .route(
            "/flows/{name}",
            get(get_flow).put(put_flow).delete(delete_flow),
        )
        .route("/flows/{name}/simulate", post(simulate_flow))
}

impl From<FlowsError> for ApiError {
    fn from(e: FlowsError) -> Self {
        match e {
            FlowsError::Invalid(errors) => {
                let errors: Vec<FieldError> = errors
                    .0
                    .into_iter()
                    .map(|e| FieldError {
                        pointer: e.pointer,
                        detail: e.message,
                    })
                    .collect();
                let detail = match errors.as_slice() {
                    [one] => format!("the flow is not valid: {}: {}", one.pointer, one.detail),
                    many => format!(
                        "the flow is not valid: {} mistakes, each at its pointer in `errors`",
                        many.len()
                    ),
                };
                ApiError {
                    errors,
                    ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail)
                }
            }
            FlowsError::BadName(detail) => ApiError::bad_request(format!("flow name: {detail}")),
            FlowsError::NotFound(name) => ApiError::not_found(format!("flow `{name}`")),
            FlowsError::BadRequest(detail) => ApiError::bad_request(detail),
            FlowsError::Store(e) => e.into(),
            FlowsError::Io(e) => ApiError::internal(e),
        }
    }
}

/// A stored flow as the API shows it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct FlowView {
    pub name: String,
    /// 1 for the first upload, one more for each later one.
    pub revision: i64,
    #[schema(value_type = Object)]
    pub definition: Value,
    #[schema(value_type = String)]
    pub created_at: jiff::Timestamp,
    #[schema(value_type = String)]
    pub updated_at: jiff::Timestamp,
}

impl From<FlowRecord> for FlowView {
    fn from(r: FlowRecord) -> Self {
        FlowView {
            name: r.name,
            revision: r.revision,
            definition: r.definition,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct FlowList {
    pub data: Vec<FlowView>,
}

/// The tenant's flows, by name.
#[utoipa::path(get, path = "/v1/flows", tag = "flows", responses((status = 200, body = FlowList)))]
pub async fn list_flows(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<FlowList>> {
    caller.require(Scope::Read)?;
    let flows = state.store.list_flows(&caller.tenant_id).await?;
    Ok(axum::Json(FlowList {
        data: flows.into_iter().map(FlowView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/flows/{name}", tag = "flows",
    responses((status = 200, body = FlowView), (status = 404, body = crate::problem::Problem)))]
pub async fn get_flow(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<axum::Json<FlowView>> {
    caller.require(Scope::Read)?;
    let record = state
        .store
        .flow(&caller.tenant_id, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("flow `{name}`")))?;
    Ok(axum::Json(record.into()))
}

/// Creates or replaces a flow. The body is JSON, or YAML with `Content-Type:
/// application/yaml`; a flow with mistakes is refused (422) with each one at its JSON
/// pointer in `errors`, and the flow in force stays.
#[utoipa::path(put, path = "/v1/flows/{name}", tag = "flows",
    request_body(content = Object, description = "The flow document (JSON or YAML)"),
    responses((status = 200, body = FlowView), (status = 422, body = crate::problem::Problem),
        (status = 415, body = crate::problem::Problem)))]
pub async fn put_flow(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<FlowView>> {
    caller.require(Scope::Admin)?;
    let document = read_document(&headers, &body)?;
    let record = state
        .inbound
        .flows()
        .put(&caller.tenant_id, &name, &document)
        .await?;
    Ok(axum::Json(record.into()))
}

/// A flow document, as JSON or YAML by its `Content-Type`.
fn read_document(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let label = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match label.as_deref() {
        Some("application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml") => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("the YAML body is not UTF-8"))?;
            serde_norway::from_str::<Value>(text)
                .map_err(|e| ApiError::bad_request(format!("malformed YAML: {e}")))
        }
        Some("application/json") | None => parse_json(body),
        Some(other) => Err(ApiError::unsupported_media_type(format!(
            "a flow is JSON (`application/json`) or YAML (`application/yaml`), not `{other}`"
        ))),
    }
}

/// Deletes a flow. Conversations in the middle of it are handed to a human at their next
/// message.
#[utoipa::path(delete, path = "/v1/flows/{name}", tag = "flows",
    responses((status = 204), (status = 404, body = crate::problem::Problem)))]
pub async fn delete_flow(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    if state.store.delete_flow(&caller.tenant_id, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("flow `{name}`")))
    }
}

/// A simulation's script.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// The customer's messages, in order; the first one starts the flow.
    pub inputs: Vec<String>,
    /// The contact's attributes at the start.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: serde_json::Map<String, Value>,
    /// Answers of `http` nodes by node name: any JSON, or `{"fail": "why"}` to take the
    /// node's `on_fail`. Nodes without a mock are really called.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub mocks: std::collections::BTreeMap<String, Value>,
    /// The contact's time zone, for dates such as `demain` (UTC by default).
    #[serde(default)]
    pub timezone: Option<String>,
}

/// Runs the flow from its start against scripted customer messages and answers the
/// transcript: what the bot would say, the calls it would make, the answers it would
/// store, and where it stands at the end. Nothing is sent or stored.
#[utoipa::path(post, path = "/v1/flows/{name}/simulate", tag = "flows",
    request_body = SimulateRequest,
    responses((status = 200, description = "The transcript"), (status = 404, body = crate::problem::Problem)))]
pub async fn simulate_flow(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<SimulateRequest>,
) -> ApiResult<axum::Json<Transcript>> {
    caller.require(Scope::Read)?;
    if let Some(tz) = &request.timezone {
        relais_core::contact::validate_timezone(tz)
            .map_err(|e| ApiError::invalid_field("/timezone", e.to_string()))?;
    }
    let mocks = request
        .mocks
        .into_iter()
        .map(|(node, value)| {
            serde_json::from_value(value)
                .map(|mock| (node.clone(), mock))
                .map_err(|e| ApiError::invalid_field(&format!("/mocks/{node}"), e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let simulation = Simulation {
        inputs: request.inputs,
        attributes: request.attributes,
        mocks,
        timezone: request.timezone,
        default_country: state.settings.default_country,
    };
    let transcript = state
        .inbound
        .flows()
        .simulate(&caller.tenant_id, &name, simulation)
        .await?;
    Ok(axum::Json(transcript))
}
