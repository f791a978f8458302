//! Conformance of [`crate::AuditStore`]: entries read back as written, in order, filtered,
//! paged and kept within their tenant.

use super::{secs, t0};
use crate::{AuditEntry, AuditQuery, PageRequest, Store};
use relais_core::audit::{ActorKind, AuditAction};

fn entry(tenant: &str, n: u32, actor: &str, action: AuditAction, contact: &str) -> AuditEntry {
    AuditEntry {
        // UUIDv7-like ids that sort in the order written.
        id: format!("0190a000-0000-7000-8000-{n:012}"),
        tenant_id: tenant.to_owned(),
        at: secs(i64::from(n)),
        actor_kind: ActorKind::Key,
        actor_id: actor.to_owned(),
        action,
        resource_kind: Some("contact".to_owned()),
        resource_id: Some(contact.to_owned()),
        status: 200,
        source_ip: Some("192.0.2.7".to_owned()),
        forwarded_for: None,
        user_agent: Some("curl/8".to_owned()),
        method: Some("GET".to_owned()),
        path: Some("/v1/contacts/{id}".to_owned()),
    }
}

pub async fn audit_entries_are_read_back_in_order_filtered_and_paged_within_their_tenant(
    store: &dyn Store,
) {
    let acme = store.create_tenant("acme", t0()).await.unwrap();
    let globex = store.create_tenant("globex", t0()).await.unwrap();
    let written = vec![
        entry(&acme.id, 1, "key-a", AuditAction::ContactRead, "c1"),
        entry(&acme.id, 2, "key-b", AuditAction::ContactExport, "c1"),
        entry(&acme.id, 3, "key-a", AuditAction::ConsentChange, "c2"),
        entry(&acme.id, 4, "key-a", AuditAction::ContactRead, "c2"),
    ];
    for e in &written {
        store.append_audit(e).await.unwrap();
    }
    let mut other = entry(&globex.id, 5, "key-g", AuditAction::ContactRead, "c1");
    other.forwarded_for = Some("203.0.113.9".to_owned());
    store.append_audit(&other).await.unwrap();

    let all = |limit| PageRequest { after: None, limit };
    let everything = store
        .audit_entries(&acme.id, &AuditQuery::default(), &all(100))
        .await
        .unwrap();
    assert_eq!(everything.data, written, "oldest first, as written");
    assert_eq!(everything.next_cursor, None);

    // Pages of two follow each other without a gap or a repeat.
    let first = store
        .audit_entries(&acme.id, &AuditQuery::default(), &all(2))
        .await
        .unwrap();
    assert_eq!(first.data, written[..2]);
    let second = store
        .audit_entries(
            &acme.id,
            &AuditQuery::default(),
            &PageRequest {
                after: first.next_cursor.clone(),
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(second.data, written[2..]);
    assert_eq!(second.next_cursor, None);

    let ids = |page: crate::Page<AuditEntry>| -> Vec<String> {
        page.data.into_iter().map(|e| e.id).collect()
    };
    let of_c1 = AuditQuery {
        resource_kind: Some("contact".into()),
        resource_id: Some("c1".into()),
        ..AuditQuery::default()
    };
    assert_eq!(
        ids(store
            .audit_entries(&acme.id, &of_c1, &all(100))
            .await
            .unwrap()),
        [written[0].id.clone(), written[1].id.clone()]
    );
    let reads_by_a = AuditQuery {
        actor_id: Some("key-a".into()),
        action: Some(AuditAction::ContactRead),
        ..AuditQuery::default()
    };
    assert_eq!(
        ids(store
            .audit_entries(&acme.id, &reads_by_a, &all(100))
            .await
            .unwrap()),
        [written[0].id.clone(), written[3].id.clone()]
    );
    let between = AuditQuery {
        since: Some(secs(2)),
        until: Some(secs(4)),
        ..AuditQuery::default()
    };
    assert_eq!(
        ids(store
            .audit_entries(&acme.id, &between, &all(100))
            .await
            .unwrap()),
        [written[1].id.clone(), written[2].id.clone()]
    );

    // The other tenant sees its own entry only.
    let theirs = store
        .audit_entries(&globex.id, &AuditQuery::default(), &all(100))
        .await
        .unwrap();
    assert_eq!(theirs.data, [other]);
}

/// An entry for the backends' own check that the table refuses changes (`tests/*.rs`).
pub fn an_erasure_entry(tenant: &str) -> AuditEntry {
    let mut e = entry(tenant, 1, "key-1", AuditAction::ContactErase, "c1");
    e.at = jiff::Timestamp::now();
    e
}

/// Statements that would rewrite the log; each must be refused with "append-only".
pub const AUDIT_REWRITES: [&str; 2] = [
    "UPDATE audit_log SET actor_id = 'someone-else'",
    "DELETE FROM audit_log",
];
