//! `/metrics` as Prometheus scrapes it, after messages went through the `sim` channel. The
//! recorder is global to the process, so this binary holds this one test.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use jiff::SignedDuration;
use relais_core::clock::{Clock, ManualClock};
use relais_core::tracked_link::PublicBase;
use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
use relais_engine::sim::SimConfig;
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::json;
use std::sync::Arc;

/// The value of the sample of `name` whose labels include every one of `labels`.
fn sample(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(rest) => rest.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        labels
            .iter()
            .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

#[tokio::test]
async fn messages_receipts_inbound_clicks_and_queue_depth_are_counted_by_channel_and_status() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let clock = Arc::new(ManualClock::new("2026-12-05T10:00:00Z".parse().unwrap()));
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let settings = HttpSettings {
        default_country: Some(phonenumber::country::Id::FR),
        public_url: Some(PublicBase::parse("https://r.example").unwrap()),
        ..Default::default()
    };
    let app = router(AppState::new(
        store.clone(),
        clock.clone(),
        settings,
        Some(handle),
    ));
    let dispatcher = Dispatcher::new(
        store.clone(),
        clock.clone(),
        DispatcherConfig {
            lease_owner: "test".into(),
            ..Default::default()
        },
    )
    .with_adapter(Arc::new(relais_engine::sim::adapter(
        store.clone(),
        SimConfig::default(),
    )));
    let scrape = || async {
        let (status, body, content_type) = support::respond(
            &app,
            Request::builder()
                .uri("/metrics")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        body.as_str().unwrap().to_owned()
    };

    let mut ids = Vec::new();
    for to in ["+33612345678", "+33612345679"] {
        let (status, accepted) = support::call(
            &app,
            &key.secret,
            "POST",
            "/v1/messages",
            Some(json!({"to": to, "content": {"text": "Soldes : https://shop.example/"}})),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        ids.push(accepted["id"].as_str().unwrap().to_owned());
    }
    // Accepted and not yet taken by a worker: two rows wait in the outbox.
    let before = scrape().await;
    assert_eq!(
        sample(&before, "relais_outbox_ready", &[]),
        Some(2.0),
        "{before}"
    );
    let queued = [("channel", "sim"), ("status", "queued")];
    assert_eq!(
        sample(&before, "relais_messages_total", &queued),
        Some(2.0),
        "{before}"
    );

    dispatcher.run_until_idle(10).await.unwrap();
    clock.advance(SignedDuration::from_secs(1));
    dispatcher.run_until_idle(10).await.unwrap();
    let (_, reply) = support::call(
        &app,
        &key.secret,
        "POST",
        "/v1/sim/phones/0612345678/reply",
        Some(json!({"text": "Merci"})),
    )
    .await;
    assert!(reply["inbound"]["id"].is_string(), "{reply}");
    let (_, message) = support::call(
        &app,
        &key.secret,
        "GET",
        &format!("/v1/messages/{}", ids[0]),
        None,
    )
    .await;
    let text = message["content"]["text"].as_str().unwrap();
    let path = text.split("https://r.example").nth(1).unwrap().to_owned();
    let (status, _, _) = support::respond(
        &app,
        Request::builder()
            .uri(path)
            .header("user-agent", "Mozilla/5.0")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FOUND);

    let after = scrape().await;
    for (status, count) in [("queued", 2.0), ("sent", 2.0), ("delivered", 2.0)] {
        assert_eq!(
            sample(
                &after,
                "relais_messages_total",
                &[("channel", "sim"), ("status", status)]
            ),
            Some(count),
            "{status}: {after}"
        );
    }
    assert_eq!(
        sample(
            &after,
            "relais_receipts_total",
            &[("channel", "sim"), ("status", "delivered")]
        ),
        Some(2.0),
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            "relais_inbound_messages_total",
            &[("channel", "sim")]
        ),
        Some(1.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, "relais_link_clicks_total", &[("channel", "sim")]),
        Some(1.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, "relais_outbox_ready", &[]),
        Some(0.0),
        "{after}"
    );
    // The HTTP counters are still there, by route.
    assert!(
        sample(
            &after,
            "relais_http_requests_total",
            &[("route", "/v1/messages"), ("method", "POST")]
        )
        .is_some(),
        "{after}"
    );
}
