//! Configured `messenger` and `instagram` channels end to end, against a local fake of
//! Meta's Send API: customers' messages come in by signed webhook (echoes of our own sends
//! ignored), sends go out to the Page's Send API, and unsigned calls store nothing.

mod support;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode, header};
use relais_channels::whatsapp::signature::sign;
use relais_core::clock::{Clock, ManualClock, SystemClock};
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
    api_with(Arc::new(SystemClock)).await
}

async fn api_with(clock: Arc<dyn Clock>) -> Api {
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
        self.channel_with(kind, name, json!({})).await
    }

    /// [`Api::channel`] with more keys in its config.
    async fn channel_with(&self, kind: &str, name: &str, more: Value) -> String {
        let mut config = json!({
            "page_id": PAGE_ID, "access_token": "EAAB-page-token",
            "app_secret": APP_SECRET, "verify_token": "the-verify-token",
            "base_url": self.base_url});
        for (key, value) in more.as_object().unwrap() {
            config[key] = value.clone();
        }
        let (status, created) = self
            .call(
                "POST",
                "/v1/channels",
                Some(json!({"kind": kind, "name": name, "config": config})),
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

/// Creates a human agent with the API key.
async fn agent(api: &Api) {
    let (status, agent) = api
        .call(
            "POST",
            "/v1/agents",
            Some(json!({"email": "ana@example.com", "name": "Ana",
                "password": "correct horse battery", "teams": [], "capacity": 5})),
        )
        .await;
    assert!(status.is_success(), "{agent}");
}

/// The agent logs in (a session expires, and the tests move the clock by days); the
/// session's token.
async fn agent_session(api: &Api) -> String {
    let (status, session) = support::call(
        &api.app,
        "",
        "POST",
        "/v1/auth/login",
        Some(json!({"email": "ana@example.com", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    session["token"].as_str().unwrap().to_owned()
}

/// The customer writes on the Page; the id of their conversation.
async fn customer_writes(api: &Api, hook: &str, mid: &str) -> String {
    let wrote = delivery(
        "page",
        json!([customer_text(mid, "Mon colis n'est pas arrivé")]),
    );
    assert_eq!(api.hook(hook, &wrote, true).await, StatusCode::OK);
    let (_, list) = api.call("GET", "/v1/conversations", None).await;
    list["data"][0]["id"].as_str().unwrap().to_owned()
}

/// Replies in `conversation` as `token` (an agent's session or the API key).
async fn reply_as(api: &Api, token: &str, conversation: &str, text: &str) -> (StatusCode, Value) {
    support::call(
        &api.app,
        token,
        "POST",
        &format!("/v1/conversations/{conversation}/messages"),
        Some(json!({"content": {"text": text}})),
    )
    .await
}

/// Runs the dispatcher until the Send API was called `count` times in all; what it got.
async fn sent_until(api: &Api, count: usize) -> Vec<Value> {
    for _ in 0..200 {
        api.dispatcher.run_once().await.unwrap();
        if api.sent.lock().unwrap().len() >= count {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    api.sent.lock().unwrap().clone()
}

fn days(n: i64) -> jiff::SignedDuration {
    jiff::SignedDuration::from_hours(24 * n)
}

#[tokio::test]
async fn a_human_agent_answers_after_24_hours_with_the_human_agent_tag_for_7_days() {
    let clock = Arc::new(ManualClock::new("2026-12-04T10:00:00Z".parse().unwrap()));
    let api = api_with(clock.clone()).await;
    let hook = api
        .channel_with("messenger", "page", json!({"human_agent_tag": true}))
        .await;
    agent(&api).await;
    let conversation = customer_writes(&api, &hook, "m_1").await;

    // Inside 24 hours an agent's reply is a plain RESPONSE.
    clock.advance(jiff::SignedDuration::from_hours(1));
    let ana = agent_session(&api).await;
    let (status, answer) = reply_as(&api, &ana, &conversation, "Je regarde.").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let sent = sent_until(&api, 1).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["messaging_type"], "RESPONSE");
    assert!(sent[0].get("tag").is_none(), "{}", sent[0]);

    // Two days after the customer wrote: the agent's reply goes with HUMAN_AGENT.
    clock.advance(days(2));
    let ana = agent_session(&api).await;
    let (status, answer) = reply_as(&api, &ana, &conversation, "Il est reparti ce matin.").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let sent = sent_until(&api, 2).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(
        sent[1],
        json!({"recipient": {"id": CUSTOMER}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT",
               "message": {"text": "Il est reparti ce matin."}})
    );
    let id = answer["id"].as_str().unwrap();
    let (_, message) = api.call("GET", &format!("/v1/messages/{id}"), None).await;
    assert_eq!(message["status"], "sent", "{message}");

    // The same reply by the API key (no person behind it) keeps the 24-hour window.
    let (status, problem) = api
        .call(
            "POST",
            &format!("/v1/conversations/{conversation}/messages"),
            Some(json!({"content": {"text": "Il est reparti ce matin."}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["type"].as_str().unwrap().ends_with("window-closed"),
        "{problem}"
    );

    // Eight days after: even the agent's 7 days are over.
    clock.advance(days(6));
    let ana = agent_session(&api).await;
    let (status, problem) = reply_as(&api, &ana, &conversation, "Vous l'avez reçu ?").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("human agents"),
        "{problem}"
    );
    assert_eq!(sent_until(&api, 3).await.len(), 2, "nothing more was sent");
}

#[tokio::test]
async fn with_the_human_agent_tag_off_an_agents_reply_keeps_the_24_hour_window() {
    let clock = Arc::new(ManualClock::new("2026-12-04T10:00:00Z".parse().unwrap()));
    let api = api_with(clock.clone()).await;
    let hook = api
        .channel_with("messenger", "page", json!({"human_agent_tag": false}))
        .await;
    agent(&api).await;
    let conversation = customer_writes(&api, &hook, "m_1").await;
    clock.advance(days(2));
    let ana = agent_session(&api).await;
    let (status, problem) = reply_as(&api, &ana, &conversation, "Il est reparti.").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["type"].as_str().unwrap().ends_with("window-closed"),
        "{problem}"
    );
    assert!(sent_until(&api, 1).await.is_empty());
}
