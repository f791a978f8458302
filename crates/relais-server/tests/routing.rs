//! Routing across several configured channels of one kind, end to end: two SMPP channels
//! created through the API, each bound to its own SMSC simulator; messages that name the
//! kind (`"channel": "sms"`) go out on the channel whose `prefixes` / `countries` take the
//! destination, shared by `weight` among equals, and fail over to the other when one SMSC
//! goes down.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use relais_core::clock::{Clock, SystemClock};
use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_smpp::{SimConfig, SimHandle};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;

struct Api {
    app: axum::Router,
    key: String,
    dispatcher: Arc<Dispatcher>,
    /// Whether the test drives the dispatcher itself (`run_once`), rather than letting it
    /// run in the background.
    driven: std::sync::atomic::AtomicBool,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    // Real time: receipts arrive from real SMPP sessions.
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let state = AppState::new(store.clone(), clock.clone(), HttpSettings::default(), None);
    let dispatcher = Dispatcher::new(
        store.clone(),
        clock,
        DispatcherConfig {
            lease_owner: "test".into(),
            ..Default::default()
        },
    )
    .with_registry(state.channels.registry())
    .with_adapter(Arc::new(relais_engine::sim::adapter(
        store.clone(),
        relais_engine::sim::SimConfig::default(),
    )));
    Api {
        app: router(state),
        key: key.secret,
        dispatcher: Arc::new(dispatcher),
        driven: std::sync::atomic::AtomicBool::new(true),
        _dir: dir,
    }
}

async fn simulator() -> SimHandle {
    relais_smpp::simulator::start(
        SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            http_listen: None,
            receipt_delay_ms: 5,
            failure_rate: 0.0,
            system_id: Some("relais".into()),
            password: Some("secret".into()),
            ..SimConfig::default()
        },
        std::future::pending(),
    )
    .await
    .unwrap()
}

/// An `smpp` channel's config for `sim`, with routing keys `routing` added.
fn smpp_config(sim: &SimHandle, routing: Value) -> Value {
    let mut config = json!({"host": "127.0.0.1", "port": sim.smpp_addr.port(), "system_id": "relais",
        "password": "secret", "source_addr": "RELAIS", "window": 10, "binds": 1,
        "response_timeout_ms": 2000, "reconnect_min_ms": 60000, "reconnect_max_ms": 60000});
    for (key, value) in routing.as_object().unwrap() {
        config[key] = value.clone();
    }
    config
}

fn submits(sim: &SimHandle) -> u64 {
    sim.stats.submits.load(Ordering::Relaxed)
}

impl Api {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key));
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let (status, value, _) = support::respond(&self.app, req.body(body).unwrap()).await;
        (status, value)
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", uri, Some(body)).await
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call("GET", uri, None).await
    }

    /// Creates an `smpp` channel; its id.
    async fn channel(&self, name: &str, config: Value) -> String {
        let (status, created) = self
            .post(
                "/v1/channels",
                json!({"kind": "smpp", "name": name, "config": config}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }

    /// Sends `text` to `to` on the `sms` kind; the message's id.
    async fn send_sms(&self, to: &str, text: &str) -> String {
        let (status, accepted) = self
            .post(
                "/v1/messages",
                json!({"to": to, "channel": "sms", "content": {"text": text}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        accepted["id"].as_str().unwrap().to_owned()
    }

    async fn message(&self, id: &str) -> Value {
        self.get(&format!("/v1/messages/{id}")).await.1
    }

    /// Runs the dispatcher until every message reached `delivered` (receipts come from
    /// the simulators on their own); the messages.
    async fn delivered(&self, ids: &[String]) -> Vec<Value> {
        for _ in 0..1500 {
            if self.driven.load(Ordering::Relaxed) {
                self.dispatcher.run_once().await.unwrap();
            }
            let mut messages = Vec::new();
            for id in ids {
                messages.push(self.message(id).await);
            }
            if messages.iter().all(|m| m["status"] == "delivered") {
                return messages;
            }
            let stuck = messages.iter().find(|m| {
                ["undelivered", "failed", "rejected", "expired"]
                    .contains(&m["status"].as_str().unwrap_or_default())
            });
            assert!(stuck.is_none(), "a message ended badly: {stuck:?}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the messages were never all delivered")
    }
}

/// Waits until the simulator has a bind from the channel.
async fn bound(sim: &SimHandle) {
    for _ in 0..500 {
        if sim.bound("relais") > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the channel never bound");
}

#[tokio::test]
async fn each_destination_goes_out_on_the_channel_whose_prefix_takes_it() {
    let api = api().await;
    let (sim_6, sim_7) = (simulator().await, simulator().await);
    let six = api
        .channel(
            "mobiles-6",
            smpp_config(&sim_6, json!({"prefixes": ["+336"]})),
        )
        .await;
    let seven = api
        .channel(
            "mobiles-7",
            smpp_config(&sim_7, json!({"prefixes": ["+337"]})),
        )
        .await;

    let to_six = api.send_sms("+33612345678", "Votre code : 1234").await;
    let to_seven = api.send_sms("+33756123456", "Votre code : 5678").await;
    let messages = api.delivered(&[to_six, to_seven]).await;
    assert_eq!(messages[0]["channel"], six.as_str(), "{}", messages[0]);
    assert_eq!(messages[1]["channel"], seven.as_str(), "{}", messages[1]);
    assert_eq!(submits(&sim_6), 1, "+336… went to the first SMSC only");
    assert_eq!(submits(&sim_7), 1, "+337… went to the second SMSC only");
}

#[tokio::test]
async fn the_longest_prefix_wins_then_the_country_then_channels_without_rules() {
    let api = api().await;
    let sim = simulator().await;
    let france = api
        .channel("france", smpp_config(&sim, json!({"countries": ["FR"]})))
        .await;
    let mobiles = api
        .channel("mobiles", smpp_config(&sim, json!({"prefixes": ["+336"]})))
        .await;
    let anywhere = api.channel("anywhere", smpp_config(&sim, json!({}))).await;
    let channel_of = |to: &'static str| {
        let api = &api;
        async move {
            let id = api.send_sms(to, "Bonjour").await;
            api.message(&id).await["channel"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(channel_of("+33612345678").await, mobiles);
    // A Paris landline: no prefix takes it, the country does.
    assert_eq!(channel_of("+33145678901").await, france);
    assert_eq!(channel_of("+4915112345678").await, anywhere);
}

#[tokio::test]
async fn weights_share_the_messages_between_equal_channels() {
    let api = api().await;
    let sim = simulator().await;
    let heavy = api
        .channel("heavy", smpp_config(&sim, json!({"weight": 3})))
        .await;
    let light = api.channel("light", smpp_config(&sim, json!({}))).await;
    let messages: Vec<Value> = (0..400)
        .map(|i| json!({"to": format!("+336123{i:05}"), "channel": "sms", "content": {"text": "Promo"}}))
        .collect();
    let (status, batch) = api
        .post("/v1/messages/batch", json!({"messages": messages}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{batch}");
    let mut on_heavy = 0;
    for result in batch["results"].as_array().unwrap() {
        let message = api.message(result["id"].as_str().unwrap()).await;
        let channel = message["channel"].as_str().unwrap();
        assert!(channel == heavy || channel == light, "{message}");
        on_heavy += usize::from(channel == heavy);
    }
    // Expected 300 of 400 (weight 3 against 1); five standard deviations (43) either side.
    assert!(
        (257..=343).contains(&on_heavy),
        "{on_heavy} of 400 on heavy"
    );
}

#[tokio::test]
async fn when_one_smsc_stops_its_messages_fail_over_to_the_other_once_each() {
    let api = api().await;
    let (preferred, backup) = (simulator().await, simulator().await);
    let first = api
        .channel(
            "preferred",
            smpp_config(&preferred, json!({"prefixes": ["+336"]})),
        )
        .await;
    let second = api.channel("backup", smpp_config(&backup, json!({}))).await;
    bound(&preferred).await;
    bound(&backup).await;

    // Up: +336… goes to the preferred SMSC.
    let before = api.send_sms("+33612345600", "Avant la panne").await;
    let message = &api.delivered(&[before]).await[0];
    assert_eq!(message["channel"], first.as_str(), "{message}");
    assert_eq!((submits(&preferred), submits(&backup)), (1, 0));

    // Down: the same destinations go out on the backup, each once, with the hop logged.
    preferred.stop_listening().await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            api.send_sms(&format!("+3361234{i:04}"), &format!("Pendant la panne {i}"))
                .await,
        );
    }
    let messages = api.delivered(&ids).await;
    for message in &messages {
        assert_eq!(message["channel"], second.as_str(), "{message}");
        let events = message["events"].as_array().unwrap();
        let hop = events
            .iter()
            .find(|e| e["reason"] == "failover")
            .unwrap_or_else(|| panic!("no failover in the events: {message}"));
        assert_eq!(hop["channel"], second.as_str(), "{message}");
        assert!(
            hop["detail"].as_str().unwrap().contains(&first),
            "the hop names the channel it left: {hop}"
        );
    }
    assert_eq!(
        submits(&preferred),
        1,
        "nothing more reached the stopped SMSC"
    );
    assert_eq!(
        submits(&backup),
        10,
        "each message was sent once, none lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_dispatcher_fails_over_too() {
    let api = api().await;
    api.driven.store(false, Ordering::Relaxed);
    let running = api.dispatcher.clone().spawn();
    let (preferred, backup) = (simulator().await, simulator().await);
    api.channel(
        "preferred",
        smpp_config(&preferred, json!({"prefixes": ["+336"]})),
    )
    .await;
    let second = api.channel("backup", smpp_config(&backup, json!({}))).await;
    bound(&preferred).await;
    bound(&backup).await;
    let before = api.send_sms("+33612345600", "Avant la panne").await;
    api.delivered(&[before]).await;

    preferred.stop_listening().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            api.send_sms(&format!("+3361234{i:04}"), &format!("Pendant la panne {i}"))
                .await,
        );
    }
    let messages = api.delivered(&ids).await;
    running.shutdown().await;
    for message in &messages {
        assert_eq!(message["channel"], second.as_str(), "{message}");
    }
    assert_eq!(
        submits(&preferred),
        1,
        "nothing more reached the stopped SMSC"
    );
    assert_eq!(
        submits(&backup),
        20,
        "each message was sent once, none lost"
    );
}

#[tokio::test]
async fn a_destination_no_channel_takes_is_refused_and_nothing_is_stored() {
    let api = api().await;
    let sim = simulator().await;
    api.channel(
        "mobiles-6",
        smpp_config(&sim, json!({"prefixes": ["+336"]})),
    )
    .await;
    api.channel(
        "mobiles-7",
        smpp_config(&sim, json!({"prefixes": ["+337"]})),
    )
    .await;
    let (status, problem) = api
        .post(
            "/v1/messages",
            json!({"to": "+4915112345678", "channel": "sms", "content": {"text": "Hallo"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/to", "{problem}");
    let detail = problem["errors"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("+4915112345678") && detail.contains("prefixes"),
        "{detail}"
    );
    // In a chain too, for any step that names the kind.
    let (status, problem) = api
        .post(
            "/v1/messages",
            json!({"to": "+4915112345678", "channels": ["sim", "sms"], "content": {"text": "Hallo"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (_, list) = api.get("/v1/messages").await;
    let stored = list.get("data").cloned().unwrap_or(list);
    assert_eq!(stored, json!([]), "nothing was stored");
    assert_eq!(submits(&sim), 0);
}

#[tokio::test]
async fn a_kind_without_a_configured_channel_is_refused_at_once() {
    let api = api().await;
    let (status, problem) = api
        .post(
            "/v1/messages",
            json!({"to": "+33612345678", "channel": "sms", "content": {"text": "Bonjour"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/channel");
    let detail = problem["errors"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("no `sms` channel") && detail.contains("POST /v1/channels"),
        "{detail}"
    );
    let (status, problem) = api
        .post(
            "/v1/messages",
            json!({"to": "+33612345678", "channels": ["sim", "whatsapp"], "content": {"text": "Bonjour"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/channels/1");
    // Every kind but the sandbox's is configured the same way, push included.
    let (status, problem) = api
        .post(
            "/v1/messages",
            json!({"to": "+33612345678", "channel": "apns", "content": {"text": "Bonjour"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let detail = problem["errors"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("no `apns` channel") && detail.contains("POST /v1/channels"),
        "{detail}"
    );
    let (_, list) = api.get("/v1/messages").await;
    let stored = list.get("data").cloned().unwrap_or(list);
    assert_eq!(stored, json!([]), "nothing was stored");
    // The sandbox needs no configuration.
    let (status, accepted) = api
        .post(
            "/v1/messages",
            json!({"to": "+33612345678", "channel": "sim", "content": {"text": "Bonjour"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
}

#[tokio::test]
async fn bad_routing_keys_are_refused_with_their_pointer_and_nothing_is_stored() {
    let api = api().await;
    let sim = simulator().await;
    for (routing, pointer) in [
        (json!({"prefixes": "+336"}), "/config/prefixes"),
        (json!({"prefixes": ["+336", "0612"]}), "/config/prefixes/1"),
        (json!({"countries": ["France"]}), "/config/countries/0"),
        (json!({"weight": 0}), "/config/weight"),
        (json!({"weight": "heavy"}), "/config/weight"),
    ] {
        let (status, problem) = api
            .post(
                "/v1/channels",
                json!({"kind": "smpp", "name": "orange", "config": smpp_config(&sim, routing.clone())}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{routing}: {problem}"
        );
        assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
    }
    let (_, list) = api.get("/v1/channels").await;
    assert_eq!(list, json!([]), "nothing was stored");
}
