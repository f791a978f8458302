//! The dashboard's figures and charts (`/v1/analytics`, `volume.svg`, `funnel.svg`) after
//! a batch: what was accepted and how far it went, per channel and campaign, and the
//! pages that show them.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use relais_core::clock::{Clock, SystemClock};
use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;

struct Api {
    app: axum::Router,
    key: String,
    dispatcher: Dispatcher,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let state = AppState::new(store.clone(), clock.clone(), HttpSettings::default(), None);
    // Simulated phones that report `delivered` at once and never `read`.
    let dispatcher = Dispatcher::new(store.clone(), clock, DispatcherConfig::default())
        .with_adapter(Arc::new(relais_engine::sim::adapter(
            store,
            relais_engine::sim::SimConfig {
                delivered_after: Some(jiff::SignedDuration::ZERO),
                read_after: None,
            },
        )));
    Api {
        app: router(state),
        key: key.secret,
        dispatcher,
        _dir: dir,
    }
}

impl Api {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        support::call(&self.app, &self.key, method, uri, body).await
    }

    async fn svg(&self, uri: &str) -> (StatusCode, String, String) {
        let request = Request::builder()
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .body(Body::empty())
            .unwrap();
        let (status, body, content_type) = support::respond(&self.app, request).await;
        (
            status,
            body.as_str().unwrap_or_default().to_owned(),
            content_type,
        )
    }
}

#[tokio::test]
async fn a_batch_shows_in_the_funnel_by_channel_and_campaign() {
    let api = api().await;
    let messages: Vec<Value> = (0..10)
        .map(|i| {
            json!({"to": format!("+3361234560{i}"), "channel": "sim", "purpose": "transactional",
                "campaign": "soldes-hiver", "content": {"text": "-20 % ce week-end"}})
        })
        .collect();
    let (status, answer) = api
        .call(
            "POST",
            "/v1/messages/batch",
            Some(json!({"messages": messages})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let (status, _) = api
        .call(
            "POST",
            "/v1/messages",
            Some(json!({"to": "+33699999999", "channel": "sim",
            "purpose": "transactional", "content": {"text": "Votre code : 482913"}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let (status, before) = api.call("GET", "/v1/analytics", None).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(before["period"], "24h");
    assert_eq!(before["buckets"].as_array().map(Vec::len), Some(24));
    assert_eq!(before["totals"]["funnel"]["accepted"], 11, "{before}");
    assert_eq!(before["totals"]["funnel"]["pending"], 11, "{before}");
    assert_eq!(before["sends"][0]["campaign"], "soldes-hiver", "{before}");
    assert_eq!(before["sends"][0]["done"], 0.0, "{before}");

    for _ in 0..20 {
        api.dispatcher.run_once().await.unwrap();
    }
    let (_, after) = api.call("GET", "/v1/analytics?period=7d", None).await;
    assert_eq!(after["period"], "7d");
    let sim = &after["channels"][0];
    assert_eq!(sim["name"], "sim", "{after}");
    assert_eq!(
        sim["funnel"],
        json!({"accepted": 11, "sent": 11, "delivered": 11, "read": 0, "failed": 0, "pending": 0, "clicked": 0}),
        "{after}"
    );
    assert_eq!(
        sim["volume"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_i64)
            .sum::<i64>(),
        11
    );
    assert_eq!(after["sends"][0]["done"], 1.0, "{after}");
    assert_eq!(after["sends"][0]["funnel"]["delivered"], 10, "{after}");

    let (status, funnel, content_type) = api.svg("/v1/analytics/funnel.svg?lang=fr").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "image/svg+xml");
    assert!(funnel.starts_with("<svg"), "{funnel}");
    assert!(
        funnel.contains(r#"data-stage="delivered" data-count="11""#),
        "{funnel}"
    );
    assert!(funnel.contains("remis"), "in French: {funnel}");
    let (status, volume, _) = api.svg("/v1/analytics/volume.svg?period=30d").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        volume.contains("<rect") && volume.contains(">sim<"),
        "{volume}"
    );
}

#[tokio::test]
async fn an_unknown_period_or_a_missing_key_is_refused() {
    let api = api().await;
    let (status, problem) = api.call("GET", "/v1/analytics?period=1y", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(problem.to_string().contains("24h, 7d or 30d"), "{problem}");
    let (status, problem) = api.call("GET", "/v1/analytics?since=0", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let request = Request::builder()
        .uri("/v1/analytics/funnel.svg")
        .body(Body::empty())
        .unwrap();
    let (status, _, _) = support::respond(&api.app, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_pages_come_with_their_scripts_from_this_server_only() {
    let api = api().await;
    for (page, script) in [
        ("/dashboard", "/assets/dashboard.js"),
        ("/sandbox", "/assets/sandbox.js"),
    ] {
        let request = Request::builder().uri(page).body(Body::empty()).unwrap();
        let response = tower::ServiceExt::oneshot(api.app.clone(), request)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("script-src 'self'"), "{page}: {csp}");
        let (status, body, content_type) = support::respond(
            &api.app,
            Request::builder().uri(script).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{script}");
        assert!(
            content_type.starts_with("text/javascript"),
            "{script}: {content_type}"
        );
        assert!(
            body.as_str()
                .unwrap_or_default()
                .contains("/assets/session.js"),
            "{script}"
        );
    }
}
