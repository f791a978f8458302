//! RFC 9457 problem details: every error the API returns says what was wrong and where.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use relais_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` style slugs under relais.dev).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Where the problem is, field by field, as JSON pointers into the request body.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The query parameter that is wrong, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    pub pointer: String,
    pub detail: String,
}

/// What a 503 asks the client to wait, in seconds: long enough for an operator's fix or a
/// database failover to be noticed, short enough that a retrying client loses little.
pub const RETRY_AFTER_SECS: &str = "5";

/// What a 429 for too many failed logins asks the client to wait, in seconds: the longest
/// queue of slowed-down attempts the server keeps (`BindThrottleConfig::max_wait`).
pub const ATTEMPTS_RETRY_AFTER_SECS: &str = "30";

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub slug: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub parameter: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            slug,
            detail: detail.into(),
            errors: Vec::new(),
            parameter: None,
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }
    pub fn invalid_field(pointer: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            slug: "validation",
            detail: format!("{pointer}: {detail}"),
            errors: vec![FieldError {
                pointer: pointer.to_owned(),
                detail,
            }],
            parameter: None,
        }
    }
    /// A query parameter that is wrong: `detail` says how.
    pub fn bad_parameter(name: &str, detail: impl std::fmt::Display) -> Self {
        ApiError {
            parameter: Some(name.to_owned()),
            ..Self::bad_request(format!("query parameter `{name}`: {detail}"))
        }
    }
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "the request body is larger than this route accepts (see docs/api.md, Limits)",
        )
    }
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            detail,
        )
    }
    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", detail)
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{} not found", what.into()),
        )
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    /// The store cannot take the request now (a full disk, a database that is down):
    /// nothing was stored, the client should try again (`Retry-After`).
    pub fn unavailable(why: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %why, "answering 503: the store is unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            format!("the request was not stored: {why}; try again later"),
        )
    }
    /// Too many failed logins wait already from this address or for this e-mail.
    pub fn too_many_attempts(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "too-many-attempts", detail)
    }
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed; the error is in its log",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("{what} not found"),
            ),
            StoreError::Conflict(d) => ApiError::conflict(d),
            StoreError::Unavailable(why) => ApiError::unavailable(why),
            StoreError::Invalid(d) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", d)
            }
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error").to_owned();
        let body = Problem {
            kind: format!("https://relais.dev/problems/{}", self.slug),
            title,
            status: self.status.as_u16(),
            detail: self.detail,
            errors: self.errors,
            parameter: self.parameter,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        let retry_after = match self.status {
            StatusCode::SERVICE_UNAVAILABLE => Some(RETRY_AFTER_SECS),
            StatusCode::TOO_MANY_REQUESTS => Some(ATTEMPTS_RETRY_AFTER_SECS),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(secs));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The problem for an error answer that is not one yet (a rejection of one of axum's own
/// extractors, a layer's refusal): `text` is its plain-text body.
pub(crate) fn from_bare(status: StatusCode, text: &str) -> ApiError {
    let text = text.trim();
    let detail = |fallback: &str| {
        if text.is_empty() {
            fallback.to_owned()
        } else {
            text.to_owned()
        }
    };
    match status.as_u16() {
        400 => ApiError::bad_request(detail("the request is malformed")),
        401 => ApiError::unauthorized(detail("authentication is required")),
        403 => ApiError::forbidden(detail("not allowed")),
        404 => ApiError::new(status, "not-found", detail("not found")),
        405 => ApiError::method_not_allowed(detail("this method is not allowed here")),
        409 => ApiError::conflict(detail("conflict")),
        413 => ApiError::payload_too_large(),
        415 => ApiError::unsupported_media_type(detail("unsupported Content-Type")),
        422 => ApiError::new(status, "validation", detail("the request is invalid")),
        500..=599 => {
            // The text of a server error may say more than a client should read.
            tracing::error!(
                status = status.as_u16(),
                body = text,
                "an error answer without a problem"
            );
            ApiError::new(
                status,
                "internal",
                "the server failed; the error is in its log",
            )
        }
        _ => ApiError::new(
            status,
            "http-error",
            detail(status.canonical_reason().unwrap_or("error")),
        ),
    }
}

impl From<relais_engine::agents::DeskError> for ApiError {
    fn from(e: relais_engine::agents::DeskError) -> Self {
        use relais_engine::agents::DeskError;
        match e {
            DeskError::NotFound(what) => ApiError::not_found(what),
            DeskError::Invalid { pointer, detail } => ApiError::invalid_field(&pointer, detail),
            DeskError::Conflict(d) => ApiError::conflict(d),
            DeskError::Forbidden(d) => ApiError::forbidden(d),
            e @ (DeskError::WrongCredentials | DeskError::WhichTenant) => {
                ApiError::unauthorized(e.to_string())
            }
            DeskError::Reply(e) => crate::routes::conversations::reply_error(e),
            DeskError::Store(e) => e.into(),
        }
    }
}
