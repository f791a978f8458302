//! GDPR over the API: a contact's export as JSON and as a zip of CSVs, their erasure, the
//! block on re-creating them without a fresh opt-in, another tenant's contact answered as
//! unknown, and the retention policy purging old message bodies.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use jiff::SignedDuration;
use relais_core::clock::{Clock, ManualClock};
use relais_engine::dispatch::Dispatcher;
use relais_engine::sim::SimConfig;
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;

const PHONE: &str = "+33698765432";
const EMAIL: &str = "zoelle.quibbleton@example.org";

struct Server {
    app: axum::Router,
    key: String,
    clock: Arc<ManualClock>,
    dispatcher: Dispatcher,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let clock = Arc::new(ManualClock::new("2026-11-18T12:00:00Z".parse().unwrap()));
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let settings = HttpSettings {
        default_country: Some(phonenumber::country::Id::FR),
        ..Default::default()
    };
    let state = AppState::new(store.clone(), clock.clone(), settings, None);
    let dispatcher = support::sim_dispatcher(store.clone(), clock.clone(), SimConfig::default());
    Server {
        app: router(state),
        key: key.secret,
        clock,
        dispatcher,
        store,
        _dir: dir,
    }
}

impl Server {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        support::call(&self.app, &self.key, method, uri, body).await
    }

    /// Status, bytes and Content-Type of a GET with `accept`.
    async fn raw(&self, uri: &str, key: &str, accept: &str) -> (StatusCode, Vec<u8>, String) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let request = Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header(header::ACCEPT, accept)
            .body(Body::empty())
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, bytes.to_vec(), content_type)
    }

    async fn import(&self, csv: &str) -> Value {
        let request = Request::post("/v1/contacts/import")
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .header(header::CONTENT_TYPE, "text/csv")
            .body(Body::from(csv.to_owned()))
            .unwrap();
        let (status, summary, _) = support::respond(&self.app, request).await;
        assert_eq!(status, StatusCode::OK, "{summary}");
        summary
    }

    /// Sends a text to the contact's phone and lets the sim channel deliver it; its id.
    async fn send(&self, text: &str) -> String {
        let (status, accepted) = self
            .call(
                "POST",
                "/v1/messages",
                Some(json!({"to": PHONE, "content": {"text": text}})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        let id = accepted["id"].as_str().unwrap().to_owned();
        for _ in 0..50 {
            self.dispatcher.run_once().await.unwrap();
            let (_, message) = self.call("GET", &format!("/v1/messages/{id}"), None).await;
            if message["status"] == "delivered" || message["status"] == "sent" {
                return id;
            }
        }
        panic!("message {id} was not sent");
    }

    /// Zoé: a phone and an email, attributes, a consent with its proof, a message out and
    /// a reply in (her conversation). Her id.
    async fn zoe(&self) -> String {
        let (status, contact) = self
            .call(
                "POST",
                "/v1/contacts",
                Some(json!({
                    "attributes": {"first_name": "Zoelle", "crm_id": "CRM-7731-ZQ"},
                    "identities": [{"channel": "sms", "address": PHONE}, {"channel": "email", "address": EMAIL}],
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{contact}");
        let id = contact["id"].as_str().unwrap().to_owned();
        let (status, consent) = self
            .call(
                "POST",
                &format!("/v1/contacts/{id}/consents"),
                Some(json!({"purpose": "marketing", "status": "opted_in", "proof": "kiosk form ZQ-PROOF"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{consent}");
        self.send("Votre code ZQ-OUT-4471").await;
        let (status, reply) = self
            .call(
                "POST",
                &format!("/v1/sim/phones/{PHONE}/reply"),
                Some(json!({"text": "merci ZQ-IN-7788"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{reply}");
        id
    }

    /// A second tenant's admin key.
    async fn other_tenant(&self) -> String {
        let (status, tenant) = self
            .call("POST", "/v1/tenants", Some(json!({"name": "globex"})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{tenant}");
        tenant["api_key"].as_str().unwrap().to_owned()
    }
}

fn section<'a>(export: &'a Value, kind: &str) -> &'a Vec<Value> {
    export["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == kind)
        .and_then(|s| s["rows"].as_array())
        .unwrap_or_else(|| panic!("no section {kind} in {export}"))
}

#[tokio::test]
async fn a_contact_is_exported_as_json_and_as_a_zip_of_csvs_to_its_tenant_only() {
    let server = server().await;
    let zoe = server.zoe().await;
    let (status, export) = server
        .call("GET", &format!("/v1/contacts/{zoe}/export"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{export}");
    assert_eq!(export["contact_id"], zoe);
    assert_eq!(
        section(&export, "profile")[0]["attributes"]["crm_id"],
        "CRM-7731-ZQ"
    );
    assert_eq!(section(&export, "identities").len(), 2);
    assert_eq!(
        section(&export, "consents")[0]["proof"],
        "kiosk form ZQ-PROOF"
    );
    assert_eq!(
        section(&export, "messages_out")[0]["content"]["text"],
        "Votre code ZQ-OUT-4471"
    );
    assert_eq!(
        section(&export, "messages_in")[0]["text"],
        "merci ZQ-IN-7788"
    );
    assert_eq!(section(&export, "conversations").len(), 1);

    for (uri, accept) in [
        (format!("/v1/contacts/{zoe}/export?format=zip"), "*/*"),
        (format!("/v1/contacts/{zoe}/export"), "application/zip"),
    ] {
        let (status, bytes, content_type) = server.raw(&uri, &server.key, accept).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "application/zip");
        let entries = relais_engine::privacy::zip::read_stored(&bytes).expect("a readable zip");
        let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        for name in [
            "profile.csv",
            "consents.csv",
            "messages_out.csv",
            "messages_in.csv",
            "export.json",
        ] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        let csv = |name: &str| {
            let (_, bytes) = entries.iter().find(|(n, _)| n == name).unwrap();
            String::from_utf8(bytes.clone()).unwrap()
        };
        let header = csv("messages_out.csv").lines().next().unwrap().to_owned();
        for column in [
            "id",
            "channel",
            "to_address",
            "content",
            "status",
            "created_at",
        ] {
            assert!(
                header.split(',').any(|c| c == column),
                "{column} in {header}"
            );
        }
        assert!(csv("messages_out.csv").contains("ZQ-OUT-4471"));
        assert!(csv("messages_in.csv").contains("merci ZQ-IN-7788"));
        let json: Value =
            serde_json::from_slice(&entries.iter().find(|(n, _)| n == "export.json").unwrap().1)
                .unwrap();
        // Each export is recorded in the audit log, so a later one lists the earlier.
        assert_eq!(without_audit(&json), without_audit(&export));
        let audit = section(&json, "audit");
        assert!(
            audit.iter().any(|e| e["action"] == "contact.export"),
            "{audit:?}"
        );
    }

    let (status, bad) = server
        .call(
            "GET",
            &format!("/v1/contacts/{zoe}/export?format=xml"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");

    // Another tenant's key: the contact does not exist for it.
    let other = server.other_tenant().await;
    let (status, problem, content_type) = server
        .raw(
            &format!("/v1/contacts/{zoe}/export"),
            &other,
            "application/json",
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(content_type, "application/problem+json");
    let problem: Value = serde_json::from_slice(&problem).unwrap();
    assert_eq!(problem["status"], 404);
    let (status, _) = server.call("GET", "/v1/contacts/nobody/export", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_erased_contact_comes_back_only_with_a_fresh_opt_in() {
    let server = server().await;
    let zoe = server.zoe().await;
    let other = server.other_tenant().await;

    // Another tenant, an unknown contact: 404, nothing changes.
    let (status, _) = support::call(
        &server.app,
        &other,
        "POST",
        &format!("/v1/contacts/{zoe}/erase"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, problem) = server.call("POST", "/v1/contacts/nobody/erase", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    assert_eq!(problem["status"], 404);
    let (status, _) = server
        .call("GET", &format!("/v1/contacts/{zoe}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "still there");

    let (status, report) = server
        .call("POST", &format!("/v1/contacts/{zoe}/erase"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["suppressed_addresses"], 2);
    assert_eq!(report["anonymised"]["messages"], 1);
    let traces = server
        .store
        .find_traces(&[
            PHONE.into(),
            EMAIL.into(),
            "Zoelle".into(),
            "ZQ-".into(),
            zoe.clone(),
        ])
        .await
        .unwrap();
    // One trace is kept on purpose: the audit log's record of who read, exported and
    // erased the contact, by the contact's former id, which nothing else names any more
    // (docs/privacy.md). No address, name or content of theirs is in it.
    let places: Vec<_> = traces
        .iter()
        .map(|t| (t.table.as_str(), t.column.as_str(), t.needle.as_str()))
        .collect();
    assert_eq!(
        places,
        [("audit_log", "resource_id", zoe.as_str())],
        "{traces:#?}"
    );
    let (_, audit) = server
        .call("GET", &format!("/v1/audit?resource_id={zoe}"), None)
        .await;
    let actions: Vec<_> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.ends_with(&["contact.read", "contact.erase"]),
        "{actions:?}"
    );
    for uri in [
        format!("/v1/contacts/{zoe}"),
        format!("/v1/contacts/{zoe}/export"),
    ] {
        let (status, _) = server.call("GET", &uri, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
    let (status, _) = server
        .call("POST", &format!("/v1/contacts/{zoe}/erase"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "erased once");
    // Counts stay: the message is still there, its body gone.
    let (_, page) = server.call("GET", "/v1/messages", None).await;
    let messages = page["data"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{page}");

    // Created again without an opt-in: refused, nothing created.
    let (status, problem) = server
        .call(
            "POST",
            "/v1/contacts",
            Some(json!({"identities": [{"channel": "sms", "address": "06 98 76 54 32"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["type"].as_str().unwrap().ends_with("/erased"),
        "{problem}"
    );
    let summary = server
        .import(&format!("phone,first_name\n{PHONE},Zoelle\n"))
        .await;
    assert_eq!(
        (summary["created"].as_u64(), summary["rejected"].as_u64()),
        (Some(0), Some(1))
    );
    assert!(
        summary["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("erased"),
        "{summary}"
    );
    // An opt-in without its proof is not one.
    let summary = server
        .import(&format!("phone,consent:marketing\n{PHONE},opted_in\n"))
        .await;
    assert_eq!(summary["rejected"], 1, "{summary}");
    let (_, list) = server
        .call("GET", &format!("/v1/contacts?identity={PHONE}"), None)
        .await;
    assert_eq!(list["data"], json!([]), "nothing was created: {list}");

    // With a fresh opt-in and its proof, she comes back (by import, and by the API).
    let summary = server
        .import(&format!(
            "phone,consent:marketing,opt_in_proof\n{PHONE},opted_in,web form 2026-11-20\n"
        ))
        .await;
    assert_eq!(summary["created"], 1, "{summary}");
    let (status, problem) = server
        .call(
            "POST",
            "/v1/contacts",
            Some(
                json!({"identities": [{"channel": "email", "address": EMAIL}],
                        "opt_in": {"purpose": "marketing", "proof": " "}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, again) = server
        .call(
            "POST",
            "/v1/contacts",
            Some(json!({"identities": [{"channel": "email", "address": EMAIL}],
                        "opt_in": {"purpose": "marketing", "channel": "email", "proof": "newsletter sign-up, 2026-11-20"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    let id = again["id"].as_str().unwrap();
    let (_, consents) = server
        .call("GET", &format!("/v1/contacts/{id}/consents"), None)
        .await;
    assert!(
        consents
            .to_string()
            .contains("newsletter sign-up, 2026-11-20"),
        "{consents}"
    );
}

#[tokio::test]
async fn old_message_bodies_are_purged_by_the_tenants_retention_and_counted() {
    let server = server().await;
    server.zoe().await;
    let old = server.send("old ZQ-OLD").await;
    server.clock.advance(SignedDuration::from_hours(24 * 40));
    let new = server.send("new ZQ-NEW").await;

    let (status, nothing) = server
        .call("POST", "/v1/privacy/retention/sweep", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{nothing}");
    assert_eq!(nothing["policy"]["outbound_bodies_days"], Value::Null);
    assert_eq!(
        nothing["last_sweep"],
        Value::Null,
        "the default keeps everything"
    );

    let (status, refused) = server
        .call(
            "PATCH",
            "/v1/settings",
            Some(json!({"retention": {"outbound_bodies_days": 0}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let (status, settings) = server
        .call(
            "PATCH",
            "/v1/settings",
            Some(json!({"retention": {"outbound_bodies_days": 30, "inbound_content_days": 30}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["retention"]["outbound_bodies_days"], 30);

    let (status, swept) = server
        .call("POST", "/v1/privacy/retention/sweep", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{swept}");
    // The two messages of 40 days ago (Zoé's first and `old`) and her reply.
    assert_eq!(swept["last_sweep"]["outbound_bodies"], 2, "{swept}");
    assert_eq!(swept["last_sweep"]["inbound_contents"], 1, "{swept}");
    assert_eq!(swept["last_sweep"]["attachments"], 0);
    let (_, status_read) = server.call("GET", "/v1/privacy/retention", None).await;
    assert_eq!(status_read, swept);
    for (id, text) in [(old, "[erased]"), (new, "new ZQ-NEW")] {
        let (_, message) = server
            .call("GET", &format!("/v1/messages/{id}"), None)
            .await;
        assert_eq!(message["content"]["text"], text, "{message}");
    }
}

/// An export but its `audit` section (which grows with each export).
fn without_audit(export: &Value) -> Value {
    let mut export = export.clone();
    if let Some(sections) = export["sections"].as_array_mut() {
        sections.retain(|s| s["kind"] != "audit");
    }
    export
}
