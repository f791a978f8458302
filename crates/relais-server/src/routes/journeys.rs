//! `/v1/journeys` and `/v1/geofences`: the tenant's journeys (checked documents, like
//! flows) with their runs, and the named areas `entered_area` events are matched against.

use crate::AppState;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::problem::{ApiError, ApiResult, FieldError};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use relais_core::tenant::Scope;
use relais_engine::journeys::JourneysError;
use relais_store::{GeofenceRecord, JourneyRecord, JourneyRun};
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/journeys", get(list_journeys))
        .route(
            "/journeys/{name}",
            get(get_journey).put(put_journey).delete(delete_journey),
        )
        .route("/journeys/{name}/runs", get(list_runs))
        .route("/journeys/{name}/report", get(journey_report))
        .route("/geofences", get(list_geofences))
        .route(
            "/geofences/{name}",
            axum::routing::put(put_geofence).delete(delete_geofence),
        )
}

impl From<JourneysError> for ApiError {
    fn from(e: JourneysError) -> Self {
        match e {
            JourneysError::Invalid(errors) => {
                let errors: Vec<FieldError> = errors
                    .0
                    .into_iter()
                    .map(|e| FieldError {
                        pointer: e.pointer,
                        detail: e.message,
                    })
                    .collect();
                let detail = match errors.as_slice() {
                    [one] => format!("the journey is not valid: {}: {}", one.pointer, one.detail),
                    many => format!(
                        "the journey is not valid: {} mistakes, each at its pointer in `errors`",
                        many.len()
                    ),
                };
                ApiError {
                    errors,
                    ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail)
                }
            }
            JourneysError::BadName(detail) => ApiError::bad_request(format!("name: {detail}")),
            JourneysError::BadGeofence(e) => {
                let field = match e {
                    relais_core::journey::geo::GeoError::Latitude(_) => "/lat",
                    relais_core::journey::geo::GeoError::Longitude(_) => "/lon",
                    relais_core::journey::geo::GeoError::Radius(_) => "/radius_m",
                };
                ApiError::invalid_field(field, e.to_string())
            }
            JourneysError::Store(e) => e.into(),
        }
    }
}

#[derive(Debug, serde::Serialize)]
pub struct JourneyList {
    pub data: Vec<JourneyRecord>,
}

/// The tenant's journeys, by name.
#[utoipa::path(get, path = "/v1/journeys", tag = "journeys", responses((status = 200, description = "`data`: the journeys")))]
pub async fn list_journeys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<JourneyList>> {
    caller.require(Scope::Read)?;
    let data = state.store.list_journeys(&caller.tenant_id).await?;
    Ok(axum::Json(JourneyList { data }))
}

#[utoipa::path(get, path = "/v1/journeys/{name}", tag = "journeys",
    responses((status = 200, description = "`name`, `revision`, `definition`, `created_at`, `updated_at`"), (status = 404, body = crate::problem::Problem)))]
pub async fn get_journey(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<axum::Json<JourneyRecord>> {
    caller.require(Scope::Read)?;
    state
        .store
        .journey(&caller.tenant_id, &name)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found(format!("journey `{name}`")))
}

/// Creates or replaces a journey (see `docs/journeys.md`). A journey with mistakes is
/// refused (422) with each one at its JSON pointer in `errors` (`/steps/remind/next`), and
/// the journey in force stays. Runs under way go on with the new document.
#[utoipa::path(put, path = "/v1/journeys/{name}", tag = "journeys",
    request_body(content = Object, description = "The journey: `trigger`, `reentry`?, `exit_on`?, `start`, `steps`"),
    responses((status = 200, description = "The stored journey"), (status = 422, body = crate::problem::Problem)))]
pub async fn put_journey(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(document): ApiJson<Value>,
) -> ApiResult<axum::Json<JourneyRecord>> {
    caller.require(Scope::Admin)?;
    let record = relais_engine::journeys::put_journey(
        &*state.store,
        &caller.tenant_id,
        &name,
        &document,
        state.clock.now(),
    )
    .await?;
    Ok(axum::Json(record))
}

/// Deletes a journey; its runs under way are canceled.
#[utoipa::path(delete, path = "/v1/journeys/{name}", tag = "journeys",
    responses((status = 204), (status = 404, body = crate::problem::Problem)))]
pub async fn delete_journey(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    if state
        .store
        .delete_journey(&caller.tenant_id, &name, state.clock.now())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("journey `{name}`")))
    }
}

#[derive(Debug, serde::Serialize)]
pub struct RunList {
    pub data: Vec<JourneyRun>,
}

/// The journey's latest 1,000 runs: each contact's step, state and next due time.
#[utoipa::path(get, path = "/v1/journeys/{name}/runs", tag = "journeys",
    responses((status = 200, description = "`data`: the runs, latest started first")))]
pub async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<axum::Json<RunList>> {
    caller.require(Scope::Read)?;
    let data = state
        .store
        .journey_runs(&caller.tenant_id, &name, 1000)
        .await?;
    Ok(axum::Json(RunList { data }))
}

/// The journey's runs by step and state, and the funnel of each `send` step's messages by
/// channel (goal events credited as conversions), as JSON or, with `Accept: text/csv` or
/// `?format=csv`, as CSV.
#[utoipa::path(get, path = "/v1/journeys/{name}/report", tag = "journeys",
    responses((status = 200, description = "The report"), (status = 404, body = crate::problem::Problem)))]
pub async fn journey_report(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<crate::routes::campaigns::ReportQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.require(Scope::Read)?;
    let csv = query.wants_csv(&headers)?;
    let report =
        relais_engine::journeys::journey_analytics(&*state.store, &caller.tenant_id, &name)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("journey `{name}`")))?;
    Ok(crate::routes::campaigns::report_response(
        csv,
        &report,
        relais_engine::journeys::JourneyAnalytics::to_csv,
    ))
}

/// A geofence: a circle around a point.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeofenceBody {
    /// Latitude of the centre, in degrees (WGS 84).
    pub lat: f64,
    /// Longitude of the centre, in degrees.
    pub lon: f64,
    /// Radius in metres (at most 100 km).
    pub radius_m: f64,
}

#[derive(Debug, serde::Serialize)]
pub struct GeofenceList {
    pub data: Vec<GeofenceRecord>,
}

#[utoipa::path(get, path = "/v1/geofences", tag = "journeys", responses((status = 200, description = "`data`: the geofences")))]
pub async fn list_geofences(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<GeofenceList>> {
    caller.require(Scope::Read)?;
    let data = state.store.geofences(&caller.tenant_id).await?;
    Ok(axum::Json(GeofenceList { data }))
}

/// Creates or replaces a geofence: `entered_area` events inside it start the journeys
/// whose trigger names it.
#[utoipa::path(put, path = "/v1/geofences/{name}", tag = "journeys", request_body = GeofenceBody,
    responses((status = 200, description = "The stored geofence"), (status = 422, body = crate::problem::Problem)))]
pub async fn put_geofence(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<GeofenceBody>,
) -> ApiResult<axum::Json<GeofenceRecord>> {
    caller.require(Scope::Admin)?;
    let record = relais_engine::journeys::put_geofence(
        &*state.store,
        &caller.tenant_id,
        &name,
        body.lat,
        body.lon,
        body.radius_m,
        state.clock.now(),
    )
    .await?;
    Ok(axum::Json(record))
}

#[utoipa::path(delete, path = "/v1/geofences/{name}", tag = "journeys",
    responses((status = 204), (status = 404, body = crate::problem::Problem)))]
pub async fn delete_geofence(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    if state
        .store
        .delete_geofence(&caller.tenant_id, &name)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("geofence `{name}`")))
    }
}
