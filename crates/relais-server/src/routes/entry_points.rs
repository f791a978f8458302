//! `/v1/entry-points`: click-to-chat links (WhatsApp `wa.me`, `sms:`, a web chat page) with
//! a referral code in their prefilled text, their QR codes, and the conversations each one
//! brought (see `docs/links.md`).

use crate::AppState;
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use relais_core::campaign::CampaignLabel;
use relais_core::tenant::Scope;
use relais_engine::entry_points::{self, EntryPointsError, NewEntryPoint};
use relais_store::{Attribution, EntryPoint};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/entry-points",
            get(list_entry_points).post(create_entry_point),
        )
        .route(
            "/entry-points/{id}",
            get(get_entry_point).delete(delete_entry_point),
        )
        .route("/entry-points/{id}/qr.svg", get(qr_code))
        .route("/entry-points/{id}/conversations", get(conversations))
}

/// The body of `POST /v1/entry-points`.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct NewEntryPointDoc {
    pub name: String,
    /// `whatsapp`, `sms` or `webchat`.
    pub channel: String,
    /// The number people write to (E.164), for `whatsapp` and `sms`.
    pub number: Option<String>,
    /// The page holding the chat widget, for `webchat`.
    pub page: Option<String>,
    /// The words typed in for the person; the referral tag `[ref:CODE]` follows them.
    pub text: Option<String>,
    /// The referral code: 1 to 32 letters, digits, `-` or `_` (drawn at random when absent).
    #[serde(rename = "ref")]
    pub referral: Option<String>,
    /// The flow a conversation opened through this entry point starts.
    pub flow: Option<String>,
    /// The campaign label its conversations are attributed to.
    pub campaign: Option<String>,
}

/// An entry point as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryPointView {
    pub id: String,
    pub name: String,
    pub channel: String,
    /// The number (E.164) or the page.
    pub destination: String,
    #[serde(rename = "ref")]
    pub referral: String,
    /// What the person's first message says before they type anything.
    pub prefilled_text: String,
    /// The link to publish (an ad, a button, a poster's QR code).
    pub link: String,
    /// `GET` it for the link's QR code (SVG).
    pub qr_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    #[schema(value_type = String)]
    pub created_at: jiff::Timestamp,
}

fn view(entry: EntryPoint) -> EntryPointView {
    EntryPointView {
        link: entry_points::link(&entry),
        prefilled_text: entry_points::prefilled(&entry),
        qr_code: format!("/v1/entry-points/{}/qr.svg", entry.id),
        id: entry.id,
        name: entry.name,
        channel: entry.channel.as_str().to_owned(),
        destination: entry.destination.as_str().to_owned(),
        referral: entry.referral.as_str().to_owned(),
        flow: entry.flow,
        campaign: entry.campaign.map(CampaignLabel::into_string),
        created_at: entry.created_at,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntryPointList {
    pub data: Vec<EntryPointView>,
}

fn refusal(e: EntryPointsError) -> ApiError {
    match e {
        EntryPointsError::Invalid { pointer, detail } => ApiError::invalid_field(&pointer, detail),
        EntryPointsError::ReferralTaken(detail) => ApiError::conflict(detail),
        EntryPointsError::Store(e) => e.into(),
    }
}

/// Creates an entry point; 409 when its referral code is taken, 422 for a bad field.
#[utoipa::path(post, path = "/v1/entry-points", tag = "entry-points", request_body = NewEntryPointDoc,
    responses((status = 201, body = EntryPointView), (status = 409, body = crate::problem::Problem),
        (status = 422, body = crate::problem::Problem)))]
pub async fn create_entry_point(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, axum::Json<EntryPointView>)> {
    caller.require(Scope::Admin)?;
    let request: NewEntryPoint =
        serde_json::from_value(body).map_err(|e| ApiError::invalid_field("", e.to_string()))?;
    let entry = entry_points::create(&*state.store, &caller.tenant_id, request, state.clock.now())
        .await
        .map_err(refusal)?;
    Ok((StatusCode::CREATED, axum::Json(view(entry))))
}

/// The tenant's entry points, oldest first.
#[utoipa::path(get, path = "/v1/entry-points", tag = "entry-points",
    responses((status = 200, body = EntryPointList)))]
pub async fn list_entry_points(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<EntryPointList>> {
    caller.require(Scope::Read)?;
    let entries = state.store.entry_points(&caller.tenant_id).await?;
    Ok(axum::Json(EntryPointList {
        data: entries.into_iter().map(view).collect(),
    }))
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> ApiResult<EntryPoint> {
    state
        .store
        .entry_point(&caller.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("entry point {id}")))
}

#[utoipa::path(get, path = "/v1/entry-points/{id}", tag = "entry-points",
    responses((status = 200, body = EntryPointView), (status = 404, body = crate::problem::Problem)))]
pub async fn get_entry_point(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<EntryPointView>> {
    caller.require(Scope::Read)?;
    Ok(axum::Json(view(find(&state, &caller, &id).await?)))
}

/// Deletes an entry point: its referral code no longer starts its flow (conversations it
/// brought keep their attribution).
#[utoipa::path(delete, path = "/v1/entry-points/{id}", tag = "entry-points",
    responses((status = 204), (status = 404, body = crate::problem::Problem)))]
pub async fn delete_entry_point(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    if state
        .store
        .delete_entry_point(&caller.tenant_id, &id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("entry point {id}")))
    }
}

/// The QR code of the entry point's link, as SVG.
#[utoipa::path(get, path = "/v1/entry-points/{id}/qr.svg", tag = "entry-points",
    responses((status = 200, description = "An SVG image", content_type = "image/svg+xml"),
        (status = 404, body = crate::problem::Problem)))]
pub async fn qr_code(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    caller.require(Scope::Read)?;
    let entry = find(&state, &caller, &id).await?;
    let svg = qr_svg(&entry_points::link(&entry))?;
    let mut response = svg.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    Ok(response)
}

/// `data` as a QR code drawn in SVG. Error correction level M (15 % of the code may be
/// lost): a printed poster gets scratched, and a link of ~100 characters still fits in a
/// code a phone reads from a metre away.
fn qr_svg(data: &str) -> ApiResult<String> {
    use qrcode::render::svg;
    let code = qrcode::QrCode::with_error_correction_level(data.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                format!("the link cannot be drawn as a QR code: {e}"),
            )
        })?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

/// A conversation an entry point brought.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttributionView {
    pub conversation_id: String,
    pub contact_id: String,
    /// The inbound message that carried the referral code.
    pub message_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    #[schema(value_type = String)]
    pub at: jiff::Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttributionList {
    pub data: Vec<AttributionView>,
}

/// The conversations the entry point brought, oldest first.
#[utoipa::path(get, path = "/v1/entry-points/{id}/conversations", tag = "entry-points",
    responses((status = 200, body = AttributionList), (status = 404, body = crate::problem::Problem)))]
pub async fn conversations(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<AttributionList>> {
    caller.require(Scope::Read)?;
    let entry = find(&state, &caller, &id).await?;
    let attributions = state
        .store
        .attributions(&caller.tenant_id, &entry.id)
        .await?;
    Ok(axum::Json(AttributionList {
        data: attributions
            .into_iter()
            .map(|a: Attribution| AttributionView {
                conversation_id: a.conversation_id,
                contact_id: a.contact_id,
                message_id: a.inbound_id,
                campaign: a.campaign.map(CampaignLabel::into_string),
                at: a.at,
            })
            .collect(),
    }))
}
