//! `/v1/campaigns`: create a campaign (a draft), start, pause, resume or cancel it, follow
//! its progress, and read its report (JSON, or CSV with `Accept: text/csv` or
//! `?format=csv`).

use crate::AppState;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use relais_core::tenant::Scope;
use relais_engine::campaigns::{CampaignError, CampaignView};
use relais_store::CampaignRecord;
use serde::Deserialize;
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/campaigns", get(list_campaigns).post(create_campaign))
        .route("/campaigns/{id}", get(get_campaign))
        .route("/campaigns/{id}/report", get(campaign_report))
        .route("/campaigns/{id}/funnel.svg", get(campaign_funnel_chart))
        .route("/campaigns/{id}/start", post(start_campaign))
        .route("/campaigns/{id}/pause", post(pause_campaign))
        .route("/campaigns/{id}/resume", post(resume_campaign))
        .route("/campaigns/{id}/cancel", post(cancel_campaign))
}

impl From<CampaignError> for ApiError {
    fn from(e: CampaignError) -> Self {
        match e {
            CampaignError::Invalid { pointer, detail } => ApiError::invalid_field(&pointer, detail),
            CampaignError::NotFound(id) => ApiError::not_found(format!("campaign `{id}`")),
            CampaignError::State(detail) => ApiError::conflict(detail),
            CampaignError::CannotStart(detail) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "cannot-start",
                format!("the campaign cannot start: {detail}"),
            ),
            CampaignError::NameTaken(name) => {
                ApiError::conflict(format!("a campaign named `{name}` exists"))
            }
            CampaignError::Store(e) => e.into(),
        }
    }
}

#[derive(Debug, serde::Serialize)]
pub struct CampaignList {
    pub data: Vec<CampaignRecord>,
}

/// Creates a draft campaign (201); nothing is sent until it starts.
pub async fn create_campaign(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, axum::Json<CampaignView>)> {
    caller.require(Scope::Admin)?;
    let view = state.campaigns.create(&caller.tenant_id, &body).await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

pub async fn list_campaigns(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<CampaignList>> {
    caller.require(Scope::Read)?;
    let data = state.campaigns.list(&caller.tenant_id).await?;
    Ok(axum::Json(CampaignList { data }))
}

/// A campaign with its progress (recipients done, to do, skipped by reason).
pub async fn get_campaign(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<CampaignView>> {
    caller.require(Scope::Read)?;
    Ok(axum::Json(
        state.campaigns.get(&caller.tenant_id, &id).await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    /// `json` (the default) or `csv`.
    pub format: Option<String>,
}

impl ReportQuery {
    /// Whether the report is asked for as CSV: `?format=csv`, else `Accept: text/csv`.
    pub fn wants_csv(&self, headers: &HeaderMap) -> ApiResult<bool> {
        match self.format.as_deref() {
            Some("csv") => Ok(true),
            Some("json") => Ok(false),
            Some(other) => Err(ApiError::bad_parameter(
                "format",
                format!("`{other}` is not a format: json or csv"),
            )),
            None => Ok(headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("text/csv"))),
        }
    }
}

/// The campaign's funnel per variant and channel, and its skips by reason.
pub async fn campaign_report(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ReportQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.require(Scope::Read)?;
    let csv = query.wants_csv(&headers)?;
    let report = state.campaigns.report(&caller.tenant_id, &id).await?;
    Ok(report_response(
        csv,
        &report,
        relais_engine::campaigns::report::CampaignReport::to_csv,
    ))
}

/// A report as CSV (by `to_csv`) or as JSON.
pub fn report_response<R: serde::Serialize>(
    csv: bool,
    report: &R,
    to_csv: fn(&R) -> String,
) -> Response {
    if csv {
        return (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            to_csv(report),
        )
            .into_response();
    }
    axum::Json(report).into_response()
}

/// Starts a draft: its recipients are fixed now and sending begins. 422 says why a
/// campaign cannot start (an empty segment, nobody reachable on its channels, its end
/// passed); 409 when it is not a draft.
pub async fn start_campaign(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<CampaignView>> {
    caller.require(Scope::Admin)?;
    Ok(axum::Json(
        state.campaigns.start(&caller.tenant_id, &id).await?,
    ))
}

pub async fn pause_campaign(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<CampaignView>> {
    caller.require(Scope::Admin)?;
    Ok(axum::Json(
        state.campaigns.pause(&caller.tenant_id, &id).await?,
    ))
}

pub async fn resume_campaign(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<CampaignView>> {
    caller.require(Scope::Admin)?;
    Ok(axum::Json(
        state.campaigns.resume(&caller.tenant_id, &id).await?,
    ))
}

pub async fn cancel_campaign(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<CampaignView>> {
    caller.require(Scope::Admin)?;
    Ok(axum::Json(
        state.campaigns.cancel(&caller.tenant_id, &id).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartQuery {
    /// The chart's words: `en` (the default) or `fr`.
    pub lang: Option<String>,
}

/// The campaign's funnel per variant as an SVG chart (the dashboard shows it).
pub async fn campaign_funnel_chart(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ChartQuery>,
) -> ApiResult<Response> {
    caller.require(Scope::Read)?;
    let report = state.campaigns.report(&caller.tenant_id, &id).await?;
    let lang = crate::charts::Lang::parse(query.lang.as_deref());
    Ok(super::analytics::svg(crate::charts::campaign_funnel(
        &report, lang,
    )))
}
