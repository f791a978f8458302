//! What every HTTP test does with a request: run it through the router and read the answer;
//! and a server whose dispatcher a test drives ([`stepped`]).

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Status, body (JSON, or the text as a JSON string when it is not JSON) and Content-Type.
pub async fn respond(app: &axum::Router, request: Request<Body>) -> (StatusCode, Value, String) {
    let resp = app.clone().oneshot(request).await.unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value, content_type)
}

/// A JSON call (or one without a body) authenticated with `token` (an API key or an
/// agent's session token): status and body.
#[allow(dead_code)]
pub async fn call(
    app: &axum::Router,
    token: &str,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    let body = match body {
        Some(json) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let (status, value, _) = respond(app, req.body(body).unwrap()).await;
    (status, value)
}

/// A server on SQLite in a temporary directory: its router, the first tenant's admin key,
/// and a dispatcher that tests drive one round at a time ([`Stepped::settle`]).
#[allow(dead_code)]
pub struct Stepped {
    pub app: axum::Router,
    pub key: String,
    pub dispatcher: relais_engine::dispatch::Dispatcher,
    pub store: std::sync::Arc<dyn relais_store::Store>,
    _dir: tempfile::TempDir,
}

#[allow(dead_code)]
pub async fn stepped() -> Stepped {
    use relais_core::clock::{Clock, SystemClock};
    use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
    use relais_engine::tenants::{Bootstrap, bootstrap};
    use std::sync::Arc;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn relais_store::Store> = Arc::new(
        relais_store::SqliteStore::open(&dir.path().join("db"))
            .await
            .unwrap(),
    );
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let state = relais_server::AppState::new(
        store.clone(),
        clock.clone(),
        relais_server::HttpSettings::default(),
        None,
    );
    let dispatcher = Dispatcher::new(
        store.clone(),
        clock,
        DispatcherConfig {
            lease_owner: "test".into(),
            ..Default::default()
        },
    )
    .with_registry(state.channels.registry());
    Stepped {
        app: relais_server::router(state),
        key: key.secret,
        dispatcher,
        store,
        _dir: dir,
    }
}

#[allow(dead_code)]
impl Stepped {
    pub async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        call(&self.app, &self.key, method, uri, body).await
    }

    /// Runs dispatcher rounds until message `id` is past `accepted`, `queued` and
    /// `sending` (its adapter answered, for good); the message as `GET` then gives it.
    pub async fn settle(&self, id: &str) -> Value {
        let mut message = Value::Null;
        for _ in 0..300 {
            self.dispatcher.run_once().await.unwrap();
            message = self
                .call("GET", &format!("/v1/messages/{id}"), None)
                .await
                .1;
            if !["accepted", "queued", "sending"]
                .contains(&message["status"].as_str().unwrap_or(""))
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        message
    }
}

/// RFC 8291 Appendix A's application server key (raw, base64url) and its public half,
/// for Web Push channels.
#[allow(dead_code)]
pub const VAPID_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
#[allow(dead_code)]
pub const VAPID_PUBLIC: &str =
    "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
/// A browser's subscription keys (RFC 8291 Appendix A's user agent).
#[allow(dead_code)]
pub const P256DH: &str =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
#[allow(dead_code)]
pub const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

/// A push service on 127.0.0.1 that takes every push at `/push/{id}` (201) and counts
/// them: its base URL and the count.
#[allow(dead_code)]
pub async fn counting_push_service() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let pushes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = pushes.clone();
    let fake = axum::Router::new().route(
        "/push/{id}",
        axum::routing::post(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { (StatusCode::CREATED, [("location", "/message/1")]) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, fake).await });
    (base, pushes)
}

/// A dispatcher, driven by the test, that sends on the sandbox's simulated phones
/// (`sim`) with `config`.
#[allow(dead_code)]
pub fn sim_dispatcher(
    store: std::sync::Arc<dyn relais_store::Store>,
    clock: std::sync::Arc<dyn relais_core::clock::Clock>,
    config: relais_engine::sim::SimConfig,
) -> relais_engine::dispatch::Dispatcher {
    use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
    let sim = relais_engine::sim::adapter(store.clone(), config);
    Dispatcher::new(
        store,
        clock,
        DispatcherConfig {
            lease_owner: "test".into(),
            ..Default::default()
        },
    )
    .with_adapter(std::sync::Arc::new(sim))
}

/// The sandbox's phones as tests want them: `delivered` at once, never read.
#[allow(dead_code)]
pub fn delivered_at_once() -> relais_engine::sim::SimConfig {
    relais_engine::sim::SimConfig {
        delivered_after: Some(jiff::SignedDuration::ZERO),
        read_after: None,
    }
}
