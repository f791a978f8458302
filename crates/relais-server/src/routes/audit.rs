//! `GET /v1/audit`: the tenant's audit log (docs/audit.md), oldest first, filtered by
//! actor, action, resource and time; a page of JSON, or the whole selection as CSV
//! (`format=csv`, streamed page by page). Admin scope; reading the log is itself audited.

use crate::AppState;
use crate::extract::{ApiQuery, Caller};
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use relais_core::audit::AuditAction;
use relais_core::tenant::Scope;
use relais_store::{AuditQuery, PageRequest};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(list_audit))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// An API key's id, an agent's id, or the OS user of a CLI command.
    pub actor: Option<String>,
    /// An action code, e.g. `contact.export`.
    pub action: Option<String>,
    /// `contact`, `conversation`, `agent`, `team`, `channel`, `webhook`, `sender`, `message`.
    pub resource_kind: Option<String>,
    pub resource_id: Option<String>,
    /// Entries at or after this instant (RFC 3339).
    pub since: Option<String>,
    /// Entries before this instant (RFC 3339).
    pub until: Option<String>,
    /// `json` (a page, the default) or `csv` (every matching entry).
    pub format: Option<String>,
    /// Entries per JSON page, 1 to 1000 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn instant(name: &str, value: Option<&str>) -> ApiResult<Option<jiff::Timestamp>> {
    value
        .map(|text| {
            text.parse::<jiff::Timestamp>().map_err(|e| {
                ApiError::bad_parameter(name, format!("is not an RFC 3339 instant ({e})"))
            })
        })
        .transpose()
}

fn audit_query(params: &AuditParams) -> ApiResult<AuditQuery> {
    let action = params
        .action
        .as_deref()
        .map(|code| {
            AuditAction::parse(code).ok_or_else(|| {
                let known: Vec<_> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
                ApiError::bad_parameter(
                    "action",
                    format!("`{code}` is not an action; one of: {}", known.join(", ")),
                )
            })
        })
        .transpose()?;
    Ok(AuditQuery {
        actor_id: params.actor.clone(),
        action,
        resource_kind: params.resource_kind.clone(),
        resource_id: params.resource_id.clone(),
        since: instant("since", params.since.as_deref())?,
        until: instant("until", params.until.as_deref())?,
    })
}

/// The audit log's entries, oldest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, description = "a page of entries (`data`, `next_cursor`), or CSV with `format=csv`"),
        (status = 400, body = crate::problem::Problem), (status = 403, body = crate::problem::Problem)))]
pub async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> ApiResult<Response> {
    caller.require(Scope::Admin)?;
    let query = audit_query(&params)?;
    let page = crate::routes::PageQuery {
        limit: params.limit,
        cursor: params.cursor.clone(),
    }
    .to_request()?;
    match params.format.as_deref() {
        None | Some("json") => {
            let page = state
                .store
                .audit_entries(&caller.tenant_id, &query, &page)
                .await?;
            Ok(axum::Json(page).into_response())
        }
        Some("csv") => Ok(csv_export(state, caller.tenant_id, query)),
        Some(other) => Err(ApiError::bad_parameter(
            "format",
            format!("`{other}` is not a format; use `json` or `csv`"),
        )),
    }
}

/// Every matching entry as CSV, read a thousand at a time while the client downloads.
fn csv_export(state: AppState, tenant: String, query: AuditQuery) -> Response {
    enum Next {
        Header,
        After(Option<String>),
        Done,
    }
    let pages = futures::stream::unfold(Next::Header, move |next| {
        let state = state.clone();
        let tenant = tenant.clone();
        let query = query.clone();
        async move {
            let after = match next {
                Next::Header => {
                    let header = relais_engine::audit::CSV_HEADER.to_owned();
                    return Some((Ok(header), Next::After(None)));
                }
                Next::After(after) => after,
                Next::Done => return None,
            };
            let page = PageRequest { after, limit: 1000 };
            match state.store.audit_entries(&tenant, &query, &page).await {
                Ok(page) => {
                    let text: String = page
                        .data
                        .iter()
                        .map(relais_engine::audit::csv_line)
                        .collect();
                    let next = match page.next_cursor {
                        Some(cursor) => Next::After(Some(cursor)),
                        None => Next::Done,
                    };
                    Some((Ok(text), next))
                }
                // The status line is gone: cutting the body short tells the client the
                // export is incomplete.
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), Next::Done)),
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"audit.csv\"",
            ),
        ],
        Body::from_stream(pages),
    )
        .into_response()
}
