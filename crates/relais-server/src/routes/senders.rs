//! `/v1/senders`: the tenant's senders and their verification (`docs/trust.md`) —
//! register one, send a phone number its code, verify (the code, the domain's TXT record,
//! or an admin's approval), list, read, remove.

use crate::AppState;
use crate::extract::{ApiJson, Caller, parse_json};
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use relais_core::tenant::Scope;
use relais_core::verified_sender::{Method, TXT_PREFIX};
use relais_engine::senders::{Proof, SenderError};
use relais_store::SenderRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/senders", post(create_sender).get(list_senders))
        .route("/senders/{id}", get(get_sender).delete(delete_sender))
        .route("/senders/{id}/code", post(send_code))
        .route("/senders/{id}/verify", post(verify_sender))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSender {
    /// `phone_number`, `alphanumeric_id`, `whatsapp_name` or `email_domain`.
    #[schema(example = "phone_number")]
    pub kind: String,
    #[schema(example = "+33612345678")]
    pub value: String,
    /// An email domain's DKIM selector: its key must be published at
    /// `<selector>._domainkey.<domain>` for the domain to be verified.
    pub dkim_selector: Option<String>,
}

/// A sender and how to verify it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SenderView {
    pub id: String,
    pub kind: String,
    pub value: String,
    /// `pending` or `verified`.
    pub state: String,
    /// `code`, `dns_txt` or `approval`.
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dkim_selector: Option<String>,
    /// For an email domain: the TXT record to publish on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txt_record: Option<TxtRecord>,
    /// For a phone number with a code sent: until when it may be typed back.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub code_expires_at: Option<jiff::Timestamp>,
    #[schema(value_type = Option<String>)]
    pub verified_at: Option<jiff::Timestamp>,
    #[schema(value_type = String)]
    pub created_at: jiff::Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TxtRecord {
    #[schema(example = "mabanque.fr")]
    pub name: String,
    #[schema(example = "relais-verification=4f1c…")]
    pub value: String,
}

fn view(s: SenderRecord) -> SenderView {
    let method = s.kind.method();
    SenderView {
        txt_record: match (&s.token, method, s.verified) {
            (Some(token), Method::DnsTxt, false) => Some(TxtRecord {
                name: s.value.clone(),
                value: format!("{TXT_PREFIX}{token}"),
            }),
            _ => None,
        },
        code_expires_at: s.code.as_ref().map(|c| c.expires_at),
        id: s.id,
        kind: s.kind.as_str().to_owned(),
        value: s.value,
        state: if s.verified { "verified" } else { "pending" }.to_owned(),
        method: method.as_str().to_owned(),
        dkim_selector: s.dkim_selector,
        verified_at: s.verified_at,
        created_at: s.created_at,
    }
}

fn sender_error(e: SenderError) -> ApiError {
    match e {
        SenderError::Invalid { pointer, detail } => ApiError::invalid_field(&pointer, detail),
        SenderError::NotFound(id) => ApiError::not_found(format!("sender {id}")),
        SenderError::Code(e) => {
            let mut error = ApiError::invalid_field("/code", e.to_string());
            error.slug = "code-refused";
            error
        }
        e @ SenderError::WrongMethod(..) => ApiError::conflict(e.to_string()),
        SenderError::NotPublished(detail) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not-verified", detail)
        }
        e @ SenderError::Dns(_) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "dns-failed", e.to_string())
        }
        SenderError::Send(e) => crate::routes::messages::accept_error(e),
        SenderError::Store(e) => e.into(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SenderList {
    pub data: Vec<SenderView>,
}

/// Registers a sender, `pending` until verified.
#[utoipa::path(post, path = "/v1/senders", tag = "senders", request_body = NewSender,
    responses((status = 201, body = SenderView), (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
pub async fn create_sender(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewSender>,
) -> ApiResult<(StatusCode, axum::Json<SenderView>)> {
    caller.require(Scope::Admin)?;
    let sender = relais_engine::senders::register(
        &*state.store,
        &caller.tenant_id,
        &body.kind,
        &body.value,
        body.dkim_selector.as_deref(),
        state.clock.now(),
    )
    .await
    .map_err(sender_error)?;
    Ok((StatusCode::CREATED, axum::Json(view(sender))))
}

/// The tenant's senders, oldest first.
#[utoipa::path(get, path = "/v1/senders", tag = "senders", responses((status = 200, body = SenderList)))]
pub async fn list_senders(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<SenderList>> {
    caller.require(Scope::Read)?;
    let senders = state.store.senders(&caller.tenant_id).await?;
    Ok(axum::Json(SenderList {
        data: senders.into_iter().map(view).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/senders/{id}", tag = "senders",
    responses((status = 200, body = SenderView), (status = 404, body = crate::problem::Problem)))]
pub async fn get_sender(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<SenderView>> {
    caller.require(Scope::Read)?;
    let sender = state
        .store
        .sender(&caller.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("sender {id}")))?;
    Ok(axum::Json(view(sender)))
}

#[utoipa::path(delete, path = "/v1/senders/{id}", tag = "senders",
    responses((status = 204), (status = 404, body = crate::problem::Problem)))]
pub async fn delete_sender(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    if relais_engine::senders::delete(&*state.store, &caller.tenant_id, &id)
        .await
        .map_err(sender_error)?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("sender {id}")))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CodeSent {
    /// The message that carries the code (`GET /v1/messages/{id}`).
    pub message_id: String,
    #[schema(value_type = String)]
    pub expires_at: jiff::Timestamp,
}

/// Sends a phone number sender a new verification code (the previous one stops working).
#[utoipa::path(post, path = "/v1/senders/{id}/code", tag = "senders",
    responses((status = 202, body = CodeSent), (status = 404, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem)))]
pub async fn send_code(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<CodeSent>)> {
    caller.require(Scope::Admin)?;
    let now = state.clock.now();
    let message_id = relais_engine::senders::send_code(
        &*state.store,
        &state.acceptor,
        &caller.tenant_id,
        &id,
        now,
    )
    .await
    .map_err(sender_error)?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(CodeSent {
            message_id,
            expires_at: now + relais_core::verified_sender::CODE_VALIDITY,
        }),
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The code a phone number received; left out for the other kinds.
    pub code: Option<String>,
}

/// Verifies a sender: a phone number with the code it received, an email domain by its
/// TXT record (looked up now), an alphanumeric ID or WhatsApp display name by this call
/// itself (an admin's approval).
#[utoipa::path(post, path = "/v1/senders/{id}/verify", tag = "senders", request_body = VerifyRequest,
    responses((status = 200, body = SenderView), (status = 404, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem), (status = 502, body = crate::problem::Problem)))]
pub async fn verify_sender(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<axum::Json<SenderView>> {
    caller.require(Scope::Admin)?;
    let request: VerifyRequest = if body.iter().all(u8::is_ascii_whitespace) {
        VerifyRequest::default()
    } else {
        parse_json(&body)?
    };
    let sender = relais_engine::senders::verify(
        &*state.store,
        &state.settings.dns_resolver,
        &caller.tenant_id,
        &id,
        Proof { code: request.code },
        state.clock.now(),
    )
    .await
    .map_err(sender_error)?;
    Ok(axum::Json(view(sender)))
}
