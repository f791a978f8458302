//! Configured `messenger` and `instagram` channels end to end, against a local fake of
//! Meta's Send API: customers' messages come in by signed webhook (echoes of our own sends
//! ignored), sends go out to the Page's Send API, and unsigned calls store nothing.

mod support;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode, header};
use relais_channels::whatsapp::signature::sign;
use relais_core::clock::{Clock, SystemClock};
use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

const PAGE_ID: &str = "1234567890123";
const APP_SECRET: &str = "the-app-secret";
const CUSTOMER: &str = "6789012345678901";

async fn send_api(
    State(sent): State<Arc<Mutex<Vec<Value>>>>,
    axum::Json(body): axum::Json<Value>,
) -> axum::Json<Value> {
    let mut sent = sent.lock().unwrap();
    sent.push(body.clone());
    axum::Json(
        json!({"recipient_id": body["recipient"]["id"], "message_id": format!("m_TEST{}", sent.len())}),
    )
}

struct Api {
    app: axum::Router,
    key: String,
    dispatcher: Arc<Dispatcher>,
    sent: Arc<Mutex<Vec<Value>>>,
    base_url: String,
    _store: Arc<dyn Store>,
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
    let dispatcher = Dispatcher::new(
        store.clone(),
        clock,
        DispatcherConfig {
            lease_owner: "test".into(),
            ..Default::default()
        },
    )
    .with_registry(state.channels.registry());
    let dispatcher = Arc::new(dispatcher);
    let sent = Arc::new(Mutex::new(Vec::new()));
    let graph = axum::Router::new()
        .route("/{version}/me/messages", axum::routing::post(send_api))
        .with_state(sent.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, graph).await });
    Api {
        app: router(state),
        key: key.secret,
        dispatcher,
        sent,
        base_url,
        _store: store,
        _dir: dir,
    }
}

impl Api {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        support::call(&self.app, &self.key, method, uri, body).await
    }

    /// Creates a channel of `kind` for the Page (or Instagram account); its webhook path.
    async fn channel(&self, kind: &str, name: &str) -> String {
        let (status, created) = self
            .call(
                "POST",
                "/v1/channels",
                Some(json!({"kind": kind, "name": name, "config": {
                    "page_id": PAGE_ID, "access_token": "EAAB-page-token",
                    "app_secret": APP_SECRET, "verify_token": "the-verify-token",
                    "base_url": self.base_url}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["webhook_url"].as_str().unwrap().to_owned()
    }

    async fn hook(&self, path: &str, body: &Value, signed: bool) -> StatusCode {
        let body = body.to_string();
        let mut req = Request::builder()
            .method("POST")
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if signed {
            req = req.header("x-hub-signature-256", sign(APP_SECRET, body.as_bytes()));
        }
        support::respond(&self.app, req.body(Body::from(body)).unwrap())
            .await
            .0
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
}

/// A delivery as Meta documents it: `entry[].messaging[]`.
fn delivery(object: &str, events: Value) -> Value {
    json!({"object": object, "entry": [{"id": PAGE_ID, "time": 1764840000000u64, "messaging": events}]})
}

fn customer_text(mid: &str, text: &str) -> Value {
    json!({"sender": {"id": CUSTOMER}, "recipient": {"id": PAGE_ID}, "timestamp": 1764840000000u64,
        "message": {"mid": mid, "text": text}})
}

#[tokio::test]
async fn a_customer_writes_on_messenger_and_the_echo_of_our_answer_is_not_read_as_theirs() {
    let api = api().await;
    let hook = api.channel("messenger", "page").await;
    let echo = json!({"sender": {"id": PAGE_ID}, "recipient": {"id": CUSTOMER},
        "timestamp": 1764840001000u64,
        "message": {"mid": "m_ECHO", "text": "Bonjour, que puis-je faire ?", "is_echo": true}});
    let body = delivery(
        "page",
        json!([
            customer_text("m_1", "Bonjour, ma commande n'est pas arrivée"),
            echo
        ]),
    );
    assert_eq!(
        api.hook(&hook, &body, false).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        api.inbound().await.is_empty(),
        "an unsigned call stores nothing"
    );
    assert_eq!(api.hook(&hook, &body, true).await, StatusCode::OK);
    assert_eq!(
        api.hook(&hook, &body, true).await,
        StatusCode::OK,
        "a redelivery"
    );
    let inbound = api.inbound().await;
    assert_eq!(inbound.len(), 1, "{inbound:?}");
    assert_eq!(inbound[0]["channel"], "messenger");
    assert_eq!(inbound[0]["from"], CUSTOMER);
    assert_eq!(inbound[0]["text"], "Bonjour, ma commande n'est pas arrivée");

    // A webhook for Instagram is not a Messenger channel's.
    let instagram = delivery("instagram", json!([customer_text("m_2", "hello")]));
    assert_eq!(
        api.hook(&hook, &instagram, true).await,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn an_answer_goes_out_through_the_send_api_to_the_customers_page_scoped_id() {
    let api = api().await;
    let hook = api.channel("instagram", "insta").await;
    // The customer wrote first: Instagram's 24-hour window is open for an answer.
    let wrote = delivery("instagram", json!([customer_text("m_1", "Ma commande ?")]));
    assert_eq!(api.hook(&hook, &wrote, true).await, StatusCode::OK);
    let (status, accepted) = api
        .call(
            "POST",
            "/v1/messages",
            Some(
                json!({"to": {"channel": "instagram", "address": CUSTOMER}, "channel": "insta",
                "content": {"text": "Votre commande part demain."}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_owned();
    let mut message = Value::Null;
    for _ in 0..200 {
        api.dispatcher.run_once().await.unwrap();
        message = api.call("GET", &format!("/v1/messages/{id}"), None).await.1;
        if message["status"] == "sent" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(message["status"], "sent", "{message}");
    let sent = api.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["recipient"]["id"], CUSTOMER);
    assert_eq!(sent[0]["message"]["text"], "Votre commande part demain.");
}

#[tokio::test]
async fn a_read_watermark_marks_read_what_was_sent_before_it_and_nothing_after() {
    let api = api().await;
    let hook = api.channel("messenger", "page").await;
    // The customer wrote first: the 24-hour window is open for answers.
    let wrote = delivery("page", json!([customer_text("m_1", "Ma commande ?")]));
    assert_eq!(api.hook(&hook, &wrote, true).await, StatusCode::OK);
    let send = |text: &str| {
        json!({"to": {"channel": "messenger", "address": CUSTOMER}, "channel": "page",
               "content": {"text": text}})
    };
    let sent_out = |id: String| {
        let api = &api;
        async move {
            for _ in 0..200 {
                api.dispatcher.run_once().await.unwrap();
                let message = api.call("GET", &format!("/v1/messages/{id}"), None).await.1;
                if message["status"] == "sent" {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!("message {id} was never sent");
        }
    };
    let (status, first) = api
        .call(
            "POST",
            "/v1/messages",
            Some(send("Votre commande part demain.")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let first = first["id"].as_str().unwrap().to_owned();
    sent_out(first.clone()).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let watermark = jiff::Timestamp::now().as_millisecond();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (_, second) = api
        .call(
            "POST",
            "/v1/messages",
            Some(send("Le livreur passe à 10 h.")),
        )
        .await;
    let second = second["id"].as_str().unwrap().to_owned();
    sent_out(second.clone()).await;

    // Statuses are written by the dispatcher's writer, and Meta gets its 200 after that.
    let dispatcher = api.dispatcher.clone();
    let running = tokio::spawn(async move {
        loop {
            dispatcher.run_once().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    // Messenger's read names no message: everything sent before the watermark was read.
    let read = delivery(
        "page",
        json!([{"sender": {"id": CUSTOMER}, "recipient": {"id": PAGE_ID},
                "timestamp": watermark + 1, "read": {"watermark": watermark}}]),
    );
    assert_eq!(api.hook(&hook, &read, true).await, StatusCode::OK);
    running.abort();
    let api = &api;
    let status_of = |id: String| async move {
        api.call("GET", &format!("/v1/messages/{id}"), None).await.1["status"].clone()
    };
    assert_eq!(status_of(first).await, "read");
    assert_eq!(status_of(second).await, "sent", "sent after the watermark");
}
