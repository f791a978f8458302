//! The audit log outside the HTTP layer: what the `relais` command records when it acts
//! on a tenant from the server's machine, and the CSV form of the log for export.

use jiff::Timestamp;
use relais_core::audit::{ActorKind, AuditAction};
use relais_core::csv;
use relais_store::{AuditEntry, Store, StoreError};

/// The columns of the CSV export, in order.
pub const CSV_HEADER: &str = "id,at,actor_kind,actor_id,action,resource_kind,resource_id,status,source_ip,forwarded_for,user_agent,method,path\n";

/// One entry as a line of the CSV export.
pub fn csv_line(e: &AuditEntry) -> String {
    let at = e.at.to_string();
    let status = e.status.to_string();
    csv::line([
        e.id.as_str(),
        at.as_str(),
        e.actor_kind.as_str(),
        e.actor_id.as_str(),
        e.action.as_str(),
        e.resource_kind.as_deref().unwrap_or(""),
        e.resource_id.as_deref().unwrap_or(""),
        status.as_str(),
        e.source_ip.as_deref().unwrap_or(""),
        e.forwarded_for.as_deref().unwrap_or(""),
        e.user_agent.as_deref().unwrap_or(""),
        e.method.as_deref().unwrap_or(""),
        e.path.as_deref().unwrap_or(""),
    ])
}

/// The operating-system user running the command: who acted, for a CLI entry.
pub fn os_user() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("uid:{}", current_uid()))
}

fn current_uid() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().next().map(str::to_owned))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Records an act of the `relais` command (`relais tenants create`, `relais contacts
/// erase`…) on `tenant_id`, by the OS user, as succeeded.
pub async fn record_cli(
    store: &dyn Store,
    tenant_id: &str,
    action: AuditAction,
    resource: Option<(&str, &str)>,
    now: Timestamp,
) -> Result<(), StoreError> {
    store
        .append_audit(&AuditEntry {
            id: relais_core::ids::new_id(),
            tenant_id: tenant_id.to_owned(),
            at: now,
            actor_kind: ActorKind::Cli,
            actor_id: os_user(),
            action,
            resource_kind: resource.map(|(kind, _)| kind.to_owned()),
            resource_id: resource.map(|(_, id)| id.to_owned()),
            status: 200,
            source_ip: None,
            forwarded_for: None,
            user_agent: Some(format!("relais/{}", env!("CARGO_PKG_VERSION"))),
            method: None,
            path: None,
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_line_has_one_field_per_header_column() {
        let entry = AuditEntry {
            id: "e1".into(),
            tenant_id: "t1".into(),
            at: Timestamp::UNIX_EPOCH,
            actor_kind: ActorKind::Agent,
            actor_id: "a1".into(),
            action: AuditAction::ContactExport,
            resource_kind: Some("contact".into()),
            resource_id: Some("c1".into()),
            status: 200,
            source_ip: Some("192.0.2.1".into()),
            forwarded_for: None,
            user_agent: Some("Mozilla/5.0 (X11, Linux)".into()),
            method: Some("GET".into()),
            path: Some("/v1/contacts/{id}/export".into()),
        };
        let line = csv_line(&entry);
        assert_eq!(
            line,
            "e1,1970-01-01T00:00:00Z,agent,a1,contact.export,contact,c1,200,192.0.2.1,,\"Mozilla/5.0 (X11, Linux)\",GET,/v1/contacts/{id}/export\n"
        );
        assert_eq!(CSV_HEADER.split(',').count(), 13);
    }
}
