//! Outgoing webhooks over HTTP as a tenant and its receiver see them: where a webhook may
//! point, what reaches the receiver, and deleting a webhook.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use relais_core::clock::{Clock, ManualClock};
use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
use relais_engine::sim::SimConfig;
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_engine::webhooks::{Destinations, HttpPoster};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Api {
    app: axum::Router,
    key: String,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

/// A server whose tenants' webhooks may reach `destinations`.
async fn api(destinations: Destinations) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let clock = Arc::new(ManualClock::new("2026-11-21T10:00:00Z".parse().unwrap()));
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let settings = HttpSettings {
        webhook_destinations: destinations,
        ..Default::default()
    };
    let state = AppState::new(store.clone(), clock.clone(), settings, None);
    Api {
        app: router(state),
        key: key.secret,
        store,
        clock,
        _dir: dir,
    }
}

impl Api {
    async fn call_as(
        &self,
        key: &str,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, String) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"));
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        support::respond(&self.app, req.body(body).unwrap()).await
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (status, value, _) = self.call_as(&self.key, method, uri, body).await;
        (status, value)
    }

    async fn send_one(&self) {
        let (status, v) = self
            .call(
                "POST",
                "/v1/messages",
                Some(json!({"to": "+33612345678", "content": {"text": "Bonjour"}})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    }

    /// Runs the dispatcher until it is idle; its webhooks go out through a real HTTP
    /// client allowed `destinations`, or wait when there is none.
    async fn dispatch(&self, webhooks: Option<Destinations>) {
        let config = DispatcherConfig {
            lease_owner: "test".into(),
            ..Default::default()
        };
        let mut dispatcher =
            Dispatcher::new(self.store.clone(), self.clock.clone(), config).with_adapter(Arc::new(
                relais_engine::sim::adapter(self.store.clone(), SimConfig::default()),
            ));
        if let Some(destinations) = webhooks {
            let poster = HttpPoster::with_destinations(destinations).unwrap();
            dispatcher = dispatcher.with_webhooks(Arc::new(poster));
        }
        dispatcher.run_until_idle(10).await.unwrap();
    }

    async fn deliveries(&self, hook: &str) -> Vec<Value> {
        let (status, log) = self
            .call("GET", &format!("/v1/webhooks/{hook}/deliveries"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        log.as_array().unwrap().clone()
    }
}

/// An HTTP receiver on 127.0.0.1 that answers 204 to everything; counts connections.
async fn receiver() -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                // One request a connection is enough: answer it and close.
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (addr, connections)
}

#[tokio::test]
async fn a_webhook_to_an_address_that_is_not_public_is_refused_at_registration() {
    let api = api(Destinations::PublicOnly).await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://0.0.0.0/hook",
        "http://[::]/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hook",
        "http://224.0.0.1/hook",
        "http://255.255.255.255/hook",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:192.168.0.1]/hook",
        "http://[::127.0.0.1]/hook",
        "http://0x7f000001/hook",
        "http://2130706433/hook",
        "http://127.1/hook",
    ] {
        let (status, problem, content_type) = api
            .call_as(&api.key, "POST", "/v1/webhooks", Some(json!({"url": url})))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {problem}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(problem["errors"][0]["pointer"], "/url", "{url}");
        let detail = problem["errors"][0]["detail"].as_str().unwrap();
        assert!(
            detail.contains("public") && detail.contains("webhook_allow_private"),
            "{url}: {detail}"
        );
    }
    let (_, hooks) = api.call("GET", "/v1/webhooks", None).await;
    assert_eq!(hooks, json!([]), "nothing was registered");
    let (status, hook) = api
        .call(
            "POST",
            "/v1/webhooks",
            Some(json!({"url": "https://93.184.215.14/relais"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a public address is fine: {hook}"
    );
}

#[tokio::test]
async fn the_operator_can_let_webhooks_reach_private_addresses() {
    let api = api(Destinations::Any).await;
    let (addr, connections) = receiver().await;
    let (status, hook) = api
        .call(
            "POST",
            "/v1/webhooks",
            Some(json!({"url": format!("http://{addr}/relais")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    api.send_one().await;
    api.dispatch(Some(Destinations::Any)).await;
    let log = api.deliveries(hook["id"].as_str().unwrap()).await;
    assert!(!log.is_empty());
    for d in &log {
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["last_code"], 204);
    }
    assert_eq!(connections.load(Ordering::SeqCst), log.len());
}

#[tokio::test]
async fn a_delivery_never_connects_to_an_address_that_is_not_public() {
    // Registered while the operator allowed it, or a name whose DNS answer changed since:
    // the check at delivery time is what protects.
    let api = api(Destinations::PublicOnly).await;
    let (addr, connections) = receiver().await;
    let tenant = api
        .store
        .tenant_by_name(relais_core::tenant::DEFAULT_TENANT)
        .await
        .unwrap()
        .unwrap();
    let mut hooks = Vec::new();
    for url in [
        format!("http://{addr}/relais"),
        format!("http://localhost:{}/relais", addr.port()),
    ] {
        let hook = api
            .store
            .create_webhook(&tenant.id, &url, "whsec_c2VjcmV0", api.clock.now())
            .await
            .unwrap();
        hooks.push(hook.id);
    }
    api.send_one().await;
    api.dispatch(Some(Destinations::PublicOnly)).await;
    for hook in &hooks {
        let log = api.deliveries(hook).await;
        assert!(!log.is_empty());
        for d in &log {
            assert_eq!(
                (&d["status"], &d["attempts"]),
                (&json!("pending"), &json!(1))
            );
            let error = d["last_error"].as_str().unwrap();
            assert!(
                error.contains("public") && error.contains("(loopback)"),
                "{error}"
            );
        }
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the receiver was never reached"
    );
}

#[tokio::test]
async fn a_deleted_webhook_is_gone_and_its_pending_events_are_never_sent() {
    let api = api(Destinations::Any).await;
    let (addr, connections) = receiver().await;
    let (_, hook) = api
        .call(
            "POST",
            "/v1/webhooks",
            Some(json!({"url": format!("http://{addr}/relais")})),
        )
        .await;
    let id = hook["id"].as_str().unwrap();
    let uri = format!("/v1/webhooks/{id}");
    api.send_one().await;
    // No HTTP client: the events wait for the webhook.
    api.dispatch(None).await;
    assert!(!api.deliveries(id).await.is_empty());

    let (_, reader) = api
        .call("POST", "/v1/api-keys", Some(json!({"scopes": ["read"]})))
        .await;
    let reader = reader["api_key"].as_str().unwrap();
    let (status, _, _) = api.call_as(reader, "DELETE", &uri, None).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "deleting needs the admin scope"
    );
    let (_, other) = api
        .call("POST", "/v1/tenants", Some(json!({"name": "globex"})))
        .await;
    let other = other["api_key"].as_str().unwrap();
    let (status, problem, content_type) = api.call_as(other, "DELETE", &uri, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another tenant's webhook: {problem}"
    );
    assert_eq!(content_type, "application/problem+json");

    let (status, body, _) = api.call_as(&api.key, "DELETE", &uri, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, problem, content_type) = api.call_as(&api.key, "DELETE", &uri, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    assert_eq!(content_type, "application/problem+json");
    let (_, hooks) = api.call("GET", "/v1/webhooks", None).await;
    assert_eq!(hooks, json!([]));
    let (status, _) = api
        .call("GET", &format!("/v1/webhooks/{id}/deliveries"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    api.send_one().await;
    api.dispatch(Some(Destinations::Any)).await;
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "neither the waiting events nor new ones were sent"
    );
    let (_, spec, _) = api.call_as(&api.key, "GET", "/openapi.json", None).await;
    assert!(spec["paths"]["/v1/webhooks/{id}"]["delete"].is_object());
}

#[tokio::test]
async fn a_webhook_whose_endpoint_is_down_says_so_and_when_it_is_tried_again() {
    let api = api(Destinations::Any).await;
    // A port nobody listens on: every connection is refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let (status, hook) = api
        .call(
            "POST",
            "/v1/webhooks",
            Some(json!({"url": format!("http://{closed}/relais")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    assert_eq!(
        (&hook["state"], &hook["failing_since"], &hook["retry_at"]),
        (&json!("healthy"), &Value::Null, &Value::Null)
    );
    for _ in 0..3 {
        api.send_one().await;
    }
    api.dispatch(Some(Destinations::Any)).await;
    let (status, hooks) = api.call("GET", "/v1/webhooks", None).await;
    assert_eq!(status, StatusCode::OK);
    let listed = &hooks[0];
    assert_eq!(listed["state"], "failing", "{listed}");
    let now = api.clock.now();
    assert_eq!(listed["failing_since"], now.to_string());
    let retry_at: jiff::Timestamp = listed["retry_at"].as_str().unwrap().parse().unwrap();
    let wait = retry_at.duration_since(now).as_secs();
    assert!(
        (22..=30).contains(&wait),
        "the first wait is 30 s, less jitter: {wait}"
    );
    let log = api.deliveries(hook["id"].as_str().unwrap()).await;
    let attempts: i64 = log.iter().map(|d| d["attempts"].as_i64().unwrap()).sum();
    assert_eq!(
        (log.len(), attempts),
        (6, 5),
        "the sixth waits for the probe"
    );
}

/// One request a receiver got: its headers and body.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

impl Received {
    fn event(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    /// Whether the signature is the HMAC of `id.timestamp.body` under `secret`, as a
    /// receiver checks it.
    fn signed_with(&self, secret: &str) -> bool {
        let timestamp: i64 = self.timestamp.parse().unwrap();
        relais_engine::webhooks::sign(secret, &self.id, timestamp, &self.body).unwrap()
            == self.signature
    }
}

/// An HTTP receiver on 127.0.0.1 that keeps what it is sent and answers 204.
async fn recorder() -> (SocketAddr, Arc<std::sync::Mutex<Vec<Received>>>) {
    use axum::http::HeaderMap;
    let got: Arc<std::sync::Mutex<Vec<Received>>> = Arc::default();
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/crm",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let keep = keep.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                keep.lock().unwrap().push(Received {
                    id: header("webhook-id"),
                    timestamp: header("webhook-timestamp"),
                    signature: header("webhook-signature"),
                    body,
                });
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, got)
}

impl Api {
    /// A webhook to `addr`; its secret.
    async fn hook_to(&self, addr: SocketAddr) -> String {
        let (status, hook) = self
            .call(
                "POST",
                "/v1/webhooks",
                Some(json!({"url": format!("http://{addr}/crm")})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{hook}");
        hook["secret"].as_str().unwrap().to_owned()
    }

    /// The simulated phone `number` writes `text` with the provider id `provider_id`; the
    /// answer of the route (the inbound message, `duplicate` the second time).
    async fn phone_writes(&self, number: &str, text: &str, provider_id: &str) -> Value {
        let (status, reply) = self
            .call(
                "POST",
                &format!("/v1/sim/phones/{number}/reply"),
                Some(json!({"text": text, "provider_id": provider_id})),
            )
            .await;
        assert!(status.is_success(), "{reply}");
        reply
    }
}

/// The events of `event_type` the receiver got, each checked to be signed with `secret`.
fn signed_events(got: &[Received], event_type: &str, secret: &str) -> Vec<Value> {
    got.iter()
        .filter(|r| r.event()["type"] == event_type)
        .map(|r| {
            assert!(r.signed_with(secret), "a bad signature: {r:?}");
            r.event()
        })
        .collect()
}

#[tokio::test]
async fn consent_changes_reach_the_crm_signed_and_once_when_a_stop_is_delivered_twice() {
    let api = api(Destinations::Any).await;
    let (addr, got) = recorder().await;
    let secret = api.hook_to(addr).await;

    // STOP from a phone, delivered twice by its provider.
    let first = api.phone_writes("+33612345678", "STOP", "mo-1").await;
    let again = api.phone_writes("+33612345678", "STOP", "mo-1").await;
    assert_eq!(again["duplicate"], true, "{again}");
    let inbound = &first["inbound"];
    let contact = inbound["contact_id"].as_str().unwrap().to_owned();
    // And the application opts the contact in again on SMS.
    let (status, record) = api
        .call(
            "POST",
            &format!("/v1/contacts/{contact}/consents"),
            Some(
                json!({"channel": "sms", "purpose": "marketing", "status": "opted_in",
                        "proof": "web form 2026-11-21"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{record}");
    api.dispatch(Some(Destinations::Any)).await;

    let got = got.lock().unwrap().clone();
    let changes = signed_events(&got, "consent.changed", &secret);
    assert_eq!(changes.len(), 2, "{got:?}");
    let keyword = &changes[0]["data"];
    assert_eq!(keyword["contact_id"], contact.as_str());
    assert_eq!(keyword["channel"], "sim");
    assert_eq!(keyword["purpose"], "marketing");
    assert_eq!(keyword["status"], "opted_out");
    assert_eq!(keyword["source"], "keyword");
    assert_eq!(keyword["message_id"], inbound["id"]);
    assert!(keyword["consent_id"].is_string(), "{keyword}");
    let by_api = &changes[1]["data"];
    assert_eq!(by_api["contact_id"], contact.as_str());
    assert_eq!(by_api["channel"], "sms");
    assert_eq!(by_api["status"], "opted_in");
    assert_eq!(by_api["source"], "api");
    assert_eq!(by_api["proof"], "web form 2026-11-21");
    assert_eq!(by_api["consent_id"], record["id"]);
    assert!(by_api["message_id"].is_null(), "{by_api}");
    // Every request has its own webhook id, so a receiver's own dedupe works too.
    let mut ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), got.len());
}

#[tokio::test]
async fn a_flow_answer_reaches_the_crm_signed_and_once_when_the_answer_is_delivered_twice() {
    let api = api(Destinations::Any).await;
    let (addr, got) = recorder().await;
    let secret = api.hook_to(addr).await;
    let (status, flow) = api
        .call(
            "PUT",
            "/v1/flows/prenom",
            Some(json!({
                "entry": {"new_conversation": true},
                "start": "name",
                "nodes": {
                    "name": {"type": "ask", "text": "Votre prénom ?", "attribute": "first_name", "next": "done"},
                    "done": {"type": "end", "text": "Merci {{ first_name }}"}
                }
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{flow}");
    let hello = api.phone_writes("+33612345678", "Bonjour", "mo-1").await;
    let answer = api.phone_writes("+33612345678", "Ana", "mo-2").await;
    let again = api.phone_writes("+33612345678", "Ana", "mo-2").await;
    assert_eq!(again["duplicate"], true, "{again}");
    api.dispatch(Some(Destinations::Any)).await;

    let got = got.lock().unwrap().clone();
    let captured = signed_events(&got, "flow.answer_captured", &secret);
    assert_eq!(captured.len(), 1, "{got:?}");
    let data = &captured[0]["data"];
    assert_eq!(data["contact_id"], hello["inbound"]["contact_id"]);
    assert_eq!(data["conversation_id"], hello["inbound"]["conversation_id"]);
    assert_eq!(data["flow"], "prenom");
    assert_eq!(data["node"], "name");
    assert_eq!(data["attribute"], "first_name");
    assert_eq!(data["value"], "Ana");
    assert_eq!(data["channel"], "sim");
    assert_eq!(data["message_id"], answer["inbound"]["id"]);
    assert_eq!(data["at"], answer["inbound"]["received_at"]);
}
