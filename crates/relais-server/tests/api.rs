//! The HTTP API as a client sees it: auth, tenant isolation, problem+json, contacts,
//! consent, merge and import.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use relais_core::clock::{Clock, ManualClock};
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;

struct Api {
    app: axum::Router,
    operator: String,
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let clock = Arc::new(ManualClock::new(
        jiff::Timestamp::from_second(1_790_000_000).unwrap(),
    ));
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let settings = HttpSettings {
        json_body_limit: 16 * 1024,
        import_body_limit: 64 * 1024,
        default_country: Some(phonenumber::country::Id::FR),
        ..Default::default()
    };
    let state = AppState::new(store.clone(), clock, settings, None);
    Api {
        app: router(state),
        operator: key.secret,
        _dir: dir,
        store,
    }
}

impl Api {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        key: Option<&str>,
        body: Option<Body>,
        content_type: &str,
    ) -> (StatusCode, Value, String) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(k) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let has_body = body.is_some();
        if has_body {
            req = req.header(header::CONTENT_TYPE, content_type);
        }
        support::respond(
            &self.app,
            req.body(body.unwrap_or_else(Body::empty)).unwrap(),
        )
        .await
    }
    async fn json(&self, method: &str, uri: &str, key: &str, body: Value) -> (StatusCode, Value) {
        let (s, v, _) = self
            .call(
                method,
                uri,
                Some(key),
                Some(Body::from(body.to_string())),
                "application/json",
            )
            .await;
        (s, v)
    }
    async fn get(&self, uri: &str, key: &str) -> (StatusCode, Value) {
        let (s, v, _) = self.call("GET", uri, Some(key), None, "").await;
        (s, v)
    }
    /// Any request as the operator, `Content-Type` only when given; the answer's status,
    /// headers and body.
    async fn raw(
        &self,
        method: &str,
        uri: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.operator));
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(body.into()).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        (parts.status, parts.headers, value)
    }
}

/// The answer is RFC 9457 problem+json with this status.
fn assert_problem(
    (status, headers, body): &(StatusCode, axum::http::HeaderMap, Value),
    expected: StatusCode,
) {
    assert_eq!(*status, expected, "{body}");
    assert_eq!(
        headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap()),
        Some("application/problem+json"),
        "{body}"
    );
    assert_eq!(body["status"], expected.as_u16(), "{body}");
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("https://relais.dev/problems/")
    );
    assert!(!body["detail"].as_str().unwrap().is_empty(), "{body}");
}

#[tokio::test]
async fn requests_without_a_valid_key_are_refused_with_problem_json() {
    let api = api().await;
    let (status, body, ct) = api.call("GET", "/v1/contacts", None, None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(ct, "application/problem+json");
    assert_eq!(body["status"], 401);
    assert!(body["detail"].as_str().unwrap().contains("Authorization"));
    let (status, _, _) = api
        .call("GET", "/v1/contacts", Some("rl_not_a_key"), None, "")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = api.call("GET", "/healthz", None, None, "").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_tenant_key_never_reaches_another_tenant() {
    let api = api().await;
    let (s, a) = api
        .json(
            "POST",
            "/v1/tenants",
            &api.operator,
            json!({"name": "acme"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let (s, b) = api
        .json(
            "POST",
            "/v1/tenants",
            &api.operator,
            json!({"name": "globex"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (key_a, key_b) = (
        a["api_key"].as_str().unwrap(),
        b["api_key"].as_str().unwrap(),
    );
    // A tenant admin is not an operator.
    let (s, _) = api
        .json("POST", "/v1/tenants", key_a, json!({"name": "evil"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, c) = api
        .json("POST", "/v1/contacts", key_a, json!({"attributes": {"first_name": "Ana"}, "identities": [{"channel": "sms", "address": "06 12 34 56 78"}]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let id = c["id"].as_str().unwrap();
    assert_eq!(c["identities"][0]["address"], "+33612345678");

    for (method, uri, body) in [
        ("GET", format!("/v1/contacts/{id}"), None),
        (
            "PATCH",
            format!("/v1/contacts/{id}"),
            Some(json!({"attributes": {"first_name": "Mallory"}})),
        ),
        ("DELETE", format!("/v1/contacts/{id}"), None),
        ("GET", format!("/v1/contacts/{id}/consents"), None),
        (
            "POST",
            format!("/v1/contacts/{id}/consents"),
            Some(json!({"purpose": "all", "status": "opted_out"})),
        ),
        (
            "POST",
            format!("/v1/contacts/{id}/identities"),
            Some(json!({"channel": "email", "address": "m@evil.com"})),
        ),
    ] {
        let (s, v, _) = api
            .call(
                method,
                &uri,
                Some(key_b),
                body.map(|b| Body::from(b.to_string())),
                "application/json",
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {uri}: {v}");
    }
    let (_, list) = api.get("/v1/contacts", key_b).await;
    assert_eq!(list["data"], json!([]));
    let (_, found) = api.get("/v1/contacts?identity=0612345678", key_b).await;
    assert_eq!(found["data"], json!([]));
    // Globex may know the same person separately.
    let (s, _) = api
        .json(
            "POST",
            "/v1/contacts",
            key_b,
            json!({"identities": [{"channel": "sms", "address": "+33612345678"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // Acme's contact is untouched.
    let (_, again) = api.get(&format!("/v1/contacts/{id}"), key_a).await;
    assert_eq!(again["attributes"]["first_name"], "Ana");
    assert_eq!(again["identities"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let api = api().await;
    let key = &api.operator;
    let (s, v, ct) = api
        .call(
            "POST",
            "/v1/contacts",
            Some(key),
            Some(Body::from("{\"identities\": [")),
            "application/json",
        )
        .await;
    assert_eq!(
        (s, ct.as_str()),
        (StatusCode::BAD_REQUEST, "application/problem+json")
    );
    assert!(
        v["detail"].as_str().unwrap().contains("malformed JSON"),
        "{v}"
    );

    let (s, v) = api
        .json(
            "POST",
            "/v1/contacts",
            key,
            json!({"identities": [{"channel": "sms", "address": "+33 6 12"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["pointer"], "/identities/0/address", "{v}");

    let (s, v) = api
        .json(
            "POST",
            "/v1/contacts",
            key,
            json!({"identities": [{"channel": "pigeon", "address": "x"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["pointer"], "/identities/0/channel", "{v}");

    let (s, v) = api
        .json(
            "POST",
            "/v1/contacts",
            key,
            json!({"timezone": "Mars/Olympus"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["pointer"], "/timezone");

    let (s, v) = api
        .json("POST", "/v1/contacts", key, json!({"nickname": "x"}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("nickname"));

    let big = json!({"attributes": {"blob": "x".repeat(20_000)}});
    let (s, v) = api.json("POST", "/v1/contacts", key, big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");

    let (s, _, _) = api
        .call(
            "POST",
            "/v1/contacts",
            Some(key),
            Some(Body::from("a=b")),
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let (_, list) = api.get("/v1/contacts", key).await;
    assert_eq!(list["data"], json!([]), "nothing was created");
}

#[tokio::test]
async fn keys_carry_scopes() {
    let api = api().await;
    let (s, k) = api
        .json(
            "POST",
            "/v1/api-keys",
            &api.operator,
            json!({"scopes": ["read"], "label": "dashboard"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let read = k["api_key"].as_str().unwrap();
    let (s, _) = api.get("/v1/contacts", read).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = api.json("POST", "/v1/contacts", read, json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(v["detail"].as_str().unwrap().contains("send"));
    let (s, _) = api
        .json(
            "POST",
            "/v1/api-keys",
            &api.operator,
            json!({"scopes": ["operator"]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn consent_is_recorded_and_the_decision_explains_itself() {
    let api = api().await;
    let key = &api.operator;
    let (_, c) = api
        .json(
            "POST",
            "/v1/contacts",
            key,
            json!({"identities": [{"channel": "sms", "address": "+33612345678"}]}),
        )
        .await;
    let id = c["id"].as_str().unwrap();
    let (_, d) = api
        .get(
            &format!("/v1/contacts/{id}/consents/decision?channel=sms&purpose=marketing"),
            key,
        )
        .await;
    assert_eq!(d["allowed"], false);
    assert_eq!(d["code"], "no_opt_in");
    let (s, r) = api
        .json("POST", &format!("/v1/contacts/{id}/consents"), key, json!({"channel": "sms", "purpose": "marketing", "status": "opted_in", "proof": "Oui, je veux les offres"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let (_, d) = api
        .get(
            &format!("/v1/contacts/{id}/consents/decision?channel=sms&purpose=marketing"),
            key,
        )
        .await;
    assert_eq!(d["allowed"], true);
    assert!(d["explanation"].as_str().unwrap().contains("opted in"));
    let (_, d) = api
        .get(
            &format!("/v1/contacts/{id}/consents/decision?channel=whatsapp&purpose=marketing"),
            key,
        )
        .await;
    assert_eq!(d["allowed"], false);
    api.json(
        "POST",
        &format!("/v1/contacts/{id}/consents"),
        key,
        json!({"purpose": "all", "status": "opted_out", "source": "keyword", "proof": "STOP"}),
    )
    .await;
    let (_, d) = api
        .get(
            &format!("/v1/contacts/{id}/consents/decision?channel=sms&purpose=transactional"),
            key,
        )
        .await;
    assert_eq!(d["allowed"], false);
    assert_eq!(d["code"], "opted_out");
    let (_, ledger) = api.get(&format!("/v1/contacts/{id}/consents"), key).await;
    assert_eq!(ledger["history"].as_array().unwrap().len(), 2);
    assert_eq!(ledger["history"][0]["proof"], "Oui, je veux les offres");
    let (s, v) = api
        .json(
            "POST",
            &format!("/v1/contacts/{id}/consents"),
            key,
            json!({"purpose": "Big Promo", "status": "opted_in"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["pointer"], "/purpose");
}

#[tokio::test]
async fn merging_two_contacts_keeps_one_with_everything() {
    let api = api().await;
    let key = &api.operator;
    let (_, a) = api.json("POST", "/v1/contacts", key, json!({"attributes": {"first_name": "Ana"}, "identities": [{"channel": "sms", "address": "+33612345678"}]})).await;
    let (_, b) = api.json("POST", "/v1/contacts", key, json!({"attributes": {"city": "Lyon"}, "identities": [{"channel": "email", "address": "ana@example.com"}]})).await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let (s, merged) = api
        .json(
            "POST",
            &format!("/v1/contacts/{a}/merge"),
            key,
            json!({"contact_id": b}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{merged}");
    assert_eq!(merged["identities"].as_array().unwrap().len(), 2);
    assert_eq!(
        merged["attributes"],
        json!({"first_name": "Ana", "city": "Lyon"})
    );
    let (s, _) = api.get(&format!("/v1/contacts/{b}"), key).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, merges) = api.get(&format!("/v1/contacts/{a}/merges"), key).await;
    assert_eq!(merges[0]["merged_id"], b);
    assert_eq!(merges[0]["cause"], json!({"type": "api"}));
    let (_, found) = api.get("/v1/contacts?identity=ana@example.com", key).await;
    assert_eq!(found["data"][0]["id"], a);
}

#[tokio::test]
async fn csv_import_over_http_reports_each_rejected_row() {
    let api = api().await;
    let key = &api.operator;
    let csv = "phone,first_name,consent:marketing\n06 12 34 56 78,Ana,yes\nnot-a-number,Bob,\n0033 7 81 23 45 67,Chloé,no\n";
    let (s, v, _) = api
        .call(
            "POST",
            "/v1/contacts/import",
            Some(key),
            Some(Body::from(csv)),
            "text/csv",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["created"].as_u64(), v["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(v["errors"][0]["line"], 3);
    let (_, found) = api.get("/v1/contacts?identity=%2B33781234567", key).await;
    assert_eq!(found["data"][0]["attributes"]["first_name"], "Chloé");
    let (s, _, _) = api
        .call(
            "POST",
            "/v1/contacts/import",
            Some(key),
            Some(Body::from("name\nx\n")),
            "text/csv",
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let huge = format!("phone\n{}", "+33612345678\n".repeat(10_000));
    let (s, _, _) = api
        .call(
            "POST",
            "/v1/contacts/import",
            Some(key),
            Some(Body::from(huge)),
            "text/csv",
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let _ = &api.store;
}

#[tokio::test]
async fn pages_use_cursors_and_openapi_describes_the_api() {
    let api = api().await;
    let key = &api.operator;
    for i in 0..7 {
        api.json("POST", "/v1/contacts", key, json!({"attributes": {"n": i}}))
            .await;
    }
    let (_, p1) = api.get("/v1/contacts?limit=5", key).await;
    assert_eq!(p1["data"].as_array().unwrap().len(), 5);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = api
        .get(&format!("/v1/contacts?limit=5&cursor={cursor}"), key)
        .await;
    assert_eq!(p2["data"].as_array().unwrap().len(), 2);
    assert!(p2["next_cursor"].is_null());
    let (s, spec, _) = api.call("GET", "/openapi.json", None, None, "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(spec["paths"]["/v1/contacts"]["post"].is_object());
    assert!(spec["paths"]["/v1/contacts/{id}/consents/decision"]["get"].is_object());
    let (s, html, _) = api.call("GET", "/docs", None, None, "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.as_str().unwrap().contains("/openapi.json"));
    let (s, seg) = api
        .json(
            "POST",
            "/v1/tools/sms-segments",
            key,
            json!({"text": "Hello ☺"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(seg["encoding"], "ucs2");
}

const A_MESSAGE: &str = r#"{"to": "+33612345678", "content": {"text": "Bonjour"}}"#;

#[tokio::test]
async fn a_body_not_labelled_json_is_refused_with_415_and_nothing_is_sent() {
    let api = api().await;
    for uri in ["/v1/messages", "/v1/messages/batch", "/v1/contacts"] {
        let body = if uri.ends_with("batch") {
            format!(r#"{{"messages": [{A_MESSAGE}]}}"#)
        } else {
            A_MESSAGE.replace("+33612345678", "+33612345670")
        };
        for content_type in [
            Some("text/plain"),
            None,
            Some("application/x-www-form-urlencoded"),
        ] {
            let answer = api.raw("POST", uri, content_type, body.clone()).await;
            assert_problem(&answer, StatusCode::UNSUPPORTED_MEDIA_TYPE);
            assert!(
                answer.2["detail"]
                    .as_str()
                    .unwrap()
                    .contains("application/json"),
                "{}",
                answer.2
            );
        }
    }
    let (_, list) = api.get("/v1/contacts", &api.operator).await;
    assert_eq!(list["data"], json!([]), "no contact was created");
    let (_, phone) = api
        .get("/v1/sim/phones/+33612345678/messages", &api.operator)
        .await;
    assert_eq!(phone["messages"], json!([]), "no message was accepted");
    // Labelled JSON (with parameters, or a +json type), it is accepted.
    let (s, _, v) = api
        .raw(
            "POST",
            "/v1/messages",
            Some("application/json; charset=utf-8"),
            A_MESSAGE,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    // A request without a body needs no Content-Type.
    let id = v["id"].as_str().unwrap();
    let (s, _, v) = api
        .raw(
            "POST",
            &format!("/v1/messages/{id}/cancel"),
            None,
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn text_after_the_json_value_is_refused() {
    let api = api().await;
    for (uri, body) in [
        ("/v1/messages", format!("{A_MESSAGE} garbage")),
        ("/v1/messages", format!("{A_MESSAGE}{A_MESSAGE}")),
        (
            "/v1/messages/batch",
            format!(r#"{{"messages": [{A_MESSAGE}]}} ]"#),
        ),
        ("/v1/contacts", r#"{"attributes": {}} {}"#.to_owned()),
    ] {
        let answer = api.raw("POST", uri, Some("application/json"), body).await;
        assert_problem(&answer, StatusCode::BAD_REQUEST);
        assert!(
            answer.2["detail"].as_str().unwrap().contains("trailing"),
            "{uri}: {}",
            answer.2
        );
    }
    let (_, phone) = api
        .get("/v1/sim/phones/+33612345678/messages", &api.operator)
        .await;
    assert_eq!(phone["messages"], json!([]));
    // Whitespace after the value is not text.
    let (s, _, v) = api
        .raw(
            "POST",
            "/v1/messages",
            Some("application/json"),
            format!("{A_MESSAGE} \n"),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
}

#[tokio::test]
async fn a_body_over_the_limit_gets_a_413_problem() {
    let api = api().await;
    // This server takes 16 KiB of JSON; the batch route has a larger limit of its own.
    let padding = "x".repeat(12 * 1024 * 1024);
    let big = format!(r#"{{"to": "+33612345678", "content": {{"text": "{padding}"}}}}"#);
    let answer = api
        .raw("POST", "/v1/messages", Some("application/json"), big)
        .await;
    assert_problem(&answer, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        answer.2["type"],
        "https://relais.dev/problems/payload-too-large"
    );
    let items = vec![A_MESSAGE; 400].join(",");
    let batch = format!(r#"{{"messages": [{items}]}}"#);
    assert!(batch.len() > 16 * 1024);
    let (s, _, v) = api
        .raw(
            "POST",
            "/v1/messages/batch",
            Some("application/json"),
            batch,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let answer = api
        .raw(
            "POST",
            "/v1/contacts",
            Some("application/json"),
            "[".repeat(20_000),
        )
        .await;
    assert_problem(&answer, StatusCode::PAYLOAD_TOO_LARGE);
    let huge = format!("phone\n{}", "+33612345678\n".repeat(10_000));
    let answer = api
        .raw("POST", "/v1/contacts/import", Some("text/csv"), huge)
        .await;
    assert_problem(&answer, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_bad_query_parameter_gets_a_400_naming_it() {
    let api = api().await;
    for (uri, parameter) in [
        ("/v1/contacts?limit=-1", "limit"),
        ("/v1/contacts?limit=abc", "limit"),
        ("/v1/contacts?limit=0", "limit"),
        ("/v1/contacts?channel=pigeon&identity=x", "channel"),
        ("/v1/inbound?limit=-1", "limit"),
        ("/v1/channels/some-id?force=maybe", "force"),
    ] {
        let method = if uri.starts_with("/v1/channels") {
            "DELETE"
        } else {
            "GET"
        };
        let answer = api.raw(method, uri, None, Body::empty()).await;
        assert_problem(&answer, StatusCode::BAD_REQUEST);
        assert!(
            answer.2["detail"].as_str().unwrap().contains(parameter),
            "{uri}: {}",
            answer.2
        );
    }
    let answer = api
        .raw("GET", "/v1/contacts?limit=-1", None, Body::empty())
        .await;
    assert_eq!(answer.2["parameter"], "limit");
}

#[tokio::test]
async fn a_forged_cursor_is_refused() {
    let api = api().await;
    let key = &api.operator;
    for i in 0..3 {
        api.json("POST", "/v1/contacts", key, json!({"attributes": {"n": i}}))
            .await;
    }
    for uri in [
        "/v1/contacts?cursor=zzz",
        "/v1/contacts?limit=1&cursor=%27%20OR%201%3D1",
        "/v1/contacts?cursor=",
        "/v1/inbound?cursor=not-a-cursor",
    ] {
        let answer = api.raw("GET", uri, None, Body::empty()).await;
        assert_problem(&answer, StatusCode::BAD_REQUEST);
        assert_eq!(answer.2["parameter"], "cursor", "{uri}: {}", answer.2);
    }
    let (_, page) = api.get("/v1/contacts?limit=2", key).await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (s, rest) = api
        .get(&format!("/v1/contacts?limit=2&cursor={cursor}"), key)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn merges_of_an_unknown_contact_are_not_found() {
    let api = api().await;
    let answer = api
        .raw(
            "GET",
            "/v1/contacts/no-such-contact/merges",
            None,
            Body::empty(),
        )
        .await;
    assert_problem(&answer, StatusCode::NOT_FOUND);
    assert!(
        answer.2["detail"]
            .as_str()
            .unwrap()
            .contains("no-such-contact")
    );
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_bad_paths_answer_problem_json() {
    let api = api().await;
    for uri in ["/v1/nope", "/nope", "/v1/contacts/x/y/z"] {
        let answer = api.raw("GET", uri, None, Body::empty()).await;
        assert_problem(&answer, StatusCode::NOT_FOUND);
    }
    let answer = api.raw("DELETE", "/v1/contacts", None, Body::empty()).await;
    assert_problem(&answer, StatusCode::METHOD_NOT_ALLOWED);
    let allow = answer.1.get(header::ALLOW).unwrap().to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let answer = api.raw("PUT", "/healthz", None, Body::empty()).await;
    assert_problem(&answer, StatusCode::METHOD_NOT_ALLOWED);
    // A path segment that is not UTF-8 once decoded.
    let answer = api
        .raw("GET", "/v1/contacts/%FF", None, Body::empty())
        .await;
    assert_problem(&answer, StatusCode::BAD_REQUEST);
    let answer = api.raw("GET", "/v1/inbound/%FF", None, Body::empty()).await;
    assert_problem(&answer, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_email_in_any_case_is_one_identity_and_a_taken_one_names_its_owner() {
    let api = api().await;
    let key = api.operator.clone();
    let (status, ana) = api
        .json(
            "POST",
            "/v1/contacts",
            &key,
            json!({"identities": [{"channel": "email", "address": "ana@example.com"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ana}");
    // Found however it is written.
    let (status, found) = api
        .get("/v1/contacts?identity=ANA%40Example.COM", &key)
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["data"][0]["id"], ana["id"], "{found}");
    // Another contact cannot take it in another case, and the 409 says whose it is.
    let (status, problem) = api
        .json(
            "POST",
            "/v1/contacts",
            &key,
            json!({"identities": [{"channel": "email", "address": "ANA@example.com"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let owner = ana["id"].as_str().unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains(owner),
        "{problem}"
    );
    let (status, bob) = api
        .json(
            "POST",
            "/v1/contacts",
            &key,
            json!({"attributes": {"name": "Bob"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bob}");
    let (status, problem) = api
        .json(
            "POST",
            &format!("/v1/contacts/{}/identities", bob["id"].as_str().unwrap()),
            &key,
            json!({"channel": "email", "address": "Ana@Example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains(owner),
        "{problem}"
    );
}

#[tokio::test]
async fn the_model_settings_are_readable_without_their_key() {
    let api = api().await;
    let (s, k) = api
        .json(
            "POST",
            "/v1/api-keys",
            &api.operator,
            json!({"scopes": ["read"], "label": "console"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let read = k["api_key"].as_str().unwrap().to_owned();
    let (s, v) = api.get("/v1/nlu/llm", &read).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"configured": false})));

    let (s, v) = api
        .json(
            "PUT",
            "/v1/nlu/llm",
            &api.operator,
            json!({"base_url": "ftp://model", "model": "m"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (_, v) = api.get("/v1/nlu/llm", &read).await;
    assert_eq!(v["configured"], false, "a refused setting is not stored");

    let (s, v) = api
        .json(
            "PUT",
            "/v1/nlu/llm",
            &api.operator,
            json!({"base_url": "http://127.0.0.1:11434/v1", "model": "llama3.1", "api_key": "sk-secret"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = api.get("/v1/nlu/llm", &read).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["configured"], true);
    assert_eq!(v["model"], "llama3.1");
    assert_eq!(v["base_url"], "http://127.0.0.1:11434/v1");
    assert_eq!(v["api_key_set"], true);
    assert!(
        !v.to_string().contains("sk-secret"),
        "the key is never shown: {v}"
    );
}
