//! Request extractors that turn bad input into problem+json instead of plain text.

use crate::AppState;
use crate::problem::{ApiError, FieldError};
use axum::body::HttpBody;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use relais_core::tenant::{Scope, Scopes, hash_api_key};
use serde::de::DeserializeOwned;

/// A JSON body, labelled `application/json` (or `…+json`). Errors name the JSON pointer and
/// the line and column of the problem.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        check_json_label(req.headers(), has_body(&req))?;
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::payload_too_large()
                } else {
                    ApiError::bad_request(format!("cannot read the request body: {e}"))
                }
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Whether the request carries a body (one of zero bytes does not count).
fn has_body(req: &Request) -> bool {
    let body = req.body();
    !body.is_end_stream() && body.size_hint().upper() != Some(0)
}

/// A body sent to a JSON route must say it is JSON: a client that sends a form or text by
/// mistake learns it at once instead of having it guessed at.
fn check_json_label(headers: &HeaderMap, has_body: bool) -> Result<(), ApiError> {
    if !has_body {
        return Ok(());
    }
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match mime.as_deref() {
        Some(m)
            if m == "application/json"
                || (m.starts_with("application/") && m.ends_with("+json")) =>
        {
            Ok(())
        }
        Some(other) => Err(ApiError::unsupported_media_type(format!(
            "the body must be JSON, labelled `Content-Type: application/json` (not `{other}`)"
        ))),
        None => Err(ApiError::unsupported_media_type(
            "the body must be JSON, labelled `Content-Type: application/json` (the header is missing)",
        )),
    }
}

/// Middleware for routes whose handlers read the body as bytes and parse it with
/// [`parse_json`]: refuses a body not labelled JSON, as [`ApiJson`] does.
pub async fn json_bodies_only(req: Request, next: Next) -> Response {
    match check_json_label(req.headers(), has_body(&req)) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// One JSON value and nothing after it but whitespace.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let pointer = json_pointer(e.path());
        let inner = e.into_inner();
        let detail = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request(format!("malformed JSON: {detail}"))
        } else {
            ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                slug: "validation",
                detail: format!("{pointer}: {detail}"),
                errors: vec![FieldError { pointer, detail }],
                parameter: None,
            }
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e} after the JSON value")))?;
    Ok(value)
}

/// The query string. An error names the parameter (`parameter` in the problem).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let name = e.path().to_string();
                let detail = e.into_inner().to_string();
                // A missing parameter is reported by serde without a path.
                match detail.strip_prefix("missing field `") {
                    Some(rest) => {
                        let name = rest.trim_end_matches('`');
                        ApiError::bad_parameter(name, "is required")
                    }
                    None => {
                        let given = form_urlencoded::parse(query.as_bytes())
                            .find(|(k, _)| *k == name)
                            .map(|(_, v)| v.chars().take(100).collect::<String>())
                            .unwrap_or_default();
                        ApiError::bad_parameter(&name, format!("{detail} (got `{given}`)"))
                    }
                }
            })
    }
}

/// Path parameters; a segment that does not decode (not UTF-8) is a 400 problem.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|e| {
                if e.status().is_server_error() {
                    ApiError::internal(e.body_text())
                } else {
                    ApiError::bad_request(format!("bad path: {}", e.body_text()))
                }
            })
    }
}

fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push('/');
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Unknown => out.push_str("/?"),
        }
    }
    if out.is_empty() { "/".into() } else { out }
}

/// The caller, from `Authorization: Bearer <key>`: an API key, or an agent's session
/// token (`POST /v1/auth/login`).
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: String,
    /// The API key's id, or the agent's id for a session.
    pub key_id: String,
    pub scopes: Scopes,
    /// The agent, when the caller logged in as one.
    pub agent: Option<relais_store::Agent>,
}

impl Caller {
    /// Who acts, as the help desk sees it.
    pub fn actor(&self) -> relais_engine::agents::Actor {
        match &self.agent {
            Some(agent) => agent.into(),
            None => relais_engine::agents::Actor::Key(self.key_id.clone()),
        }
    }

    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this API key lacks the `{scope}` scope"
            )))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized(
                "missing Authorization: Bearer <api key or session token> header",
            )
        })?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <api key>`")
            })?;
        let caller = Caller::from_token(state, token).await?;
        if let Some(slot) = parts.extensions.get::<crate::audit::AuditSlot>() {
            slot.fill(crate::audit::Who {
                tenant_id: caller.tenant_id.clone(),
                kind: if caller.agent.is_some() {
                    relais_core::audit::ActorKind::Agent
                } else {
                    relais_core::audit::ActorKind::Key
                },
                id: caller.key_id.clone(),
            });
        }
        Ok(caller)
    }
}

impl Caller {
    /// The caller an API key or session token (as sent) authenticates: for routes that
    /// also take it elsewhere than in the `Authorization` header (a browser's WebSocket
    /// cannot set headers).
    pub async fn from_token(state: &AppState, token: &str) -> Result<Self, ApiError> {
        if token.starts_with(relais_engine::agents::SESSION_PREFIX) {
            let agent = state.desk.authenticate(token).await?.ok_or_else(|| {
                ApiError::unauthorized(
                    "the session has expired or was ended: log in again (POST /v1/auth/login)",
                )
            })?;
            let scopes = match agent.role {
                relais_core::agent::Role::Admin => Scopes::new([Scope::Admin]),
                relais_core::agent::Role::Agent => Scopes::new([Scope::Send]),
            };
            return Ok(Caller {
                tenant_id: agent.tenant_id.clone(),
                key_id: agent.id.clone(),
                scopes,
                agent: Some(agent),
            });
        }
        let hash = hash_api_key(token);
        let key = match state.keys.get(&hash) {
            Some(key) => key,
            None => {
                let key = state
                    .store
                    .api_key_by_hash(&hash)
                    .await?
                    .ok_or_else(|| ApiError::unauthorized("unknown or revoked API key"))?;
                state.keys.put(hash, key.clone());
                key
            }
        };
        Ok(Caller {
            tenant_id: key.tenant_id,
            key_id: key.id,
            scopes: key.scopes,
            agent: None,
        })
    }
}
