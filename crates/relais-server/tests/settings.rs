//! `/v1/settings` as an operator uses it: settings written over the API change what the
//! running server does (quiet hours hold a marketing message, a sender's rate paces the
//! dispatcher) with no restart, and bad documents are refused without changing anything.

mod support;

use axum::http::StatusCode;
use jiff::SignedDuration;
use relais_core::clock::{Clock, ManualClock};
use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
use relais_engine::sim::SimConfig;
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;

struct Server {
    app: axum::Router,
    key: String,
    tenant: String,
    clock: Arc<ManualClock>,
    dispatcher: Dispatcher,
    _dir: tempfile::TempDir,
}

/// A server whose clock reads `now` and whose dispatcher a test drives; the server's own
/// sender rate (`RELAIS_SENDER_RATE`) is left unset.
async fn server(now: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let clock = Arc::new(ManualClock::new(now.parse().unwrap()));
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let tenant = store.tenant_by_name("default").await.unwrap().unwrap().id;
    let state = AppState::new(store.clone(), clock.clone(), HttpSettings::default(), None);
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
    Server {
        app: router(state),
        key: key.secret,
        tenant,
        clock,
        dispatcher,
        _dir: dir,
    }
}

impl Server {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        support::call(&self.app, &self.key, method, uri, body).await
    }

    /// A contact at `phone` who opted in to marketing on every channel.
    async fn opted_in(&self, phone: &str) {
        let (status, contact) = self
            .call(
                "POST",
                "/v1/contacts",
                Some(json!({"identities": [{"channel": "sms", "address": phone}]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{contact}");
        let id = contact["id"].as_str().unwrap();
        let (status, consent) = self
            .call(
                "POST",
                &format!("/v1/contacts/{id}/consents"),
                Some(json!({"purpose": "marketing", "status": "opted_in", "proof": "yes"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{consent}");
    }

    /// Sends `body`; the message as `GET /v1/messages/{id}` shows it.
    async fn send(&self, body: Value) -> Value {
        let (status, accepted) = self.call("POST", "/v1/messages", Some(body)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        let id = accepted["id"].as_str().unwrap();
        self.call("GET", &format!("/v1/messages/{id}"), None)
            .await
            .1
    }
}

/// The detail of a message's `scheduled` event held by quiet hours.
fn held_because(message: &Value) -> String {
    message["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["reason"] == "quiet_hours")
        .and_then(|event| event["detail"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_new_tenant_sees_every_section_at_its_default() {
    let server = server("2026-11-18T12:00:00Z").await;
    let (status, settings) = server.call("GET", "/v1/settings", None).await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["quiet_hours"]["windows"], json!([]));
    for country in ["FR", "DE", "ES", "IT", "PL", "NL", "BE", "GB", "US"] {
        assert_eq!(
            settings["quiet_hours"]["countries"][country], true,
            "{country}"
        );
    }
    assert_eq!(settings["frequency_cap"], Value::Null);
    assert_eq!(settings["prices"], json!([]));
}

#[tokio::test]
async fn quiet_hours_written_over_the_api_hold_the_next_marketing_message() {
    // Wednesday 18 November 2026, 12:00 UTC: 13:00 in Paris, an allowed time.
    let server = server("2026-11-18T12:00:00Z").await;
    server.opted_in("+33612345678").await;
    let offer = json!({"to": "+33612345678", "purpose": "marketing", "content": {"text": "-20%"}});
    assert_eq!(server.send(offer.clone()).await["status"], "queued");

    let (status, _) = server
        .call(
            "PATCH",
            "/v1/settings",
            Some(json!({"quiet_hours": {"windows": [
                {"start": "12:00", "end": "14:00", "purposes": ["marketing"]}
            ]}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let held = server.send(offer).await;
    assert_eq!(held["status"], "scheduled");
    assert_eq!(
        held_because(&held),
        "held by quiet hours until 2026-11-18T13:00:00Z: tenant quiet hours (window 1)"
    );
}

#[tokio::test]
async fn a_country_rule_is_named_where_it_holds_and_can_be_turned_off() {
    // Saturday 3 October 2026, 10:00 in Berlin: the Day of German Unity.
    let server = server("2026-10-03T08:00:00Z").await;
    server.opted_in("+4915112345678").await;
    let offer =
        json!({"to": "+4915112345678", "purpose": "marketing", "content": {"text": "Angebot"}});
    let held = server.send(offer.clone()).await;
    assert_eq!(held["status"], "scheduled");
    let why = held_because(&held);
    assert!(
        why.contains("DE: no marketing on a public holiday (Tag der Deutschen Einheit)"),
        "{why}"
    );
    assert!(why.contains("DE: no marketing on Sundays"), "{why}");

    let (status, settings) = server
        .call(
            "PATCH",
            "/v1/settings",
            Some(json!({"quiet_hours": {"countries": {"DE": false}}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["quiet_hours"]["countries"]["DE"], false);
    assert_eq!(settings["quiet_hours"]["countries"]["FR"], true);
    assert_eq!(server.send(offer).await["status"], "queued");
}

#[tokio::test]
async fn a_sender_rate_set_over_the_api_paces_the_running_dispatcher() {
    let server = server("2026-11-18T12:00:00Z").await;
    assert_eq!(
        server
            .dispatcher
            .sender_rate_of(&server.tenant, "Promo")
            .await,
        None,
        "unpaced by default"
    );
    let (status, _) = server
        .call(
            "PATCH",
            "/v1/settings",
            Some(json!({"sender_rates": {"senders": {"Promo": 1}}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        server
            .dispatcher
            .sender_rate_of(&server.tenant, "Promo")
            .await,
        Some(1.0)
    );
    let from_promo =
        json!({"to": "+33612345678", "from": "Promo", "content": {"text": "Code 1234"}});
    server.send(from_promo.clone()).await;
    server.send(from_promo.clone()).await;
    let round = server.dispatcher.run_once().await.unwrap();
    assert_eq!((round.sent, round.throttled), (1, 1), "one a second");

    // Ten a second from now on: a tenth of a second later, a new message has a token.
    let (status, _) = server
        .call(
            "PATCH",
            "/v1/settings",
            Some(json!({"sender_rates": {"senders": {"Promo": 10}}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    server.clock.advance(SignedDuration::from_millis(100));
    server.send(from_promo).await;
    let round = server.dispatcher.run_once().await.unwrap();
    assert_eq!(
        (round.sent, round.throttled),
        (1, 0),
        "at one a second it would have waited"
    );
}

#[tokio::test]
async fn put_replaces_every_section_and_patch_only_those_it_names() {
    let server = server("2026-11-18T12:00:00Z").await;
    let document = json!({
        "quiet_hours": {"windows": [{"start": "21:00", "end": "08:00", "days": ["sat", "sun"]}], "countries": {"US": false}},
        "sender_rates": {"default": 20, "senders": {"MyShop": 5}},
        "frequency_cap": {"max": 2, "per": "7d", "purpose": "marketing"},
        "prices": [
            {"channel": "sms", "price": 0.07, "per": "segment", "currency": "EUR"},
            {"channel": "sms", "country_prefix": "+33", "price": 0.045, "per": "segment", "currency": "EUR"}
        ]
    });
    let (status, put) = server.call("PUT", "/v1/settings", Some(document)).await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(
        put["frequency_cap"],
        json!({"max": 2, "per": "7d", "purpose": "marketing"})
    );
    assert_eq!(put["prices"][1]["country_prefix"], "+33");
    assert_eq!(put["sender_rates"]["senders"]["MyShop"], 5.0);

    let (_, patched) = server
        .call(
            "PATCH",
            "/v1/settings",
            Some(json!({"frequency_cap": null})),
        )
        .await;
    assert_eq!(patched["frequency_cap"], Value::Null);
    assert_eq!(patched["prices"], put["prices"], "untouched");
    assert_eq!(patched["quiet_hours"], put["quiet_hours"], "untouched");

    let (_, reset) = server
        .call("PUT", "/v1/settings", Some(json!({"prices": []})))
        .await;
    assert_eq!(
        reset["quiet_hours"]["windows"],
        json!([]),
        "left out: back to the default"
    );
    let (_, read) = server.call("GET", "/v1/settings", None).await;
    assert_eq!(read, reset);
}

#[tokio::test]
async fn bad_settings_are_refused_naming_the_field_and_nothing_changes() {
    let server = server("2026-11-18T12:00:00Z").await;
    let (_, before) = server
        .call(
            "PUT",
            "/v1/settings",
            Some(json!({"sender_rates": {"default": 3}, "frequency_cap": {"max": 2, "per": "7d"}})),
        )
        .await;
    let refused = [
        (
            "PUT",
            json!({"sender_rates": {"default": 50}, "quiet_hours": {"windows": [{"start": "25:00", "end": "08:00"}]}}),
            "/quiet_hours",
            "`25:00` is not a time of day",
        ),
        (
            "PATCH",
            json!({"sender_rates": {"senders": {"Promo": -1}}}),
            "/sender_rates",
            "-1 is not a rate",
        ),
        (
            "PATCH",
            json!({"frequency_cap": {"max": 2, "per": "a week"}}),
            "/frequency_cap",
            "`a week` is not a period",
        ),
        (
            "PATCH",
            json!({"prices": [{"channel": "sms", "price": 0.05, "currency": "euros"}]}),
            "/prices/0",
            "`euros` is not a currency",
        ),
        (
            "PATCH",
            json!({"quiet_hours": {"countries": {"CH": false}}}),
            "/quiet_hours",
            "`CH` has no built-in quiet-hours rule",
        ),
        (
            "PATCH",
            json!({"quiet_hours": {"windows": [{"start": "08:00", "end": "22:00", "purposes": ["marketing"]}]}}),
            "/quiet_hours",
            "leave no time in a year to send marketing messages to FR",
        ),
        (
            "PATCH",
            json!({"quiet_hour": []}),
            "",
            "unknown field `quiet_hour`",
        ),
    ];
    for (method, body, pointer, words) in refused {
        let (status, problem) = server.call(method, "/v1/settings", Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.starts_with(pointer), "{pointer}: {detail}");
        assert!(detail.contains(words), "{words}: {detail}");
    }
    let (_, after) = server.call("GET", "/v1/settings", None).await;
    assert_eq!(after, before);
}

#[tokio::test]
async fn the_openapi_description_has_the_three_settings_methods() {
    let server = server("2026-11-18T12:00:00Z").await;
    let (status, spec, _) = support::respond(
        &server.app,
        axum::http::Request::get("/openapi.json")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let path = &spec["paths"]["/v1/settings"];
    for method in ["get", "put", "patch"] {
        assert!(path[method].is_object(), "{method}");
    }
    assert!(spec["components"]["schemas"]["SettingsDoc"].is_object());
}
