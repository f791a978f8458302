//! Outgoing webhooks over HTTP as a tenant and its receiver see them: where a webhook may
//! point, what reaches the receiver, and deleting a webhook.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use relais_core::clock::{Clock, ManualClock};
use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
use relais_engine::sim::{SimAdapter, SimConfig};
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
                SimAdapter::new(self.store.clone(), SimConfig::default()),
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
