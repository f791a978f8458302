//! A configured `whatsapp` channel end to end, against a local fake of Meta's Graph API:
//! sends go out as Cloud API requests, Meta's signed webhooks bring statuses (which never
//! move a message backwards) and customers' messages (stored once per wamid), and every
//! unsigned, wrongly signed, foreign or malformed call is refused with nothing stored.

mod support;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode, header};
use relais_channels::whatsapp::signature::sign;
use relais_core::clock::{Clock, SystemClock};
use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

const PHONE_NUMBER_ID: &str = "106540352242922";
const DISPLAY_NUMBER: &str = "15550783881";
const APP_SECRET: &str = "the-app-secret";
const VERIFY_TOKEN: &str = "the-verify-token";
const ACCESS_TOKEN: &str = "EAAG-test-token";

/// What the fake Graph API was sent.
#[derive(Clone, Default)]
struct Graph {
    sent: Arc<Mutex<Vec<Value>>>,
    /// While set, an answer to a send waits for `release`.
    hold: Arc<std::sync::atomic::AtomicBool>,
    release: Arc<tokio::sync::Notify>,
}

async fn graph_messages(
    State(graph): State<Graph>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> (StatusCode, axum::Json<Value>) {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {ACCESS_TOKEN}"));
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(
                json!({"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}}),
            ),
        );
    }
    let wamid = {
        let mut sent = graph.sent.lock().unwrap();
        sent.push(body.clone());
        format!("wamid.TEST{}", sent.len())
    };
    if graph.hold.load(std::sync::atomic::Ordering::SeqCst) {
        graph.release.notified().await;
    }
    (
        StatusCode::OK,
        axum::Json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": body["to"]}],
            "messages": [{"id": wamid}]
        })),
    )
}

async fn fake_graph() -> (String, Graph) {
    let graph = Graph::default();
    let app = axum::Router::new()
        .route(
            &format!("/v23.0/{PHONE_NUMBER_ID}/messages"),
            axum::routing::post(graph_messages),
        )
        .with_state(graph.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, graph)
}

struct Api {
    app: axum::Router,
    key: String,
    dispatcher: Arc<Dispatcher>,
    channel_id: String,
    graph: Graph,
    _store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    api_with(json!({})).await
}

/// [`api`], with `extra` keys in the WhatsApp channel's config.
async fn api_with(extra: Value) -> Api {
    api_on(extra, Arc::new(SystemClock)).await
}

/// [`api_with`], with the server and the dispatcher on `clock`.
async fn api_on(extra: Value, clock: Arc<dyn Clock>) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
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
    // The sandbox's phones stand for the SMS step of fallback chains; they never answer.
    .with_adapter(Arc::new(relais_engine::sim::adapter(
        store.clone(),
        relais_engine::sim::SimConfig {
            delivered_after: None,
            read_after: None,
        },
    )));
    let dispatcher = Arc::new(dispatcher);
    let (base_url, graph) = fake_graph().await;
    let mut api = Api {
        app: router(state),
        key: key.secret,
        dispatcher,
        channel_id: String::new(),
        graph,
        _store: store,
        _dir: dir,
    };
    let mut config = json!({
        "phone_number_id": PHONE_NUMBER_ID, "access_token": ACCESS_TOKEN,
        "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN,
        "base_url": base_url, "api_version": "v23.0"});
    for (key, value) in extra.as_object().into_iter().flatten() {
        config[key] = value.clone();
    }
    let (status, created) = api
        .call(
            "POST",
            "/v1/channels",
            Some(json!({"kind": "whatsapp", "name": "wa", "config": config})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    api.channel_id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["webhook_url"],
        format!("/hooks/{}", api.channel_id),
        "{created}"
    );
    for secret in ["access_token", "app_secret", "verify_token"] {
        assert_eq!(created["config"][secret], "***", "{created}");
    }
    api
}

impl Api {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        support::call(&self.app, &self.key, method, uri, body).await
    }

    /// Meta's call to the channel's webhook, with the given signature header (none when
    /// `None`).
    async fn hook(&self, body: &str, signature: Option<String>) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method("POST")
            .uri(format!("/hooks/{}", self.channel_id))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(signature) = signature {
            req = req.header("x-hub-signature-256", signature);
        }
        let (status, value, _) =
            support::respond(&self.app, req.body(Body::from(body.to_owned())).unwrap()).await;
        (status, value)
    }

    async fn signed_hook(&self, body: &Value) -> (StatusCode, Value) {
        let body = body.to_string();
        let signature = sign(APP_SECRET, body.as_bytes());
        self.hook(&body, Some(signature)).await
    }

    async fn inbound(&self) -> Vec<Value> {
        let (_, list) = self.call("GET", "/v1/inbound", None).await;
        list.get("data")
            .cloned()
            .unwrap_or(list)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The customer writes on WhatsApp: the 24-hour window for free-form messages opens.
    async fn customer_writes(&self, wamid: &str) {
        let (status, answer) = self
            .signed_hook(&text_message(wamid, "Bonjour, où en est ma commande ?"))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    async fn message(&self, id: &str) -> Value {
        self.call("GET", &format!("/v1/messages/{id}"), None)
            .await
            .1
    }

    /// Accepts `body` and runs the dispatcher until the message is `sent` on WhatsApp.
    async fn send_until_sent(&self, body: Value) -> String {
        let (status, accepted) = self.call("POST", "/v1/messages", Some(body)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        let id = accepted["id"].as_str().unwrap().to_owned();
        for _ in 0..200 {
            self.dispatcher.run_once().await.unwrap();
            if self.message(&id).await["status"] == "sent" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let message = self.message(&id).await;
        assert_eq!(message["status"], "sent", "{message}");
        assert_eq!(message["channel"], self.channel_id.as_str(), "{message}");
        id
    }

    /// The texts the sandbox phone `number` received.
    async fn sandbox_phone(&self, number: &str) -> Vec<String> {
        let (status, phone) = self
            .call("GET", &format!("/v1/sim/phones/{number}/messages"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{phone}");
        phone["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["direction"] == "received")
            .filter_map(|m| m["text"].as_str().map(str::to_owned))
            .collect()
    }
}

/// A delivery as Meta documents it: `entry[].changes[].value` with the business number's
/// `metadata`.
fn delivery(value: Value) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "changes": [{"field": "messages", "value": value}]}]})
}

fn metadata(phone_number_id: &str) -> Value {
    json!({"display_phone_number": DISPLAY_NUMBER, "phone_number_id": phone_number_id})
}

fn text_message(wamid: &str, text: &str) -> Value {
    let mut value = json!({
        "messaging_product": "whatsapp",
        "metadata": metadata(PHONE_NUMBER_ID),
        "contacts": [{"profile": {"name": "Camille"}, "wa_id": "33612345678"}],
        "messages": [{"from": "33612345678", "id": wamid, "timestamp": "1764840000",
            "type": "text", "text": {"body": text}}]
    });
    value["messaging_product"] = json!("whatsapp");
    delivery(value)
}

fn status(wamid: &str, state: &str, timestamp: u64) -> Value {
    let mut status = json!({"id": wamid, "status": state, "timestamp": timestamp.to_string(),
        "recipient_id": "33612345678"});
    if state == "failed" {
        status["errors"] = json!([{"code": 131026, "title": "Message undeliverable"}]);
    }
    delivery(
        json!({"messaging_product": "whatsapp", "metadata": metadata(PHONE_NUMBER_ID),
        "statuses": [status]}),
    )
}

#[tokio::test]
async fn meta_subscribes_with_the_verify_token_only() {
    let api = api().await;
    let uri = |token: &str| {
        format!(
            "/hooks/{}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444",
            api.channel_id
        )
    };
    let (status, echoed, content_type) = support::respond(
        &api.app,
        Request::get(uri(VERIFY_TOKEN)).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        echoed,
        json!(1158201444),
        "the challenge is echoed as it came"
    );
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let (status, _, _) = support::respond(
        &api.app,
        Request::get(uri("guessed")).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = support::respond(
        &api.app,
        Request::get("/hooks/no-such-channel?hub.mode=subscribe")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_customer_message_is_stored_once_whatever_meta_redelivers() {
    let api = api().await;
    let message = text_message(
        "wamid.HBgLMzM2MTIzNDU2NzgVAgASGBQzQTdCMEM",
        "Où est mon colis ?",
    );
    let (status, answer) = api.signed_hook(&message).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Meta delivers again when it missed our 200: nothing new.
    let (status, _) = api.signed_hook(&message).await;
    assert_eq!(status, StatusCode::OK);
    let inbound = api.inbound().await;
    assert_eq!(inbound.len(), 1, "{inbound:?}");
    assert_eq!(inbound[0]["channel"], "whatsapp");
    assert_eq!(inbound[0]["channel_id"], api.channel_id.as_str());
    assert_eq!(inbound[0]["from"], "+33612345678");
    assert_eq!(inbound[0]["text"], "Où est mon colis ?");
}

#[tokio::test]
async fn unsigned_forged_foreign_and_malformed_calls_are_refused_and_store_nothing() {
    let api = api().await;
    let message = text_message("wamid.FORGED", "Envoyez-moi le code");
    let body = message.to_string();
    let (status, problem) = api.hook(&body, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    let (status, _) = api
        .hook(&body, Some(sign("not-the-app-secret", body.as_bytes())))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Signed, then changed on the way.
    let signature = sign(APP_SECRET, body.as_bytes());
    let changed = body.replace("Envoyez-moi", "Donnez-moi");
    let (status, _) = api.hook(&changed, Some(signature)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Well signed, but about another business number.
    let mut foreign = message.clone();
    foreign["entry"][0]["changes"][0]["value"]["metadata"] = metadata("999999999999999");
    let (status, _) = api.signed_hook(&foreign).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Well signed, but not JSON.
    let broken = "{\"object\": \"whatsapp_business_account\", \"entry\": [";
    let (status, problem) = api
        .hook(broken, Some(sign(APP_SECRET, broken.as_bytes())))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(
        problem["status"], 400,
        "answered as problem+json: {problem}"
    );
    assert!(api.inbound().await.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn a_send_goes_out_through_the_graph_api_and_statuses_never_move_it_backwards() {
    let api = api().await;
    api.customer_writes("wamid.IN1").await;
    let (status, accepted) = api
        .call(
            "POST",
            "/v1/messages",
            Some(json!({"to": "+33612345678", "channel": "wa",
                "content": {"text": "Votre colis arrive demain."}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        api.dispatcher.run_once().await.unwrap();
        if api.message(&id).await["status"] == "sent" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(api.message(&id).await["status"], "sent");
    let sent = api.graph.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0],
        json!({"messaging_product": "whatsapp", "recipient_type": "individual",
            "to": "33612345678", "type": "text",
            "text": {"body": "Votre colis arrive demain.", "preview_url": false}})
    );

    // Statuses are written by the dispatcher's writer with its group commit, and Meta
    // gets its 200 after that: the dispatcher runs meanwhile, as in `relais serve`.
    let dispatcher = api.dispatcher.clone();
    let running = tokio::spawn(async move {
        loop {
            dispatcher.run_once().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    // Read arrives before delivered, then delivered, then a late failure: read stays.
    for (state, at) in [
        ("read", 1764840060),
        ("delivered", 1764840030),
        ("failed", 1764840090),
    ] {
        let (status, answer) = api.signed_hook(&status_of(state, at)).await;
        assert_eq!(status, StatusCode::OK, "{state}: {answer}");
    }
    running.abort();
    let message = api.message(&id).await;
    assert_eq!(message["status"], "read", "{message}");
}

fn status_of(state: &str, at: u64) -> Value {
    status("wamid.TEST1", state, at)
}

#[tokio::test]
async fn a_channel_kind_names_the_tenants_channel_of_that_kind_and_no_other() {
    let api = api().await;
    api.customer_writes("wamid.IN1").await;
    // `whatsapp` is the kind: it goes out on the tenant's WhatsApp channel.
    let (status, accepted) = api
        .call(
            "POST",
            "/v1/messages",
            Some(json!({"to": "+33612345678", "channel": "whatsapp",
                "content": {"text": "Votre colis arrive demain."}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        api.dispatcher.run_once().await.unwrap();
        if api.message(&id).await["status"] == "sent" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let message = api.message(&id).await;
    assert_eq!(message["status"], "sent", "{message}");
    assert_eq!(message["channel"], api.channel_id.as_str(), "{message}");
    assert_eq!(api.graph.sent.lock().unwrap().len(), 1);

    // An address on one channel goes on that channel only, never on another address of
    // its contact (this one also has a phone, which the sandbox could reach).
    let (status, contact) = api
        .call(
            "POST",
            "/v1/contacts",
            Some(
                json!({"identities": [{"channel": "sms", "address": "+33698765432"},
                {"channel": "email", "address": "ana@example.com"}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    let (status, problem) = api
        .call(
            "POST",
            "/v1/messages",
            Some(
                json!({"to": {"channel": "email", "address": "ana@example.com"},
                "content": {"text": "Votre facture"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["errors"][0]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("no `email` channel"),
        "{problem}"
    );
    let (_, list) = api.call("GET", "/v1/messages", None).await;
    let stored = list.get("data").cloned().unwrap_or(list);
    assert_eq!(
        stored.as_array().map(Vec::len),
        Some(1),
        "only the WhatsApp message was stored: {stored}"
    );
}

#[tokio::test]
async fn a_delivered_after_failed_corrects_the_record_once_and_keeps_the_failure_in_the_log() {
    let api = api().await;
    api.customer_writes("wamid.IN1").await;
    let (status, accepted) = api
        .call(
            "POST",
            "/v1/messages",
            Some(json!({"to": "+33612345678", "channel": "wa",
                "content": {"text": "Votre code : 482913"}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        api.dispatcher.run_once().await.unwrap();
        if api.message(&id).await["status"] == "sent" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(api.message(&id).await["status"], "sent");
    let dispatcher = api.dispatcher.clone();
    let running = tokio::spawn(async move {
        loop {
            dispatcher.run_once().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    // Meta reports the failure, then (out of order) a delivery, twice.
    for (state, at) in [
        ("failed", 1764840090),
        ("delivered", 1764840030),
        ("delivered", 1764840030),
    ] {
        let (status, answer) = api.signed_hook(&status_of(state, at)).await;
        assert_eq!(status, StatusCode::OK, "{state}: {answer}");
    }
    running.abort();
    // `delivered` ranks above a failure (relais_core::status): the phone got it after all.
    let message = api.message(&id).await;
    assert_eq!(message["status"], "delivered", "{message}");
    let events = message["events"].as_array().unwrap();
    let delivered = events.iter().filter(|e| e["status"] == "delivered").count();
    assert_eq!(
        delivered, 1,
        "the redelivered status adds nothing: {message}"
    );
    let failed = message["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["status"] == "failed")
        .cloned()
        .unwrap_or_default();
    assert!(
        failed["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("131026"),
        "Meta's error code is in the event: {message}"
    );
}

#[tokio::test]
async fn a_status_that_beats_the_answer_to_the_send_is_applied_not_dropped() {
    let api = api().await;
    api.customer_writes("wamid.IN1").await;
    // Meta's answer to the send is slow to come back; its `delivered` is not.
    api.graph
        .hold
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, accepted) = api
        .call(
            "POST",
            "/v1/messages",
            Some(json!({"to": "+33612345678", "channel": "wa",
                "content": {"text": "Votre colis arrive demain."}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_owned();
    let dispatcher = api.dispatcher.clone();
    let running = tokio::spawn(async move {
        loop {
            dispatcher.run_once().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    for _ in 0..500 {
        if !api.graph.sent.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        api.graph.sent.lock().unwrap().len(),
        1,
        "the send reached Meta"
    );
    let delivered = status_of("delivered", 1764840030);
    let ((status, answer), ()) = tokio::join!(api.signed_hook(&delivered), async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        api.graph.release.notify_one();
    });
    assert_eq!(status, StatusCode::OK, "{answer}");
    running.abort();
    let message = api.message(&id).await;
    assert_eq!(message["status"], "delivered", "{message}");
}

#[tokio::test]
async fn templates_to_new_customers_past_the_messaging_limit_wait_queued() {
    let api = api_with(json!({"messaging_limit": 2})).await;
    let mut ids = Vec::new();
    for to in ["+33612345601", "+33612345602", "+33612345603"] {
        let (status, accepted) = api
            .call(
                "POST",
                "/v1/messages",
                Some(json!({"to": to, "channel": "wa",
                    "content": {"template": "order_shipped", "language": "fr"}})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        ids.push(accepted["id"].as_str().unwrap().to_owned());
    }
    for _ in 0..200 {
        api.dispatcher.run_once().await.unwrap();
        if api.graph.sent.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for _ in 0..5 {
        api.dispatcher.run_once().await.unwrap();
    }
    assert_eq!(
        api.graph.sent.lock().unwrap().len(),
        2,
        "two customers fit the limit"
    );
    let mut statuses = Vec::new();
    for id in &ids {
        let message = api.message(id).await;
        let status = message["status"].as_str().unwrap().to_owned();
        if status == "queued" {
            let waits = message["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["reason"] == "messaging_limit")
                .count();
            assert_eq!(waits, 1, "{message}");
        }
        statuses.push(status);
    }
    statuses.sort();
    assert_eq!(statuses, ["queued", "sent", "sent"]);
}

#[tokio::test]
async fn a_failed_status_from_meta_moves_the_message_to_its_sms_step() {
    let api = api().await;
    api.customer_writes("wamid.IN1").await;
    let id = api
        .send_until_sent(json!({"to": "+33612345678", "channels": ["wa", "sim"],
            "content": {"text": "Votre code : 482913"}}))
        .await;
    assert!(api.sandbox_phone("+33612345678").await.is_empty());

    // Meta took the message, then reports that it could not deliver it.
    let (status, answer) = api.signed_hook(&status_of("failed", 1764840090)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    for _ in 0..200 {
        api.dispatcher.run_once().await.unwrap();
        if !api.sandbox_phone("+33612345678").await.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        api.sandbox_phone("+33612345678").await,
        ["Votre code : 482913"],
        "the SMS step sent it: {}",
        api.message(&id).await
    );
    let message = api.message(&id).await;
    assert_eq!(message["channel"], "sim", "{message}");
    let failed = message["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["status"] == "failed")
        .cloned()
        .unwrap_or_default();
    assert_eq!(failed["channel"], api.channel_id.as_str(), "{message}");
    assert!(
        failed["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("131026"),
        "Meta's reason is kept: {message}"
    );
    assert_eq!(api.graph.sent.lock().unwrap().len(), 1, "WhatsApp once");
}

#[tokio::test]
async fn without_delivered_from_meta_in_time_the_message_goes_by_sms() {
    let clock = Arc::new(relais_core::clock::ManualClock::new(jiff::Timestamp::now()));
    let api = api_on(json!({}), clock.clone()).await;
    api.customer_writes("wamid.IN1").await;
    let chain = json!(["wa", {"channel": "sim", "after": "not_delivered", "within": "5m"}]);
    let silent = api
        .send_until_sent(json!({"to": "+33612345678", "channels": chain,
            "content": {"text": "Votre code : 482913"}}))
        .await;
    let delivered = api
        .send_until_sent(json!({"to": "+33612345678", "channels": chain,
            "content": {"text": "Votre colis arrive demain."}}))
        .await;
    // Meta reports the second one delivered (wamid.TEST2), and never the first.
    let dispatcher = api.dispatcher.clone();
    let running = tokio::spawn(async move {
        loop {
            dispatcher.run_once().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    let (status, answer) = api
        .signed_hook(&status("wamid.TEST2", "delivered", 1764840030))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    running.abort();
    assert_eq!(api.message(&delivered).await["status"], "delivered");

    clock.advance(jiff::SignedDuration::from_secs(4 * 60 + 59));
    for _ in 0..3 {
        api.dispatcher.run_once().await.unwrap();
    }
    assert!(
        api.sandbox_phone("+33612345678").await.is_empty(),
        "still within the wait"
    );
    clock.advance(jiff::SignedDuration::from_secs(1));
    for _ in 0..200 {
        api.dispatcher.run_once().await.unwrap();
        if !api.sandbox_phone("+33612345678").await.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for _ in 0..3 {
        api.dispatcher.run_once().await.unwrap();
    }
    assert_eq!(
        api.sandbox_phone("+33612345678").await,
        ["Votre code : 482913"],
        "only the message Meta never delivered went by SMS"
    );
    let moved = api.message(&silent).await;
    assert_eq!(moved["channel"], "sim", "{moved}");
    let timeout = moved["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reason"] == "fallback_timeout")
        .cloned()
        .unwrap_or_default();
    assert_eq!(timeout["channel"], api.channel_id.as_str(), "{moved}");
    assert_eq!(timeout["detail"], "not delivered within 5m", "{moved}");
    let kept = api.message(&delivered).await;
    assert_eq!(kept["channel"], api.channel_id.as_str(), "{kept}");
    assert_eq!(kept["status"], "delivered", "{kept}");
}
