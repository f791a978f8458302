//! `POST /v1/events`: a customer event (`cart_abandoned`, `purchase`, `entered_area`) for a
//! contact, recorded with the journeys it enters and ends; `GET /v1/contacts/{id}/events`
//! lists a contact's events. (`GET /v1/events/stream`, the live WebSocket, is
//! `routes/events.rs`.)

use crate::AppState;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use relais_core::tenant::Scope;
use relais_engine::journeys::{EventAnswer, EventError, EventRequest, record_event};
use relais_store::ContactEvent;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/events", post(post_event))
        .route("/contacts/{id}/events", get(list_contact_events))
}

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        match e {
            EventError::Invalid { pointer, detail } => ApiError::invalid_field(&pointer, detail),
            EventError::UnknownContact(detail) => {
                ApiError::new(StatusCode::NOT_FOUND, "not-found", detail)
            }
            EventError::Store(e) => e.into(),
        }
    }
}

/// Records a customer event. `contact` is an E.164 number, `{"contact_id"}` or
/// `{"channel", "address"}`; an unknown one is refused (404) unless `create_contact` (or
/// the tenant's `events_create_contacts` setting) asks to create it. With an `id`, the
/// same id again answers 200 with the first event's result and applies nothing; a new
/// event answers 201. An `entered_area` event needs `properties.lat` and `.lon`.
#[utoipa::path(post, path = "/v1/events", tag = "journeys",
    request_body(content = Object, description = "{\"contact\", \"name\", \"properties\"?, \"id\"?, \"value\"?, \"create_contact\"?}"),
    responses((status = 201, description = "Recorded: `id`, `contact_id`, `name`, `at`, `created_contact`, `entered`, `exited`, `geofences`"),
        (status = 200, description = "This `id` was recorded before: its first answer"),
        (status = 422, body = crate::problem::Problem), (status = 404, body = crate::problem::Problem)))]
pub async fn post_event(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<EventRequest>,
) -> ApiResult<(StatusCode, axum::Json<EventAnswer>)> {
    caller.require(Scope::Send)?;
    let answer = record_event(
        &*state.store,
        state.address_rules(),
        &caller.tenant_id,
        request,
        state.clock.now(),
    )
    .await?;
    let status = if answer.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(answer)))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    /// Only events of this name.
    pub name: Option<String>,
    /// Only events at or after this instant (RFC 3339).
    pub since: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<u32>,
}

#[derive(Debug, serde::Serialize)]
pub struct EventList {
    pub data: Vec<ContactEvent>,
}

/// A contact's customer events, newest first.
#[utoipa::path(get, path = "/v1/contacts/{id}/events", tag = "journeys", params(EventsQuery),
    responses((status = 200, description = "`data`: the events"), (status = 400, body = crate::problem::Problem)))]
pub async fn list_contact_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> ApiResult<axum::Json<EventList>> {
    caller.require(Scope::Read)?;
    let since = match &query.since {
        Some(raw) => raw
            .parse::<jiff::Timestamp>()
            .map_err(|e| ApiError::bad_parameter("since", e))?,
        None => jiff::Timestamp::UNIX_EPOCH,
    };
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let data = state
        .store
        .contact_events(&caller.tenant_id, &id, query.name.as_deref(), since, limit)
        .await?;
    Ok(axum::Json(EventList { data }))
}
