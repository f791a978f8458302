//! `POST /v1/contacts/import`: a CSV body, streamed (never held whole in memory).

use crate::AppState;
use crate::extract::Caller;
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use futures::TryStreamExt;
use relais_core::tenant::Scope;
use relais_engine::import::{ImportError, ImportSummary, import_csv};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_util::io::{StreamReader, SyncIoBridge};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/contacts/import",
        post(import).layer(DefaultBodyLimit::disable()),
    )
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ImportSummaryDoc {
    rows: u64,
    created: u64,
    updated: u64,
    rejected: u64,
    /// The first 1000 rejected rows: `{"line", "reason"}`.
    #[schema(value_type = Vec<Object>)]
    errors: Vec<()>,
}

/// Import contacts from CSV (`Content-Type: text/csv`). Columns: `phone`/`sms`, `whatsapp`,
/// `telegram`, `email`, `webpush`, `webchat` (identities), `timezone`, `locale`,
/// `consent:<purpose>` (`opted_in`/`opted_out`), and any other column as an attribute.
/// Rows matching an existing identity update that contact.
#[utoipa::path(post, path = "/v1/contacts/import", tag = "contacts",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportSummaryDoc), (status = 422, body = crate::problem::Problem)))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<axum::Json<ImportSummary>> {
    caller.require(Scope::Send)?;
    let limit = state.settings.import_body_limit;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("the import body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let mut seen = 0usize;
    let exceeded = Arc::new(AtomicBool::new(false));
    let flag = exceeded.clone();
    let stream = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .and_then(move |chunk| {
            seen += chunk.len();
            if seen > limit {
                flag.store(true, Ordering::Relaxed);
            }
            std::future::ready(if seen > limit {
                Err(std::io::Error::other(format!(
                    "the import body is larger than {limit} bytes"
                )))
            } else {
                Ok(chunk)
            })
        });
    let reader = SyncIoBridge::new(StreamReader::new(stream));
    let summary = import_csv(
        reader,
        state.store.clone(),
        &caller.tenant_id,
        state.address_rules(),
        state.clock.now(),
        Arc::new(()),
    )
    .await
    .map_err(|e| match e {
        _ if exceeded.load(Ordering::Relaxed) => too_large(),
        ImportError::Header(d) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", d),
        ImportError::Read(d) => ApiError::bad_request(format!("cannot read the CSV body: {d}")),
        ImportError::Store(s) => s.into(),
    })?;
    Ok(axum::Json(summary))
}
