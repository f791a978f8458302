//! Configured SMPP channels end to end: a channel created through the API binds to an SMSC
//! simulator, messages naming it go out over SMPP, and the simulator's receipts move them
//! to `delivered` or `undelivered`.

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

struct Api {
    app: axum::Router,
    store: Arc<dyn Store>,
    key: String,
    dispatcher: Dispatcher,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    // Real time: receipts arrive from a real SMPP session.
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
        relais_engine::sim::SimConfig {
            delivered_after: Some(jiff::SignedDuration::ZERO),
            read_after: None,
        },
    )));
    Api {
        app: router(state),
        store,
        key: key.secret,
        dispatcher,
        _dir: dir,
    }
}

async fn simulator(failure_rate: f64) -> SimHandle {
    relais_smpp::simulator::start(
        SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            http_listen: Some("127.0.0.1:0".parse().unwrap()),
            receipt_delay_ms: 5,
            failure_rate,
            system_id: Some("relais".into()),
            password: Some("secret".into()),
            ..SimConfig::default()
        },
        std::future::pending(),
    )
    .await
    .unwrap()
}

/// `relais serve --smpp-listen` for the test's store, on a free port, until `stop` is sent.
struct SmppServer {
    port: u16,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn smpp_server(store: &Arc<dyn Store>) -> SmppServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(relais_engine::smpp_server::serve(
        listener,
        store.clone(),
        Arc::new(SystemClock),
        relais_core::contact::AddressRules {
            default_country: None,
        },
        None,
        async {
            let _ = stopped.await;
        },
    ));
    SmppServer { port, stop, task }
}

/// An ESME binding to the SMPP server on `port` with these credentials.
fn esme(port: u16, system_id: &str, password: &str) -> relais_smpp::ClientConfig {
    relais_smpp::ClientConfig {
        host: "127.0.0.1".into(),
        port,
        system_id: system_id.to_owned(),
        password: password.to_owned(),
        reconnect_min_ms: 60_000,
        ..relais_smpp::ClientConfig::default()
    }
}

fn smpp_config(sim: &SimHandle) -> Value {
    json!({"host": "127.0.0.1", "port": sim.smpp_addr.port(), "system_id": "relais",
           "password": "secret", "source_addr": "RELAIS", "window": 10, "binds": 1, "max_rate": 500})
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

    async fn send(&self, channel: &str, text: &str) -> String {
        let (status, accepted) = self
            .post(
                "/v1/messages",
                json!({"to": "+33612345678", "channel": channel, "content": {"text": text}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        accepted["id"].as_str().unwrap().to_owned()
    }

    /// Runs the dispatcher until the message reaches a final status (receipts come from
    /// the simulator on their own), and returns the message.
    async fn settle(&self, id: &str) -> Value {
        for _ in 0..1000 {
            self.dispatcher.run_once().await.unwrap();
            let (_, message) = self.get(&format!("/v1/messages/{id}")).await;
            let status = message["status"].as_str().unwrap_or_default();
            if ["delivered", "undelivered", "failed", "rejected", "expired"].contains(&status) {
                return message;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("message {id} never reached a final status")
    }
}

#[tokio::test]
async fn a_whatsapp_messaging_limit_is_a_count_or_unlimited() {
    let api = api().await;
    let config = |limit: Value| {
        json!({"phone_number_id": "106540352242922", "access_token": "t", "app_secret": "s",
               "verify_token": "v", "messaging_limit": limit})
    };
    for bad in [json!(0), json!("1k"), json!(2.5)] {
        let (status, problem) = api
            .post(
                "/v1/channels",
                json!({"kind": "whatsapp", "name": "wa", "config": config(bad.clone())}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {problem}");
        assert_eq!(problem["errors"][0]["pointer"], "/config/messaging_limit");
    }
    for (name, good) in [("wa1", json!(10_000)), ("wa2", json!("unlimited"))] {
        let (status, created) = api
            .post(
                "/v1/channels",
                json!({"kind": "whatsapp", "name": name, "config": config(good)}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
}

#[tokio::test]
async fn a_bad_channel_config_is_refused_with_its_pointer() {
    let api = api().await;
    let sim = simulator(0.0).await;
    let mut config = smpp_config(&sim);
    config["password"] = json!("much-too-long");
    let (status, problem) = api
        .post(
            "/v1/channels",
            json!({"kind": "smpp", "name": "orange", "config": config}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/config/password");

    let mut config = smpp_config(&sim);
    config.as_object_mut().unwrap().remove("host");
    let (status, problem) = api
        .post(
            "/v1/channels",
            json!({"kind": "smpp", "name": "orange", "config": config}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["pointer"], "/config/host");

    let (status, _) = api
        .post(
            "/v1/channels",
            json!({"kind": "smpp", "name": "sms", "config": smpp_config(&sim)}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a kind cannot be a name"
    );
    let (_, list) = api.get("/v1/channels").await;
    assert_eq!(list, json!([]), "nothing was stored");
}

#[tokio::test]
async fn channels_are_listed_without_their_password_and_deleted() {
    let api = api().await;
    let sim = simulator(0.0).await;
    let body = json!({"kind": "smpp", "name": "orange", "config": smpp_config(&sim)});
    let (status, created) = api.post("/v1/channels", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["config"]["password"], "***");
    assert_eq!(created["config"]["system_id"], "relais");
    let (status, _) = api.post("/v1/channels", body).await;
    assert_eq!(status, StatusCode::CONFLICT, "names are unique per tenant");
    let id = created["id"].as_str().unwrap();
    let (_, list) = api.get("/v1/channels").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains("secret"));
    // Stored sealed: neither the password nor its sealed form is shown.
    let tenant = api.store.list_tenants().await.unwrap().remove(0).id;
    let stored = api.store.channel(&tenant, id).await.unwrap().unwrap();
    let sealed = stored.config["password"].as_str().unwrap();
    assert!(sealed.starts_with("enc:v1:"), "{sealed}");
    assert!(!list.to_string().contains(sealed));
    let (status, one) = api.get(&format!("/v1/channels/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["name"], "orange");
    let (status, _) = api
        .call("DELETE", &format!("/v1/channels/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.get(&format!("/v1/channels/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_channel_with_queued_messages_is_deleted_only_when_forced() {
    let api = api().await;
    let sim = simulator(0.0).await;
    let body = json!({"kind": "smpp", "name": "orange", "config": smpp_config(&sim)});
    let (_, created) = api.post("/v1/channels", body).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, accepted) = api
        .post(
            "/v1/messages",
            json!({"to": "+33612345678", "channel": "orange", "content": {"text": "Bonjour"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let message_id = accepted["id"].as_str().unwrap().to_owned();
    let (status, problem) = api
        .call("DELETE", &format!("/v1/channels/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("1 message(s)"),
        "{problem}"
    );
    let (status, _) = api.get(&format!("/v1/channels/{id}")).await;
    assert_eq!(status, StatusCode::OK, "the refused delete changed nothing");
    let (status, _) = api
        .call("DELETE", &format!("/v1/channels/{id}?force=true"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    api.dispatcher.run_once().await.unwrap();
    let (_, message) = api.get(&format!("/v1/messages/{message_id}")).await;
    assert_eq!(message["status"], "failed", "{message}");
    let last = message["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["reason"], "unknown_channel", "{message}");
}

#[tokio::test]
async fn messages_on_an_smpp_channel_are_delivered_by_the_smsc_receipts() {
    let api = api().await;
    let sim = simulator(0.0).await;
    let (status, created) = api
        .post(
            "/v1/channels",
            json!({"kind": "smpp", "name": "orange", "config": smpp_config(&sim)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    let id = api.send("orange", "Votre code : 123456").await;
    let message = api.settle(&id).await;
    assert_eq!(message["status"], "delivered", "{message}");
    let statuses: Vec<&str> = message["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["status"].as_str())
        .collect();
    assert!(
        statuses.contains(&"sent") || statuses.contains(&"sending"),
        "{statuses:?}"
    );

    // By id too, and a text of 300 characters goes in two parts, both receipted.
    let long: String = "Bonjour, ceci est un long message. "
        .repeat(9)
        .chars()
        .take(300)
        .collect();
    let channel_id = created["id"].as_str().unwrap();
    let submits_before = sim.stats.submits.load(std::sync::atomic::Ordering::Relaxed);
    let id = api.send(channel_id, &long).await;
    let message = api.settle(&id).await;
    assert_eq!(message["status"], "delivered", "{message}");
    assert_eq!(message["segments"], 2);
    let submits = sim.stats.submits.load(std::sync::atomic::Ordering::Relaxed) - submits_before;
    assert_eq!(submits, 2, "one submit_sm per part");
}

#[tokio::test]
async fn a_failed_receipt_makes_the_message_undelivered() {
    let api = api().await;
    let sim = simulator(1.0).await;
    let (status, _) = api
        .post(
            "/v1/channels",
            json!({"kind": "smpp", "name": "lossy", "config": smpp_config(&sim)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = api.send("lossy", "Hello").await;
    let message = api.settle(&id).await;
    assert_eq!(message["status"], "undelivered", "{message}");
}

#[tokio::test]
async fn an_unknown_channel_name_is_refused() {
    let api = api().await;
    let (status, problem) = api
        .post(
            "/v1/messages",
            json!({"to": "+33612345678", "channel": "nope", "content": {"text": "Hi"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/channel");
}

#[tokio::test]
async fn an_mo_from_the_smsc_becomes_an_inbound_message() {
    let api = api().await;
    let sim = simulator(0.0).await;
    let (status, created) = api
        .post(
            "/v1/channels",
            json!({"kind": "smpp", "name": "orange", "config": smpp_config(&sim)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // The channel binds in the background; the simulator refuses MO until it has.
    inject_when_bound(&sim, "33611111111", "Bonjour, où est ma commande ?").await;
    for _ in 0..500 {
        let (_, list) = api.get("/v1/inbound").await;
        let items = list.get("data").cloned().unwrap_or(list);
        // Stored first, annotated right after: a reader can see it in between.
        if let Some(first) = items
            .as_array()
            .and_then(|a| a.first())
            .filter(|m| !m["annotated_at"].is_null())
        {
            assert_eq!(first["from"], "+33611111111");
            assert_eq!(first["text"], "Bonjour, où est ma commande ?");
            assert_eq!(first["channel"], "sms");
            assert_eq!(first["channel_id"], created["id"]);
            // Annotated on arrival like every inbound message (no intent model trained).
            assert_eq!(first["annotations"]["language"], "fr", "{first}");
            assert_eq!(first["annotations"]["intent"], Value::Null);
            assert!(first["annotations"]["urgency"]["score"].is_number());
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "the MO never showed up annotated in /v1/inbound: {:?}",
        api.get("/v1/inbound").await.1
    );
}

/// Injects an MO once the channel is bound (the simulator refuses MO until then).
async fn inject_when_bound(sim: &SimHandle, from: &str, text: &str) {
    for _ in 0..500 {
        if sim
            .inject_mo(Some("relais"), from, "36180", text)
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the channel never bound");
}

#[tokio::test]
async fn an_sms_answer_2_to_numbered_buttons_reaches_the_flow_as_the_second_payload() {
    let api = api().await;
    let sim = simulator(0.0).await;
    let (status, created) = api
        .post(
            "/v1/channels",
            json!({"kind": "smpp", "name": "orange", "config": smpp_config(&sim)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, flow) = api
        .call(
            "PUT",
            "/v1/flows/rdv",
            Some(json!({
                "entry": {"new_conversation": true},
                "start": "offer",
                "nodes": {
                    "offer": {"type": "ask", "var": "said", "next": "route", "content": {
                        "text": "Votre rendez-vous demain à 10 h ?",
                        "buttons": [
                            {"type": "reply", "title": "Je confirme", "payload": "CONFIRM"},
                            {"type": "reply", "title": "Je déplace", "payload": "MOVE"}
                        ]}},
                    "route": {"type": "branch", "cases": [
                        {"when": {"payload": "MOVE"}, "next": "moved"},
                        {"when": {"payload": "CONFIRM"}, "next": "confirmed"}
                    ], "default": "lost"},
                    "moved": {"type": "end", "text": "Nous vous rappelons pour choisir un autre jour."},
                    "confirmed": {"type": "end", "text": "Merci, à demain !"},
                    "lost": {"type": "end", "text": "Je n'ai pas compris."}
                }
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{flow}");

    inject_when_bound(&sim, "33611111111", "Bonjour").await;
    let thread = wait_for_out(&api, 1).await;
    // The question goes out over SMPP as text: the buttons became numbered lines.
    let question = thread.last().unwrap();
    let id = question["id"].as_str().unwrap().to_owned();
    assert_eq!(api.settle(&id).await["status"], "delivered");

    inject_when_bound(&sim, "33611111111", "2").await;
    let thread = wait_for_out(&api, 2).await;
    assert_eq!(
        thread.last().unwrap()["content"]["text"],
        "Nous vous rappelons pour choisir un autre jour.",
        "{thread:?}"
    );
    let (_, inbound) = api.get("/v1/inbound").await;
    let answer = inbound["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["text"] == "2")
        .cloned()
        .expect("the answer is stored");
    assert_eq!(answer["payload"], "MOVE", "{answer}");

    let (_, conversation) = api
        .get(&format!(
            "/v1/conversations/{}",
            answer["conversation_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(conversation["state"], "resolved", "{conversation}");
}

/// The messages sent to the customer of the only conversation, once there are `count`.
async fn wait_for_out(api: &Api, count: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..500 {
        let (_, list) = api.get("/v1/conversations").await;
        if let Some(id) = list["data"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|c| c["id"].as_str())
        {
            let (_, thread) = api.get(&format!("/v1/conversations/{id}")).await;
            out = thread["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["direction"] == "out")
                .cloned()
                .collect();
            if out.len() >= count {
                return out;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the bot never said {count} things: {out:?}");
}

#[tokio::test]
async fn a_burst_of_mo_from_the_smsc_is_stored_and_processed_whole() {
    let api = api().await;
    let sim = simulator(0.0).await;
    let (status, _) = api
        .post(
            "/v1/channels",
            json!({"kind": "smpp", "name": "orange", "config": smpp_config(&sim)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    inject_when_bound(&sim, "33620000000", "Bonjour").await;
    // Thirty customers at once: one burst of deliver_sm on the bind, handed to the
    // pipeline together.
    let senders: Vec<String> = (1..=30)
        .map(|i| format!("336{:08}", 20_000_000 + i))
        .collect();
    let injected = futures::future::join_all(
        senders
            .iter()
            .map(|from| sim.inject_mo(Some("relais"), from, "36180", "Où est ma commande ?")),
    )
    .await;
    assert!(injected.iter().all(Result::is_ok), "{injected:?}");
    let mut processed = Vec::new();
    for _ in 0..500 {
        let (_, list) = api.get("/v1/inbound?limit=100").await;
        processed = list["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| !m["conversation_id"].is_null())
            .collect();
        if processed.len() == senders.len() + 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(processed.len(), senders.len() + 1, "{processed:?}");
    let from: std::collections::BTreeSet<&str> = processed
        .iter()
        .filter_map(|m| m["from"].as_str())
        .collect();
    assert_eq!(from.len(), senders.len() + 1, "each stored once: {from:?}");
    for sender in &senders {
        assert!(from.contains(format!("+{sender}").as_str()), "{sender}");
    }
}

#[tokio::test]
async fn a_stop_from_the_smsc_opts_out_and_is_confirmed_once_over_smpp() {
    let api = api().await;
    let sim = simulator(0.0).await;
    let (status, created) = api
        .post(
            "/v1/channels",
            json!({"kind": "smpp", "name": "orange", "config": smpp_config(&sim)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    inject_when_bound(&sim, "33611111111", "Stop svp").await;
    let mut inbound = Value::Null;
    for _ in 0..500 {
        let (_, list) = api.get("/v1/inbound").await;
        if let Some(first) = list["data"]
            .as_array()
            .and_then(|a| a.first())
            // The pipeline's last step names the conversation.
            .filter(|m| !m["conversation_id"].is_null())
        {
            inbound = first.clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let contact = inbound["contact_id"]
        .as_str()
        .expect("processed")
        .to_owned();
    let (_, consents) = api.get(&format!("/v1/contacts/{contact}/consents")).await;
    let history = consents["history"].as_array().cloned().unwrap_or_default();
    assert_eq!(history.len(), 1, "{consents}");
    assert_eq!(history[0]["status"], "opted_out");
    assert_eq!(history[0]["channel"], "sms");
    assert_eq!(history[0]["purpose"], "marketing");
    assert!(history[0]["proof"].as_str().unwrap().contains("Stop svp"));

    // The confirmation goes back through the SMSC, from the short code written to.
    let (_, thread) = api
        .get(&format!(
            "/v1/conversations/{}",
            inbound["conversation_id"].as_str().unwrap()
        ))
        .await;
    let out: Vec<&Value> = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "out")
        .collect();
    assert_eq!(out.len(), 1, "{thread}");
    let id = out[0]["id"].as_str().unwrap().to_owned();
    let message = api.settle(&id).await;
    assert_eq!(message["status"], "delivered", "{message}");
    assert_eq!(
        message["channel"], created["id"],
        "the channel the MO came in on"
    );
    for _ in 0..5 {
        api.dispatcher.run_once().await.unwrap();
    }
    let submits = sim.stats.submits.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(submits, 1, "exactly one confirmation reached the SMSC");
}

#[tokio::test]
async fn an_esme_submits_through_relais_and_gets_its_receipt() {
    let api = api().await;
    let (status, creds) = api.post("/v1/smpp/credentials", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{creds}");
    let system_id = creds["system_id"].as_str().unwrap().to_owned();
    let password = creds["password"].as_str().unwrap().to_owned();
    let (_, list) = api.get("/v1/channels").await;
    assert!(
        !list.to_string().contains(&password),
        "the password is shown once"
    );

    let server = smpp_server(&api.store).await;
    let config = |password: &str| esme(server.port, &system_id, password);
    let refused = relais_smpp::SmppClient::connect(config("wrong")).await;
    assert!(
        matches!(refused, Err(relais_smpp::ConnectError::BindRefused(_))),
        "{refused:?}"
    );

    let (client, mut events) = relais_smpp::SmppClient::connect(config(&password))
        .await
        .unwrap();
    let outcome = client
        .submit(relais_smpp::SubmitRequest {
            destination: "33612345678".into(),
            text: "Votre colis arrive demain".into(),
            source: Some("SHOP".into()),
            reference: Some("order-42".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let id = outcome.part_ids[0].clone();
    let (status, message) = api.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the SMPP id is the Relais message id"
    );
    assert_eq!(message["to"], "+33612345678", "{message}");

    for _ in 0..500 {
        api.dispatcher.run_once().await.unwrap();
        if let Some(relais_smpp::SmppEvent::Receipt(receipt, ack)) = events.try_recv() {
            ack.confirm();
            assert_eq!(receipt.message_id, id);
            assert_eq!(
                receipt.part.map(|p| p.reference.to_string()),
                Some("order-42".into())
            );
            assert_eq!(receipt.state, relais_smpp::ReceiptState::Delivered);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (_, message) = api.get(&format!("/v1/messages/{id}")).await;
    panic!("no receipt reached the ESME; the message is {message}");
}

#[tokio::test]
async fn a_receipt_owed_before_a_restart_reaches_the_esme_after_it() {
    let api = api().await;
    let (_, creds) = api.post("/v1/smpp/credentials", json!({})).await;
    let system_id = creds["system_id"].as_str().unwrap().to_owned();
    let password = creds["password"].as_str().unwrap().to_owned();
    // Submit, then the server goes down before the message is even sent.
    let first = smpp_server(&api.store).await;
    let (client, _events) =
        relais_smpp::SmppClient::connect(esme(first.port, &system_id, &password))
            .await
            .unwrap();
    let outcome = client
        .submit(relais_smpp::SubmitRequest {
            destination: "33612345678".into(),
            text: "Votre colis arrive demain".into(),
            source: Some("SHOP".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let id = outcome.part_ids[0].clone();
    drop(client);
    let _ = first.stop.send(());
    first.task.await.unwrap().unwrap();

    // The message is delivered while no server runs; a new server owes its receipt.
    let mut message = Value::Null;
    for _ in 0..200 {
        api.dispatcher.run_once().await.unwrap();
        message = api.get(&format!("/v1/messages/{id}")).await.1;
        if message["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(message["status"], "delivered", "{message}");
    let owed = api
        .store
        .due_receipts(jiff::Timestamp::now(), 10)
        .await
        .unwrap();
    assert_eq!(owed.len(), 1, "the receipt is owed: {owed:?}");
    let second = smpp_server(&api.store).await;
    // A new ESME session knows none of the ids: it hands uncorrelated receipts on at once.
    let config = relais_smpp::ClientConfig {
        receipt_hold_secs: 0,
        ..esme(second.port, &system_id, &password)
    };
    let (_client, mut events) = relais_smpp::SmppClient::connect(config).await.unwrap();
    for _ in 0..250 {
        if let Some(relais_smpp::SmppEvent::Receipt(receipt, ack)) = events.try_recv() {
            ack.confirm();
            assert_eq!(receipt.message_id, id);
            assert_eq!(receipt.state, relais_smpp::ReceiptState::Delivered);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the receipt owed before the restart never came");
}

#[tokio::test]
async fn a_concatenated_submit_becomes_one_message_with_a_receipt_per_part() {
    let api = api().await;
    let (_, creds) = api.post("/v1/smpp/credentials", json!({})).await;
    let server = smpp_server(&api.store).await;
    let (client, mut events) = relais_smpp::SmppClient::connect(esme(
        server.port,
        creds["system_id"].as_str().unwrap(),
        creds["password"].as_str().unwrap(),
    ))
    .await
    .unwrap();
    let text = "Votre commande 42 est partie. ".repeat(10);
    let outcome = client
        .submit(relais_smpp::SubmitRequest {
            destination: "33612345678".into(),
            text: text.clone(),
            source: Some("SHOP".into()),
            reference: Some("order-42".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(outcome.part_ids.len(), 2, "{outcome:?}");
    let id = outcome.part_ids.last().unwrap().clone();
    let (_, message) = api.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(
        message["content"]["text"],
        text.as_str(),
        "one message, whole"
    );
    assert_eq!(message["segments"], 2);
    let (_, first) = api
        .get(&format!("/v1/messages/{}", outcome.part_ids[0]))
        .await;
    assert!(
        first.get("id").is_none(),
        "the first part is not a message of its own: {first}"
    );

    let mut receipted = Vec::new();
    for _ in 0..500 {
        api.dispatcher.run_once().await.unwrap();
        while let Some(event) = events.try_recv() {
            if let relais_smpp::SmppEvent::Receipt(receipt, ack) = event {
                ack.confirm();
                assert_eq!(receipt.state, relais_smpp::ReceiptState::Delivered);
                receipted.push(receipt.message_id);
            }
        }
        if receipted.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    receipted.sort();
    let mut expected = outcome.part_ids.clone();
    expected.sort();
    assert_eq!(receipted, expected, "a receipt for each part's id");
}

/// The ESME side in Python (PyPI smpplib, as `relais-smpp/tests/interop.rs` uses it): a
/// wrong password, then a submit with a receipt requested. Prints what it got.
const SMPPLIB_ESME: &str = r#"
import sys, smpplib.client, smpplib.exceptions
port, sid, pw = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = smpplib.client.Client('127.0.0.1', port, timeout=20)
c.connect()
try:
    c.bind_transceiver(system_id=sid, password='wrongpw')
    print('bad-password: accepted')
except smpplib.exceptions.PDUError:
    print('bad-password: refused')
c.disconnect()
got = {}
c = smpplib.client.Client('127.0.0.1', port, timeout=20)
c.set_message_received_handler(lambda pdu: got.update(receipt=pdu.short_message.decode()))
c.set_message_sent_handler(lambda pdu: got.update(id=pdu.message_id.decode()))
c.connect()
c.bind_transceiver(system_id=sid, password=pw)
c.send_message(source_addr_ton=5, source_addr='SHOP', dest_addr_ton=1, dest_addr_npi=1,
               destination_addr='33612345678', short_message=b'Hello from smpplib',
               registered_delivery=True)
while 'receipt' not in got:
    c.read_once()
print('id:', got['id'])
print('receipt:', got['receipt'])
"#;

#[tokio::test]
async fn smpplib_submits_through_relais_and_gets_its_receipt() {
    let has_smpplib = std::process::Command::new("python3")
        .args(["-c", "import smpplib"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_smpplib {
        assert!(
            std::env::var("RELAIS_REQUIRE_PEERS").is_err(),
            "smpplib is required (scripts/install-smpp-peers.sh)"
        );
        eprintln!("skipped: PyPI smpplib is not installed");
        return;
    }
    let api = api().await;
    let (_, creds) = api.post("/v1/smpp/credentials", json!({})).await;
    let server = smpp_server(&api.store).await;
    let port = server.port;
    let mut esme = tokio::process::Command::new("python3")
        .args([
            "-c",
            SMPPLIB_ESME,
            &port.to_string(),
            creds["system_id"].as_str().unwrap(),
            creds["password"].as_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The dispatcher runs here while the ESME waits for its receipt.
    for _ in 0..1000 {
        api.dispatcher.run_once().await.unwrap();
        if esme.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let output = esme.wait_with_output().await.unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("bad-password: refused"), "{out}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap_or_default()
        .to_owned();
    let (status, _) = api.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the SMPP id is the Relais id: {out}"
    );
    assert!(out.contains(&format!("receipt: id:{id} ")), "{out}");
    assert!(out.contains("stat:DELIVRD"), "{out}");
}

#[tokio::test]
async fn a_fallback_to_a_configured_channel_still_needs_consent_for_its_kind() {
    let api = api().await;
    let sim = simulator(0.0).await;
    let (status, _) = api
        .post(
            "/v1/channels",
            json!({"kind": "smpp", "name": "orange", "config": smpp_config(&sim)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // A WhatsApp channel whose provider refuses every message as undeliverable.
    let refusing = axum::Router::new().route(
        "/{version}/{number}/messages",
        axum::routing::post(|| async {
            (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": {"message": "Message undeliverable", "code": 131026}})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let graph = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, refusing).await });
    let (status, created) = api
        .post(
            "/v1/channels",
            json!({"kind": "whatsapp", "name": "wa", "config": {"phone_number_id": "106540352242922",
                "access_token": "t", "app_secret": "s", "verify_token": "v", "base_url": graph}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, contact) = api
        .post(
            "/v1/contacts",
            json!({"identities": [{"channel": "sms", "address": "+33612345678"},
                                  {"channel": "whatsapp", "address": "+33612345678"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    let contact_id = contact["id"].as_str().unwrap();
    // STOP on SMS: the SMS step of the chain must be skipped. (Transactional, so that
    // French quiet hours for marketing do not hold the message on the real clock.)
    let (status, _) = api
        .post(
            &format!("/v1/contacts/{contact_id}/consents"),
            json!({"channel": "sms", "purpose": "all", "status": "opted_out"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, accepted) = api
        .post(
            "/v1/messages",
            json!({"to": {"contact_id": contact_id}, "channels": ["whatsapp", "orange"],
                   "purpose": "transactional", "content": {"text": "Votre colis arrive"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    // The kind names the tenant's WhatsApp channel, whose provider refuses the message: the
    // chain moves on.
    let message = api.settle(accepted["id"].as_str().unwrap()).await;
    assert_ne!(message["status"], "delivered", "{message}");
    let skipped =
        message["events"].as_array().unwrap().iter().any(|e| {
            e["status"] == "rejected" && e["channel"] == "sms" && e["reason"] == "opted_out"
        });
    assert!(skipped, "the SMS step was refused for consent: {message}");
    let submits = sim.stats.submits.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(submits, 0, "nothing reached the SMSC");
}
