//! The Twilio-compatible Messages API under `/2010-04-01/Accounts/{AccountSid}/`
//! (docs/twilio.md): HTTP Basic auth with the tenant's account SID and auth token, form
//! bodies in, Twilio's JSON out, Twilio's error shape and codes. Sending goes through the
//! engine's one accept path; this file only translates.
//!
//! Also `/v1/twilio/account`, where a tenant's admin issues and reads its credentials.

use crate::AppState;
use crate::extract::{ApiJson, Caller};
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use relais_core::status::MessageStatus;
use relais_core::tenant::Scope;
use relais_core::twilio::{AccountSid, message_sid, rfc2822, status_of};
use relais_engine::twilio::accounts::{self, Authenticated};
use relais_engine::twilio::create::{CreateParams, create};
use relais_engine::twilio::{API_VERSION, TwilioError, manage};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

/// The Twilio API's routes (outside `/v1`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Messages.json",
            get(list_messages).post(create_message),
        )
        .route(
            "/2010-04-01/Accounts/{account}/Messages/{file}",
            get(fetch_message)
                .post(update_message)
                .delete(delete_message),
        )
}

/// `/v1/twilio/account`.
pub fn credentials_router() -> Router<AppState> {
    Router::new()
        .route("/twilio/account", get(show_account).post(issue_account))
        .route("/twilio/account/inbound", axum::routing::put(set_inbound))
        .route("/twilio/services", get(list_services).post(create_service))
}

/// A Twilio error answer: `{"code", "message", "more_info", "status"}`.
pub struct TwilioProblem(TwilioError);

impl From<TwilioError> for TwilioProblem {
    fn from(e: TwilioError) -> Self {
        TwilioProblem(e)
    }
}

impl IntoResponse for TwilioProblem {
    fn into_response(self) -> Response {
        let code = self.0.code();
        let status = StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = (
            status,
            axum::Json(json!({
                "code": code,
                "message": self.0.to_string(),
                "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
                "status": status.as_u16(),
            })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Twilio API\""),
            );
        }
        response
    }
}

type TwilioResult<T> = Result<T, TwilioProblem>;

/// The tenant that the Basic credentials authenticate, if they are those of the account
/// in the path.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    account: &str,
) -> TwilioResult<Authenticated> {
    let (sid, token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(accounts::basic_credentials)
        .ok_or(TwilioError::Unauthenticated)?;
    let found = state
        .twilio
        .authenticate(&*state.store, &sid, &token)
        .await?;
    if found.account_sid.as_str() != account {
        return Err(TwilioError::Unauthenticated.into());
    }
    Ok(found)
}

fn account_base(account: &AccountSid) -> String {
    format!("/{API_VERSION}/Accounts/{account}")
}

/// What a message's JSON is written from.
struct Facts {
    id: String,
    /// The Messaging Service it was sent through (known when it was just sent).
    service: Option<String>,
    status: MessageStatus,
    to: String,
    from: Option<String>,
    body: String,
    num_media: u32,
    segments: Option<i64>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl Facts {
    fn of(m: relais_store::Message) -> Self {
        let media = m.content.get("media");
        let body = match media {
            Some(media) => media.get("caption"),
            None => m.content.get("text"),
        }
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
        Facts {
            service: None,
            num_media: u32::from(media.is_some()),
            id: m.id,
            status: m.status,
            to: m.to_address,
            from: m.sender,
            body,
            segments: m.segments,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// A message as Twilio's JSON writes it.
fn message_json(account: &AccountSid, f: &Facts) -> Value {
    let sid = message_sid(&f.id).unwrap_or_else(|| f.id.clone());
    let base = account_base(account);
    let uri = format!("{base}/Messages/{sid}.json");
    let (status, error_code) = status_of(f.status);
    let sent = matches!(
        f.status,
        MessageStatus::Sent
            | MessageStatus::Delivered
            | MessageStatus::Read
            | MessageStatus::Undelivered
    );
    let segments = f
        .segments
        .unwrap_or_else(|| relais_core::sms::segment_info(&f.body).segments as i64);
    json!({
        "account_sid": account.as_str(),
        "api_version": API_VERSION,
        "body": f.body,
        "date_created": rfc2822(f.created_at),
        "date_sent": if sent { Some(rfc2822(f.updated_at)) } else { None },
        "date_updated": rfc2822(f.updated_at),
        "direction": "outbound-api",
        "error_code": error_code,
        "error_message": error_code.map(|_| status),
        "from": f.from,
        "messaging_service_sid": f.service,
        "num_media": f.num_media.to_string(),
        "num_segments": segments.to_string(),
        "price": null,
        "price_unit": "USD",
        "sid": sid,
        "status": status,
        "subresource_uris": {
            "media": format!("{base}/Messages/{sid}/Media.json"),
            "feedback": format!("{base}/Messages/{sid}/Feedback.json"),
        },
        "to": f.to,
        "uri": uri,
    })
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// `POST Messages.json`: send a message.
pub async fn create_message(
    State(state): State<AppState>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> TwilioResult<Response> {
    let caller = authenticate(&state, &headers, &account).await?;
    let pairs = form(&body);
    let params = CreateParams::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let created = create(
        &state.acceptor,
        &*state.store,
        state.settings.webhook_destinations,
        &caller.tenant_id,
        &params,
        state.clock.now(),
    )
    .await?;
    let facts = Facts {
        id: created.message_id,
        service: created.messaging_service_sid,
        status: created.status,
        to: created.to,
        from: created.from,
        body: created.body,
        num_media: created.num_media,
        segments: None,
        created_at: created.created_at,
        updated_at: created.created_at,
    };
    Ok((
        StatusCode::CREATED,
        axum::Json(message_json(&caller.account_sid, &facts)),
    )
        .into_response())
}

/// The message a `Messages/{file}` path names (`SM….json`).
fn named<'a>(
    caller: &'a Authenticated,
    file: &'a str,
    uri: &'a axum::http::Uri,
) -> manage::Named<'a> {
    manage::Named {
        tenant: &caller.tenant_id,
        sid: file.strip_suffix(".json").unwrap_or(file),
        uri: uri.path(),
    }
}

fn bad(name: &str, detail: impl Into<String>) -> TwilioError {
    TwilioError::InvalidParameter {
        name: name.into(),
        detail: detail.into(),
    }
}

/// `GET Messages/{Sid}.json`.
pub async fn fetch_message(
    State(state): State<AppState>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> TwilioResult<axum::Json<Value>> {
    let caller = authenticate(&state, &headers, &account).await?;
    let message = manage::fetch(&*state.store, named(&caller, &file, &uri)).await?;
    Ok(axum::Json(message_json(
        &caller.account_sid,
        &Facts::of(message),
    )))
}

/// `POST Messages/{Sid}.json`: `Status=canceled` cancels a scheduled message, `Body=`
/// (empty) redacts a finished one.
pub async fn update_message(
    State(state): State<AppState>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> TwilioResult<axum::Json<Value>> {
    let caller = authenticate(&state, &headers, &account).await?;
    let pairs = form(&body);
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (message, now) = (named(&caller, &file, &uri), state.clock.now());
    let updated = match (get("Status"), get("Body")) {
        (Some("canceled"), None) => manage::cancel(&*state.store, message, now).await?,
        (None, Some("")) => manage::redact(&*state.store, message, now).await?,
        (Some(other), None) => {
            let detail = format!("only `canceled` can be set, not `{other}`");
            return Err(bad("Status", detail).into());
        }
        (None, Some(_)) => {
            return Err(bad("Body", "only an empty Body (a redaction) can be set").into());
        }
        _ => return Err(bad("Status", "give either Status=canceled or an empty Body").into()),
    };
    Ok(axum::Json(message_json(
        &caller.account_sid,
        &Facts::of(updated),
    )))
}

/// `DELETE Messages/{Sid}.json`: 204.
pub async fn delete_message(
    State(state): State<AppState>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> TwilioResult<StatusCode> {
    let caller = authenticate(&state, &headers, &account).await?;
    manage::delete(&*state.store, named(&caller, &file, &uri)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Largest page, as Twilio's.
const MAX_PAGE_SIZE: u32 = 1000;

/// What the page tokens Relais gives start with.
const TOKEN_PREFIX: &str = "PA";

/// A day (`2026-12-05`) or an instant.
fn instant(name: &str, value: &str) -> Result<(Timestamp, bool), TwilioError> {
    if let Ok(day) = value.parse::<jiff::civil::Date>() {
        let at = day
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|e| bad(name, e.to_string()))?;
        return Ok((at, true));
    }
    value
        .parse::<Timestamp>()
        .map(|at| (at, false))
        .map_err(|_| {
            bad(
                name,
                format!("`{value}` is not a date (YYYY-MM-DD) or an ISO 8601 instant"),
            )
        })
}

fn next_day(at: Timestamp) -> Timestamp {
    at.checked_add(jiff::SignedDuration::from_hours(24))
        .unwrap_or(at)
}

/// `GET Messages.json`: newest first, `PageSize` at a time, filtered by `To`, `From` and
/// `DateSent` (a day; `DateSent<` on or before, `DateSent>` on or after).
pub async fn list_messages(
    State(state): State<AppState>,
    Path(account): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> TwilioResult<axum::Json<Value>> {
    let caller = authenticate(&state, &headers, &account).await?;
    let pairs = form(query.unwrap_or_default().as_bytes());
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let number = |name: &str, default: u32| -> Result<u32, TwilioError> {
        get(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| bad(name, format!("`{v}` is not a number")))
        })
    };
    let page_size = number("PageSize", 50)?.clamp(1, MAX_PAGE_SIZE);
    let page = number("Page", 0)?;
    let mut filter = relais_store::MessageFilter {
        to: get("To").filter(|v| !v.is_empty()),
        sender: get("From").filter(|v| !v.is_empty()),
        ..Default::default()
    };
    if let Some(v) = get("DateSent") {
        let (at, day) = instant("DateSent", &v)?;
        filter.created_from = Some(at);
        filter.created_before = Some(if day { next_day(at) } else { at });
    }
    if let Some(v) = get("DateSent<") {
        let (at, day) = instant("DateSent<", &v)?;
        filter.created_before = Some(if day { next_day(at) } else { at });
    }
    if let Some(v) = get("DateSent>") {
        filter.created_from = Some(instant("DateSent>", &v)?.0);
    }
    let mut cursor = match get("PageToken") {
        Some(token) => Some(
            token
                .strip_prefix(TOKEN_PREFIX)
                .filter(|c| uuid::Uuid::try_parse(c).is_ok())
                .map(str::to_owned)
                .ok_or_else(|| {
                    bad(
                        "PageToken",
                        "is not a token this API gave (use next_page_uri)",
                    )
                })?,
        ),
        None => None,
    };
    let request = |after: Option<String>| relais_store::PageRequest {
        after,
        limit: page_size,
    };
    // A `Page` without a token: the pages before it are walked (the SDKs follow
    // `next_page_uri`, which carries a token).
    if cursor.is_none() {
        for _ in 0..page {
            let skipped = state
                .store
                .list_messages(&caller.tenant_id, &filter, &request(cursor.clone()))
                .await
                .map_err(TwilioError::from)?;
            match skipped.next_cursor {
                Some(next) => cursor = Some(next),
                None => {
                    cursor = None;
                    break;
                }
            }
        }
    }
    let found = state
        .store
        .list_messages(&caller.tenant_id, &filter, &request(cursor))
        .await
        .map_err(TwilioError::from)?;
    let base = format!("{}/Messages.json", account_base(&caller.account_sid));
    let mut kept: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "PageSize" | "Page" | "PageToken"))
        .cloned()
        .collect();
    kept.push(("PageSize".into(), page_size.to_string()));
    let uri_with = |extra: &[(&str, String)]| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        format!("{base}?{}", q.finish())
    };
    let mut page_query: Vec<(&str, String)> = vec![("Page", page.to_string())];
    if let Some(token) = get("PageToken") {
        page_query.push(("PageToken", token));
    }
    let messages: Vec<Value> = found
        .data
        .into_iter()
        .map(|m| message_json(&caller.account_sid, &Facts::of(m)))
        .collect();
    let start = u64::from(page) * u64::from(page_size);
    let end = (start + messages.len() as u64).saturating_sub(1);
    Ok(axum::Json(json!({
        "end": end,
        "first_page_uri": uri_with(&[("Page", "0".into())]),
        "next_page_uri": found.next_cursor.map(|c| uri_with(&[
            ("Page", (page + 1).to_string()),
            ("PageToken", format!("{TOKEN_PREFIX}{c}")),
        ])),
        "page": page,
        "page_size": page_size,
        "previous_page_uri": null,
        "messages": messages,
        "start": start,
        "uri": uri_with(&page_query),
    })))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TwilioAccountView {
    /// `AC` + 32 hex digits: the `AccountSid` of the Twilio API's paths and the user name
    /// of its Basic auth.
    pub account_sid: String,
    /// The password of its Basic auth, and the key of `X-Twilio-Signature`.
    pub auth_token: String,
    /// Where inbound messages are posted (`PUT /v1/twilio/account/inbound`).
    pub inbound_url: Option<String>,
    /// Why the last inbound message posted there was not answered as asked (a TwiML
    /// answer that is not XML: 12100), if it was not.
    pub inbound_error: Option<String>,
}

/// The tenant's account as its admin sees it; 404 before it was issued.
async fn account_view(state: &AppState, tenant: &str) -> ApiResult<TwilioAccountView> {
    let shown = accounts::show(&*state.store, tenant)
        .await?
        .ok_or_else(|| {
            ApiError::not_found("Twilio credentials: issue them with POST /v1/twilio/account")
        })?;
    Ok(TwilioAccountView {
        account_sid: shown.credentials.account_sid.to_string(),
        auth_token: shown.credentials.auth_token,
        inbound_url: shown.inbound_url,
        inbound_error: shown.inbound_error,
    })
}

/// Issue the tenant's Twilio credentials (admin keys only); again, a new auth token
/// replaces the previous one (which stops working within 10 seconds), the SID stays.
#[utoipa::path(post, path = "/v1/twilio/account", tag = "twilio",
    responses((status = 201, body = TwilioAccountView)))]
pub async fn issue_account(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<(StatusCode, axum::Json<TwilioAccountView>)> {
    caller.require(Scope::Admin)?;
    accounts::issue(&*state.store, &caller.tenant_id, state.clock.now()).await?;
    let view = account_view(&state, &caller.tenant_id).await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

/// The tenant's Twilio credentials and inbound settings (admin keys only).
#[utoipa::path(get, path = "/v1/twilio/account", tag = "twilio",
    responses((status = 200, body = TwilioAccountView), (status = 404, body = crate::problem::Problem)))]
pub async fn show_account(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<TwilioAccountView>> {
    caller.require(Scope::Admin)?;
    Ok(axum::Json(account_view(&state, &caller.tenant_id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundSettings {
    /// Where inbound messages are posted from now on, as Twilio posts them; `null`:
    /// nowhere.
    pub url: Option<String>,
}

/// Post the tenant's inbound messages, from now on, to a URL (admin keys only); a TwiML
/// answer's `<Message>`s are sent as replies.
#[utoipa::path(put, path = "/v1/twilio/account/inbound", tag = "twilio", request_body = InboundSettings,
    responses((status = 200, body = TwilioAccountView), (status = 404, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
pub async fn set_inbound(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<InboundSettings>,
) -> ApiResult<axum::Json<TwilioAccountView>> {
    use relais_engine::twilio::inbound::{InboundUrlError, set_url};
    caller.require(Scope::Admin)?;
    set_url(
        &*state.store,
        &caller.tenant_id,
        body.url.as_deref(),
        state.settings.webhook_destinations,
        state.clock.now(),
    )
    .await
    .map_err(|e| match e {
        InboundUrlError::BadUrl(e) => ApiError::invalid_field("/url", e.to_string()),
        e @ InboundUrlError::NoAccount => ApiError::not_found(e.to_string()),
        InboundUrlError::Store(e) => e.into(),
    })?;
    Ok(axum::Json(account_view(&state, &caller.tenant_id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewService {
    pub name: String,
    /// The pool: numbers, short codes or alphanumeric sender IDs.
    pub senders: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceView {
    /// `MG` + 32 hex digits: the `MessagingServiceSid` of a send.
    pub sid: String,
    pub name: String,
    pub senders: Vec<String>,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
}

fn service_view(s: relais_store::TwilioService) -> ServiceView {
    ServiceView {
        sid: s.sid,
        name: s.name,
        senders: s.senders,
        created_at: s.created_at,
    }
}

/// Create a Messaging Service: a pool of senders; a message sent with its SID and no
/// `From` takes the pool's sender for its recipient, the same each time (admin keys only).
#[utoipa::path(post, path = "/v1/twilio/services", tag = "twilio", request_body = NewService,
    responses((status = 201, body = ServiceView), (status = 422, body = crate::problem::Problem)))]
pub async fn create_service(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewService>,
) -> ApiResult<(StatusCode, axum::Json<ServiceView>)> {
    use relais_engine::twilio::services::{ServiceError, create_service};
    caller.require(Scope::Admin)?;
    let service = create_service(
        &*state.store,
        &caller.tenant_id,
        &body.name,
        &body.senders,
        state.clock.now(),
    )
    .await
    .map_err(|e| match e {
        ServiceError::BadName => ApiError::invalid_field("/name", e.to_string()),
        ServiceError::NoSender => ApiError::invalid_field("/senders", e.to_string()),
        ServiceError::BadSender { index, .. } => {
            ApiError::invalid_field(&format!("/senders/{index}"), e.to_string())
        }
        ServiceError::Store(e) => e.into(),
    })?;
    Ok((StatusCode::CREATED, axum::Json(service_view(service))))
}

/// The tenant's Messaging Services, oldest first (admin keys only).
#[utoipa::path(get, path = "/v1/twilio/services", tag = "twilio",
    responses((status = 200, body = Vec<ServiceView>)))]
pub async fn list_services(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<ServiceView>>> {
    caller.require(Scope::Admin)?;
    let services = state.store.twilio_services(&caller.tenant_id).await?;
    Ok(axum::Json(services.into_iter().map(service_view).collect()))
}
