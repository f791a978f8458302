//! The dashboard's figures: `GET /v1/analytics` as JSON, and its charts as SVG
//! (`/v1/analytics/volume.svg`, `/v1/analytics/funnel.svg`), for a period ending now.

use crate::AppState;
use crate::charts::{self, Lang};
use crate::extract::{ApiQuery, Caller};
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use relais_core::tenant::Scope;
use relais_engine::analytics::{Dashboard, Span, tenant_dashboard};
use serde::Deserialize;
use utoipa::IntoParams;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/analytics", get(figures))
        .route("/analytics/volume.svg", get(volume_chart))
        .route("/analytics/funnel.svg", get(funnel_chart))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsQuery {
    /// `24h` (the default: 24 hourly buckets), `7d` (28 buckets of 6 hours) or `30d`
    /// (30 daily buckets), ending with the bucket that holds now (UTC).
    pub period: Option<String>,
    /// The words of a chart: `en` (the default) or `fr`.
    pub lang: Option<String>,
}

async fn dashboard(state: &AppState, caller: &Caller, q: &AnalyticsQuery) -> ApiResult<Dashboard> {
    caller.require(Scope::Read)?;
    let span = match q.period.as_deref() {
        None => Span::Day,
        Some(raw) => Span::parse(raw)
            .ok_or_else(|| ApiError::invalid_field("/period", "must be 24h, 7d or 30d"))?,
    };
    Ok(tenant_dashboard(&*state.store, &caller.tenant_id, span, state.clock.now()).await?)
}

/// The period's figures: volume per channel and bucket, the delivery funnel per channel
/// and in all, read and response rates, the help desk's first responses and SLA breaches,
/// and the campaigns' progress.
#[utoipa::path(get, path = "/v1/analytics", tag = "analytics", params(AnalyticsQuery),
    responses((status = 200, description = "The dashboard's figures (see docs/dashboard.md)", content_type = "application/json"),
        (status = 422, body = crate::problem::Problem)))]
pub async fn figures(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AnalyticsQuery>,
) -> ApiResult<axum::Json<Dashboard>> {
    Ok(axum::Json(dashboard(&state, &caller, &q).await?))
}

/// An SVG chart as an answer, with a policy that lets it run nothing.
pub(crate) fn svg(body: String) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    response
}

/// Messages sent per bucket, stacked by channel, with inbound messages as a line.
#[utoipa::path(get, path = "/v1/analytics/volume.svg", tag = "analytics", params(AnalyticsQuery),
    responses((status = 200, description = "An SVG chart", content_type = "image/svg+xml"),
        (status = 422, body = crate::problem::Problem)))]
pub async fn volume_chart(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AnalyticsQuery>,
) -> ApiResult<Response> {
    let d = dashboard(&state, &caller, &q).await?;
    Ok(svg(charts::volume(&d, Lang::parse(q.lang.as_deref()))))
}

/// The delivery funnel per channel and in all.
#[utoipa::path(get, path = "/v1/analytics/funnel.svg", tag = "analytics", params(AnalyticsQuery),
    responses((status = 200, description = "An SVG chart", content_type = "image/svg+xml"),
        (status = 422, body = crate::problem::Problem)))]
pub async fn funnel_chart(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AnalyticsQuery>,
) -> ApiResult<Response> {
    let d = dashboard(&state, &caller, &q).await?;
    Ok(svg(charts::funnel(&d, Lang::parse(q.lang.as_deref()))))
}
