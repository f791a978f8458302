//! `/v1/settings`: what an operator changes while Relais runs — quiet hours, sender rates,
//! the frequency cap, the price table, the retention policy, the content checks, the sender
//! rules. `GET` shows every section; `PUT` replaces the whole
//! document (a section left out goes back to its default); `PATCH` replaces only the
//! sections it names. A document that could not work is refused (422, with a pointer to
//! the field) and the settings in force stay.

use crate::AppState;
use crate::extract::{ApiJson, Caller};
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use relais_core::settings::{SettingsPatch, TenantSettings};
use relais_core::tenant::Scope;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/settings",
        get(get_settings).put(put_settings).patch(patch_settings),
    )
}

/// The tenant's settings, each section at its default until set.
#[utoipa::path(get, path = "/v1/settings", tag = "settings",
    responses((status = 200, body = SettingsDoc)))]
pub async fn get_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<TenantSettings>> {
    caller.require(Scope::Read)?;
    Ok(axum::Json(
        relais_engine::settings::settings_of(&*state.store, &caller.tenant_id).await?,
    ))
}

/// Replaces every section; sections left out go back to their defaults.
#[utoipa::path(put, path = "/v1/settings", tag = "settings", request_body = SettingsDoc,
    responses((status = 200, body = SettingsDoc), (status = 422, body = crate::problem::Problem)))]
pub async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(settings): ApiJson<TenantSettings>,
) -> ApiResult<axum::Json<TenantSettings>> {
    caller.require(Scope::Admin)?;
    let now = state.clock.now();
    settings
        .check(now)
        .map_err(|e| ApiError::invalid_field(&e.pointer, e.detail))?;
    relais_engine::settings::replace(&*state.store, &caller.tenant_id, &settings, now).await?;
    Ok(axum::Json(
        relais_engine::settings::settings_of(&*state.store, &caller.tenant_id).await?,
    ))
}

/// Replaces the sections the body names (`"frequency_cap": null` removes the cap) and
/// answers every section as it now is.
#[utoipa::path(patch, path = "/v1/settings", tag = "settings", request_body = SettingsDoc,
    responses((status = 200, body = SettingsDoc), (status = 422, body = crate::problem::Problem)))]
pub async fn patch_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(patch): ApiJson<SettingsPatch>,
) -> ApiResult<axum::Json<TenantSettings>> {
    caller.require(Scope::Admin)?;
    let now = state.clock.now();
    let current = relais_engine::settings::settings_of(&*state.store, &caller.tenant_id).await?;
    current
        .patched(patch.clone())
        .check(now)
        .map_err(|e| ApiError::invalid_field(&e.pointer, e.detail))?;
    Ok(axum::Json(
        relais_engine::settings::patch(&*state.store, &caller.tenant_id, patch, now).await?,
    ))
}

// The shapes below only describe the document in the OpenAPI description; the types that
// read it are in `relais_core::settings`, with their checks.

/// A tenant's settings.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SettingsDoc {
    quiet_hours: QuietHoursDoc,
    sender_rates: SenderRatesDoc,
    /// `null`: no cap.
    frequency_cap: Option<FrequencyCapDoc>,
    prices: Vec<PriceRowDoc>,
    retention: RetentionDoc,
    content_checks: ContentChecksDoc,
    senders: SenderRulesDoc,
}

/// After how many days content is purged by the retention sweeper; `null` (the default)
/// keeps it forever. See docs/privacy.md.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RetentionDoc {
    /// Bodies of outbound messages in a final status.
    #[schema(example = 90)]
    outbound_bodies_days: Option<u32>,
    /// Text, provider payload and NLU annotations of inbound messages.
    #[schema(example = 90)]
    inbound_content_days: Option<u32>,
    /// Uploaded media.
    #[schema(example = 30)]
    attachments_days: Option<u32>,
}

/// The anti-phishing checks of outbound messages (`docs/trust.md`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ContentChecksDoc {
    /// Default `true`.
    enabled: bool,
    /// The score at which a message is held or refused; default 50.
    #[schema(example = 50)]
    threshold: u32,
    /// `hold` (default) or `refuse`.
    #[schema(example = "hold")]
    action: String,
    /// Domains (and their subdomains) the tenant links to.
    #[schema(example = json!(["mabanque.fr"]))]
    allowed_domains: Vec<String>,
    /// Brand domains (allowed, guarded against look-alikes) or names (guarded).
    #[schema(example = json!(["mabanque.fr", "Ma Banque"]))]
    brands: Vec<String>,
    /// Weights replacing the defaults, by reason code.
    #[schema(value_type = Object, example = json!({"shortener": 50}))]
    weights: std::collections::BTreeMap<String, u32>,
}

/// Rules on a message's `from` (`docs/trust.md`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SenderRulesDoc {
    /// `true`: a message's `from` must be one of the tenant's verified senders. Default
    /// `false`.
    require_verified: bool,
}

/// The tenant's windows (on the recipient's wall clock) and the countries' built-in rules.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct QuietHoursDoc {
    /// `{"start": "21:00", "end": "08:00", "days": ["sat", "sun"], "purposes":
    /// ["marketing"]}`; `days` and `purposes` empty or left out mean all.
    windows: Vec<QuietWindowDoc>,
    /// Each built-in country rule (FR, DE, ES, IT, PL, NL, BE, GB, US): `true` when it
    /// applies. Left out: on.
    #[schema(value_type = Object, example = json!({"FR": true, "US": false}))]
    countries: std::collections::BTreeMap<String, bool>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct QuietWindowDoc {
    #[schema(example = "21:00")]
    start: String,
    #[schema(example = "08:00")]
    end: String,
    #[schema(example = json!(["sat", "sun"]))]
    days: Option<Vec<String>>,
    #[schema(example = json!(["marketing"]))]
    purposes: Option<Vec<String>>,
}

/// Messages per second per sender (`from`); the server's `RELAIS_SENDER_RATE(S)` apply
/// to senders these leave out.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SenderRatesDoc {
    /// For every sender not named.
    #[schema(example = 10.0)]
    default: Option<f64>,
    #[schema(value_type = Object, example = json!({"MyShop": 5}))]
    senders: std::collections::BTreeMap<String, f64>,
}

/// At most `max` messages of `purpose` to one contact per moving `per` (`30m`, `24h`,
/// `7d`, `2w`), across all campaigns.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct FrequencyCapDoc {
    #[schema(example = 2)]
    max: u32,
    #[schema(example = "7d")]
    per: String,
    #[schema(example = "marketing")]
    purpose: Option<String>,
}

/// What a message (or an SMS segment) costs on a channel kind, optionally for one country
/// calling code; the longest matching prefix wins.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct PriceRowDoc {
    #[schema(example = "sms")]
    channel: String,
    #[schema(example = "+33")]
    country_prefix: Option<String>,
    #[schema(example = 0.045)]
    price: f64,
    /// `message` (default) or `segment`.
    #[schema(example = "segment")]
    per: Option<String>,
    #[schema(example = "EUR")]
    currency: String,
}
