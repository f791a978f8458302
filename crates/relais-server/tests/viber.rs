//! A configured `viber` channel end to end, against a local fake of the REST bot API:
//! its token is hidden, callbacks come in at the channel's `webhook_url` signed with
//! `X-Viber-Content-Signature` (calls without a good signature store nothing), a
//! redelivered message is stored once, a reply goes out by `send_message`, and
//! `delivered` then `seen` move it forward (a late `delivered` does not move it back).

mod support;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode, header};
use relais_core::clock::{Clock, SystemClock};
use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

const TOKEN: &str = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9";
const USER: &str = "01234567890A=";
const SENT_TOKEN: u64 = 5_741_311_803_571_721_087;

type Calls = Arc<Mutex<Vec<Value>>>;

async fn send_message(
    State(calls): State<Calls>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> axum::Json<Value> {
    if headers
        .get("x-viber-auth-token")
        .and_then(|v| v.to_str().ok())
        != Some(TOKEN)
    {
        return axum::Json(json!({"status": 2, "status_message": "invalidAuthToken"}));
    }
    calls.lock().unwrap().push(body);
    axum::Json(json!({"status": 0, "status_message": "ok", "message_token": SENT_TOKEN}))
}

struct Api {
    app: axum::Router,
    key: String,
    dispatcher: Arc<Dispatcher>,
    calls: Calls,
    base_url: String,
    _store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
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
    let calls = Calls::default();
    let fake = axum::Router::new()
        .route("/pa/send_message", axum::routing::post(send_message))
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}/pa", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, fake).await });
    Api {
        app: router(state),
        key: key.secret,
        dispatcher: Arc::new(dispatcher),
        calls,
        base_url,
        _store: store,
        _dir: dir,
    }
}

impl Api {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        support::call(&self.app, &self.key, method, uri, body).await
    }

    async fn channel(&self) -> Value {
        let (status, created) = self
            .call(
                "POST",
                "/v1/channels",
                Some(json!({"kind": "viber", "name": "vb", "config": {
                    "auth_token": TOKEN, "name": "Boutique Lyon", "base_url": self.base_url}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created
    }

    /// Posts `body` to `path`, signed with `key` (unsigned when `None`).
    async fn hook(&self, path: &str, body: &Value, key: Option<&str>) -> StatusCode {
        let body = body.to_string();
        let mut req = Request::builder()
            .method("POST")
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = key {
            req = req.header(
                "X-Viber-Content-Signature",
                relais_channels::viber::sign(key, body.as_bytes()),
            );
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

fn message(token: u64, text: &str) -> Value {
    json!({"event": "message", "timestamp": 1764840000000u64, "chat_hostname": "SN-376_",
        "message_token": token,
        "sender": {"id": USER, "name": "Camille", "language": "fr", "api_version": 10},
        "message": {"type": "text", "text": text}, "silent": false})
}

fn receipt(event: &str, at: u64) -> Value {
    json!({"event": event, "timestamp": at, "chat_hostname": "SN-CHAT-05_",
        "message_token": SENT_TOKEN, "user_id": USER})
}

#[tokio::test]
async fn a_bots_channel_hides_its_token_and_takes_only_signed_callbacks_once() {
    let api = api().await;
    let channel = api.channel().await;
    assert_eq!(channel["config"]["auth_token"], "***");
    let hook = channel["webhook_url"].as_str().unwrap().to_owned();
    assert!(hook.starts_with("/hooks/"), "{hook}");
    let text = message(4912661846655238145, "Où est mon colis ?");
    assert_eq!(api.hook(&hook, &text, None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        api.hook(&hook, &text, Some("another-token")).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        api.inbound().await.is_empty(),
        "a refused call stores nothing"
    );
    assert_eq!(api.hook(&hook, &text, Some(TOKEN)).await, StatusCode::OK);
    assert_eq!(
        api.hook(&hook, &text, Some(TOKEN)).await,
        StatusCode::OK,
        "a redelivery"
    );
    let inbound = api.inbound().await;
    assert_eq!(inbound.len(), 1, "{inbound:?}");
    assert_eq!(inbound[0]["channel"], "viber");
    assert_eq!(inbound[0]["from"], USER);
    assert_eq!(inbound[0]["text"], "Où est mon colis ?");
    // Viber's check of a new webhook is taken with nothing stored.
    let check = json!({"event": "webhook", "timestamp": 1764840000000u64,
        "chat_hostname": "SN-219_", "message_token": 241256543215u64});
    assert_eq!(api.hook(&hook, &check, Some(TOKEN)).await, StatusCode::OK);
    assert_eq!(api.inbound().await.len(), 1);
}

#[tokio::test]
async fn a_reply_goes_out_by_send_message_and_receipts_move_it_to_read() {
    let api = api().await;
    let hook = api.channel().await["webhook_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, accepted) = api
        .call(
            "POST",
            "/v1/messages",
            Some(
                json!({"to": {"channel": "viber", "address": USER}, "channel": "vb",
                "content": {"text": "Votre colis arrive demain."}}),
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
    assert_eq!(
        api.calls.lock().unwrap().clone(),
        [
            json!({"receiver": USER, "min_api_version": 1, "sender": {"name": "Boutique Lyon"},
            "type": "text", "text": "Votre colis arrive demain."})
        ]
    );
    // Statuses are written by the dispatcher's writer with its group commit.
    let dispatcher = api.dispatcher.clone();
    let running = tokio::spawn(async move {
        loop {
            dispatcher.run_once().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    for (event, at) in [
        ("delivered", 1764840030000u64),
        ("seen", 1764840060000),
        ("delivered", 1764840030000),
    ] {
        assert_eq!(
            api.hook(&hook, &receipt(event, at), Some(TOKEN)).await,
            StatusCode::OK,
            "{event}"
        );
    }
    running.abort();
    let message = api.call("GET", &format!("/v1/messages/{id}"), None).await.1;
    assert_eq!(message["status"], "read", "{message}");
}

#[tokio::test]
async fn an_unsubscribe_in_viber_is_an_opt_out_in_the_ledger_once_and_stops_what_follows() {
    let api = api().await;
    let hook = api.channel().await["webhook_url"]
        .as_str()
        .unwrap()
        .to_owned();
    // Camille wrote once: Relais knows her Viber id.
    let text = message(4912661846655238145, "Bonjour");
    assert_eq!(api.hook(&hook, &text, Some(TOKEN)).await, StatusCode::OK);
    let (_, contacts) = api.call("GET", "/v1/contacts", None).await;
    let contact = contacts["data"][0]["id"].as_str().unwrap().to_owned();

    let unsubscribed = json!({"event": "unsubscribed", "timestamp": 1764840090000u64,
        "user_id": USER, "message_token": 4912661846655238146u64});
    assert_eq!(
        api.hook(&hook, &unsubscribed, None).await,
        StatusCode::UNAUTHORIZED,
        "unsigned: nothing recorded"
    );
    for _ in 0..2 {
        assert_eq!(
            api.hook(&hook, &unsubscribed, Some(TOKEN)).await,
            StatusCode::OK
        );
    }
    let (_, ledger) = api
        .call("GET", &format!("/v1/contacts/{contact}/consents"), None)
        .await;
    let ledger = ledger["history"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        ledger.len(),
        1,
        "once, however often Viber calls: {ledger:?}"
    );
    assert_eq!(ledger[0]["status"], "opted_out");
    assert_eq!(ledger[0]["source"], "channel");
    assert_eq!(ledger[0]["channel"], "viber");
    assert_eq!(ledger[0]["purpose"], "all");
    assert!(
        ledger[0]["proof"]
            .as_str()
            .is_some_and(|p| p.contains("unsubscribed") && p.contains(USER)),
        "{ledger:?}"
    );

    // Even a transactional message to her on Viber is refused now, and nothing goes out.
    let (status, accepted) = api
        .call(
            "POST",
            "/v1/messages",
            Some(
                json!({"to": {"channel": "viber", "address": USER}, "channel": "vb",
                "purpose": "transactional", "content": {"text": "Votre colis arrive demain."}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["status"], "rejected", "{accepted}");
    api.dispatcher.run_once().await.unwrap();
    assert!(api.calls.lock().unwrap().is_empty());
}
