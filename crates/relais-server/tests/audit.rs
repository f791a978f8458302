//! The audit log as a compliance officer reads it: who (key or agent) read or changed a
//! contact's data, managed keys and agents, from where, with what outcome; nothing for an
//! unauthenticated request; no personal data copied into the log; queryable and exportable
//! as CSV by admins only.

mod support;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use std::net::SocketAddr;
use support::{call, respond, stepped};

/// A call from `peer`, through a proxy that says `forwarded`, by a named client.
async fn call_from(
    app: &axum::Router,
    token: &str,
    method: &str,
    uri: &str,
    peer: &str,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header("x-forwarded-for", "203.0.113.50")
        .header(header::USER_AGENT, "compliance-check/1.0")
        .body(Body::empty())
        .unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    let (status, value, _) = respond(app, req).await;
    (status, value)
}

async fn audit(app: &axum::Router, key: &str, query: &str) -> Vec<Value> {
    let (status, page) = call(app, key, "GET", &format!("/v1/audit?{query}"), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"].as_array().unwrap().clone()
}

fn actions(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn reads_and_changes_of_a_contact_are_recorded_with_who_where_and_the_outcome() {
    let s = stepped().await;
    let (status, reader) = s
        .call(
            "POST",
            "/v1/api-keys",
            Some(json!({"scopes": ["read"], "label": "crm-sync"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reader}");
    let reader_id = reader["id"].as_str().unwrap().to_owned();
    let reader_key = reader["api_key"].as_str().unwrap().to_owned();

    let (status, contact) = s
        .call(
            "POST",
            "/v1/contacts",
            Some(json!({"attributes": {"first_name": "Ana"},
                        "identities": [{"channel": "sms", "address": "+33612345678"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    let id = contact["id"].as_str().unwrap().to_owned();

    let (status, _) = call_from(
        &s.app,
        &reader_key,
        "GET",
        &format!("/v1/contacts/{id}"),
        "192.0.2.10:50000",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .call(
            "POST",
            &format!("/v1/contacts/{id}/consents"),
            Some(
                json!({"channel": "sms", "purpose": "marketing", "status": "opted_in",
                        "proof": "Oui, je veux les offres"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // A change the key may not make is recorded too, with its refusal.
    let (status, _) = call(
        &s.app,
        &reader_key,
        "POST",
        &format!("/v1/contacts/{id}/consents"),
        Some(json!({"purpose": "all", "status": "opted_out"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nobody to record: no entry.
    let (status, _, _) = respond(
        &s.app,
        Request::get(format!("/v1/contacts/{id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Removing an identity names the phone number in the path; the log must not keep it.
    let (status, body) = s
        .call(
            "DELETE",
            &format!("/v1/contacts/{id}/identities/sms/%2B33612345678"),
            None,
        )
        .await;
    assert!(status.is_success(), "{status} {body}");

    let about = audit(
        &s.app,
        &s.key,
        &format!("resource_kind=contact&resource_id={id}"),
    )
    .await;
    assert_eq!(
        actions(&about),
        [
            "contact.read",
            "consent.change",
            "consent.change",
            "identity.remove"
        ]
    );
    let read = &about[0];
    assert_eq!(read["actor_kind"], "key");
    assert_eq!(read["actor_id"], reader_id.as_str());
    assert_eq!(read["status"], 200);
    assert_eq!(read["source_ip"], "192.0.2.10");
    assert_eq!(read["forwarded_for"], "203.0.113.50");
    assert_eq!(read["user_agent"], "compliance-check/1.0");
    assert_eq!(read["method"], "GET");
    assert_eq!(read["path"], "/v1/contacts/{id}");
    assert_eq!(about[1]["status"], 201);
    assert_ne!(about[1]["actor_id"], reader_id.as_str());
    assert_eq!(about[2]["actor_id"], reader_id.as_str());
    assert_eq!(about[2]["status"], 403);
    assert_eq!(
        about[3]["path"],
        "/v1/contacts/{id}/identities/{channel}/{address}"
    );

    // Key management and the contact's creation are there as well, in order.
    let everything = audit(&s.app, &s.key, "limit=1000").await;
    let all = actions(&everything);
    assert_eq!(&all[..2], ["key.create", "contact.create"], "{all:?}");
    assert_eq!(
        everything.len(),
        all.iter().filter(|a| **a != "audit.read").count() + 1,
        "only this query's own read so far: {all:?}"
    );
    let log = serde_json::to_string(&everything).unwrap();
    assert!(
        !log.contains("33612345678"),
        "a phone number in the log: {log}"
    );
    assert!(!log.contains("Ana"), "a name in the log: {log}");
}

#[tokio::test]
async fn an_agents_reads_are_theirs_and_only_admins_read_the_log() {
    let s = stepped().await;
    let (status, agent) = s
        .call(
            "POST",
            "/v1/agents",
            Some(json!({"email": "lea@example.com", "name": "Léa", "password": "correct horse battery",
                        "teams": [], "capacity": 3})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    let agent_id = agent["id"].as_str().unwrap().to_owned();
    let (status, session) = call(
        &s.app,
        "",
        "POST",
        "/v1/auth/login",
        Some(json!({"email": "lea@example.com", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let token = session["token"].as_str().unwrap().to_owned();
    let (_, contact) = s
        .call("POST", "/v1/contacts", Some(json!({"attributes": {}})))
        .await;
    let id = contact["id"].as_str().unwrap();
    let (status, _) = call(&s.app, &token, "GET", &format!("/v1/contacts/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    // An agent is no admin: the log is refused, and the attempt recorded.
    let (status, _) = call(&s.app, &token, "GET", "/v1/audit", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let by_agent = audit(&s.app, &s.key, &format!("actor={agent_id}")).await;
    assert_eq!(actions(&by_agent), ["contact.read", "audit.read"]);
    assert!(by_agent.iter().all(|e| e["actor_kind"] == "agent"));
    assert_eq!(by_agent[1]["status"], 403);
    let created = audit(&s.app, &s.key, "action=agent.create").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["status"], 201);
}

#[tokio::test]
async fn the_log_exports_as_csv_and_bad_filters_are_refused() {
    let s = stepped().await;
    for _ in 0..3 {
        let (status, _) = s
            .call("POST", "/v1/contacts", Some(json!({"attributes": {}})))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, body, content_type) = respond(
        &s.app,
        Request::get("/v1/audit?format=csv&action=contact.create")
            .header(header::AUTHORIZATION, format!("Bearer {}", s.key))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let csv = body.as_str().unwrap();
    let lines: Vec<_> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("id,at,actor_kind,actor_id,action"));
    assert!(lines[1..].iter().all(|l| l.contains(",contact.create,")));

    // Pages follow each other.
    let (_, first) = s.call("GET", "/v1/audit?limit=2", None).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = s
        .call("GET", &format!("/v1/audit?limit=2&cursor={cursor}"), None)
        .await;
    assert_ne!(first["data"][0]["id"], second["data"][0]["id"]);

    for (query, parameter) in [
        ("action=contact.steal", "action"),
        ("since=yesterday", "since"),
        ("format=xml", "format"),
        ("limit=0", "limit"),
    ] {
        let (status, problem) = s.call("GET", &format!("/v1/audit?{query}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(parameter),
            "{query}: {problem}"
        );
    }
}
