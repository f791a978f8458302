//! The HTTP API's audit trail: each request to an audited route (reads of a contact's
//! data, exports, erasures, consent changes, key, agent and configuration management) by
//! an authenticated caller leaves one entry in the audit log, with its outcome.
//!
//! The caller is known only once a handler authenticates it, so this layer hands each
//! request an empty [`AuditSlot`] that the [`crate::extract::Caller`] extractor fills; after
//! the handler, an audited route with a filled slot is written. A read whose entry cannot
//! be written is refused (503) rather than answered unrecorded; a change already made is
//! answered and the failure logged and counted (`relais_audit_write_failures_total`).

use crate::AppState;
use crate::problem::ApiError;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use relais_core::audit::{ActorKind, AuditAction};
use relais_store::AuditEntry;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Who the request was authenticated as, filled in by the `Caller` extractor.
#[derive(Debug, Clone, Default)]
pub struct AuditSlot(Arc<Mutex<Option<Who>>>);

#[derive(Debug, Clone)]
pub struct Who {
    pub tenant_id: String,
    pub kind: ActorKind,
    pub id: String,
}

impl AuditSlot {
    pub fn fill(&self, who: Who) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(who);
        }
    }

    fn take(&self) -> Option<Who> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// An audited route: the method, the route's template, what it does and, when it acts
/// on one thing, that thing's kind and the template's parameter naming it.
struct Audited {
    method: Method,
    route: &'static str,
    action: AuditAction,
    resource: Option<(&'static str, &'static str)>,
}

const fn on(
    method: Method,
    route: &'static str,
    action: AuditAction,
    resource: Option<(&'static str, &'static str)>,
) -> Audited {
    Audited {
        method,
        route,
        action,
        resource,
    }
}

const CONTACT: Option<(&str, &str)> = Some(("contact", "id"));
const SENDER: Option<(&str, &str)> = Some(("sender", "id"));
const MESSAGE: Option<(&str, &str)> = Some(("message", "id"));

/// Every audited route (docs/audit.md lists them).
static AUDITED: [Audited; 39] = {
    use AuditAction::*;
    [
        on(Method::GET, "/v1/contacts", ContactList, None),
        on(Method::POST, "/v1/contacts", ContactCreate, None),
        on(Method::POST, "/v1/contacts/import", ContactImport, None),
        on(Method::GET, "/v1/contacts/{id}", ContactRead, CONTACT),
        on(Method::PATCH, "/v1/contacts/{id}", ContactUpdate, CONTACT),
        on(Method::DELETE, "/v1/contacts/{id}", ContactDelete, CONTACT),
        on(
            Method::POST,
            "/v1/contacts/{id}/identities",
            IdentityAdd,
            CONTACT,
        ),
        on(
            Method::DELETE,
            "/v1/contacts/{id}/identities/{channel}/{address}",
            IdentityRemove,
            CONTACT,
        ),
        on(
            Method::GET,
            "/v1/contacts/{id}/consents",
            ConsentRead,
            CONTACT,
        ),
        on(
            Method::GET,
            "/v1/contacts/{id}/consents/decision",
            ConsentRead,
            CONTACT,
        ),
        on(
            Method::POST,
            "/v1/contacts/{id}/consents",
            ConsentChange,
            CONTACT,
        ),
        on(
            Method::POST,
            "/v1/contacts/{id}/merge",
            ContactMerge,
            CONTACT,
        ),
        on(
            Method::GET,
            "/v1/contacts/{id}/merges",
            ContactRead,
            CONTACT,
        ),
        on(
            Method::GET,
            "/v1/contacts/{id}/export",
            ContactExport,
            CONTACT,
        ),
        on(
            Method::POST,
            "/v1/contacts/{id}/erase",
            ContactErase,
            CONTACT,
        ),
        on(
            Method::GET,
            "/v1/conversations/{id}",
            ConversationRead,
            Some(("conversation", "id")),
        ),
        on(
            Method::GET,
            "/v1/conversations/{id}/notes",
            ConversationRead,
            Some(("conversation", "id")),
        ),
        on(Method::POST, "/v1/tenants", TenantCreate, None),
        on(Method::POST, "/v1/api-keys", KeyCreate, None),
        on(Method::POST, "/v1/agents", AgentCreate, None),
        on(
            Method::PATCH,
            "/v1/agents/{id}",
            AgentUpdate,
            Some(("agent", "id")),
        ),
        on(
            Method::DELETE,
            "/v1/agents/{id}",
            AgentDelete,
            Some(("agent", "id")),
        ),
        on(
            Method::PUT,
            "/v1/teams/{name}",
            TeamChange,
            Some(("team", "name")),
        ),
        on(
            Method::DELETE,
            "/v1/teams/{name}",
            TeamChange,
            Some(("team", "name")),
        ),
        on(Method::PUT, "/v1/settings", SettingsChange, None),
        on(Method::PATCH, "/v1/settings", SettingsChange, None),
        on(Method::POST, "/v1/channels", ChannelChange, None),
        on(
            Method::DELETE,
            "/v1/channels/{id}",
            ChannelChange,
            Some(("channel", "id")),
        ),
        on(Method::POST, "/v1/smpp/credentials", CredentialsIssue, None),
        on(Method::POST, "/v1/webhooks", WebhookChange, None),
        on(
            Method::DELETE,
            "/v1/webhooks/{id}",
            WebhookChange,
            Some(("webhook", "id")),
        ),
        on(Method::POST, "/v1/twilio/account", CredentialsIssue, None),
        on(Method::GET, "/v1/audit", AuditRead, None),
        on(Method::POST, "/v1/senders", SenderChange, None),
        on(Method::DELETE, "/v1/senders/{id}", SenderChange, SENDER),
        on(Method::POST, "/v1/senders/{id}/code", SenderChange, SENDER),
        on(
            Method::POST,
            "/v1/senders/{id}/verify",
            SenderChange,
            SENDER,
        ),
        on(
            Method::POST,
            "/v1/messages/{id}/release",
            MessageReview,
            MESSAGE,
        ),
        on(
            Method::POST,
            "/v1/messages/{id}/reject",
            MessageReview,
            MESSAGE,
        ),
    ]
};

fn audited(method: &Method, route: &str) -> Option<&'static Audited> {
    AUDITED
        .iter()
        .find(|a| a.method == *method && a.route == route)
}

/// The value of `{param}` of `route` in `path` (the path as sent, percent-decoded).
fn path_parameter(route: &str, path: &str, param: &str) -> Option<String> {
    let wanted = format!("{{{param}}}");
    let index = route.split('/').position(|segment| segment == wanted)?;
    let raw = path.split('/').nth(index)?;
    Some(
        percent_encoding::percent_decode_str(raw)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

fn header_text(headers: &HeaderMap, name: &str, max: usize) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?;
    Some(value.chars().take(max).collect())
}

/// The layer: see the module's doc.
pub async fn audit_trail(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let Some(audited) = route
        .as_ref()
        .and_then(|route| audited(req.method(), route.as_str()))
    else {
        return next.run(req).await;
    };
    let slot = AuditSlot::default();
    req.extensions_mut().insert(slot.clone());
    let path = req.uri().path().to_owned();
    let source_ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    let forwarded_for = header_text(req.headers(), "x-forwarded-for", 256);
    let user_agent = header_text(req.headers(), "user-agent", 256);

    let response = next.run(req).await;
    let Some(who) = slot.take() else {
        // Nobody was authenticated (a 401): there is no one to record.
        return response;
    };
    let entry = AuditEntry {
        id: relais_core::ids::new_id(),
        tenant_id: who.tenant_id,
        at: state.clock.now(),
        actor_kind: who.kind,
        actor_id: who.id,
        action: audited.action,
        resource_kind: audited.resource.map(|(kind, _)| kind.to_owned()),
        resource_id: audited
            .resource
            .and_then(|(_, param)| path_parameter(audited.route, &path, param)),
        status: response.status().as_u16(),
        source_ip,
        forwarded_for,
        user_agent,
        method: Some(audited.method.to_string()),
        path: Some(audited.route.to_owned()),
    };
    match state.store.append_audit(&entry).await {
        Ok(()) => response,
        Err(e) => {
            metrics::counter!("relais_audit_write_failures_total").increment(1);
            tracing::error!(error = %e, action = %entry.action, "the audit entry could not be written");
            if audited.action.is_read() && response.status().is_success() {
                ApiError::unavailable(format!("the audit log cannot be written ({e})"))
                    .into_response()
            } else {
                response
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_parameter_is_read_at_its_place_in_the_route() {
        assert_eq!(
            path_parameter(
                "/v1/contacts/{id}/consents",
                "/v1/contacts/c-1/consents",
                "id"
            ),
            Some("c-1".to_owned())
        );
        assert_eq!(
            path_parameter("/v1/teams/{name}", "/v1/teams/Support%20FR", "name"),
            Some("Support FR".to_owned())
        );
        assert_eq!(path_parameter("/v1/contacts", "/v1/contacts", "id"), None);
    }

    #[test]
    fn every_audited_route_is_listed_once() {
        for (i, a) in AUDITED.iter().enumerate() {
            assert!(
                AUDITED[..i]
                    .iter()
                    .all(|b| (b.method.clone(), b.route) != (a.method.clone(), a.route)),
                "{} {} listed twice",
                a.method,
                a.route
            );
            if let Some((_, param)) = a.resource {
                assert!(a.route.contains(&format!("{{{param}}}")), "{}", a.route);
            }
        }
    }
}
