//! A configured `telegram` channel end to end, against a local fake of the Bot API:
//! updates come in at the channel's `webhook_url` with Telegram's secret-token header
//! (calls without it store nothing), a redelivered update is stored once, a button tap
//! keeps its payload and is answered, and sends go out by `sendMessage` to the chat.

mod support;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode, header};
use relais_core::clock::{Clock, SystemClock};
use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

const TOKEN: &str = "123456789:AAEhBOweik6ad6PsVMRxjQ5C8o3bT2Fvd-x";
const SECRET: &str = "the_secret-token";
const CHAT: i64 = 987654321;

type Calls = Arc<Mutex<Vec<(String, Value)>>>;

async fn bot_api(
    State(calls): State<Calls>,
    Path((_bot, method)): Path<(String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> axum::Json<Value> {
    let mut calls = calls.lock().unwrap();
    calls.push((method.clone(), body.clone()));
    if method.starts_with("send") {
        axum::Json(
            json!({"ok": true, "result": {"message_id": calls.len(), "date": 1764840000,
            "chat": {"id": body["chat_id"], "type": "private"}}}),
        )
    } else {
        axum::Json(json!({"ok": true, "result": true}))
    }
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
        .route("/{bot}/{method}", axum::routing::post(bot_api))
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
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

    /// Creates the bot's channel; the channel as the API answers it.
    async fn channel(&self) -> Value {
        let (status, created) = self
            .call(
                "POST",
                "/v1/channels",
                Some(json!({"kind": "telegram", "name": "tg", "config": {
                    "bot_token": TOKEN, "secret_token": SECRET, "base_url": self.base_url}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created
    }

    async fn hook(&self, path: &str, body: &Value, secret: Option<&str>) -> StatusCode {
        let mut req = Request::builder()
            .method("POST")
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(secret) = secret {
            req = req.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        support::respond(&self.app, req.body(Body::from(body.to_string())).unwrap())
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

    fn calls_of(&self, method: &str) -> Vec<Value> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, body)| body.clone())
            .collect()
    }
}

fn text_update(update_id: i64, message_id: i64, text: &str) -> Value {
    json!({"update_id": update_id, "message": {"message_id": message_id, "date": 1764840000,
        "from": {"id": CHAT, "is_bot": false, "first_name": "Camille", "language_code": "fr"},
        "chat": {"id": CHAT, "type": "private", "first_name": "Camille"}, "text": text}})
}

#[tokio::test]
async fn a_bots_channel_hides_its_secrets_and_takes_updates_only_with_its_secret_token() {
    let api = api().await;
    let channel = api.channel().await;
    assert_eq!(channel["config"]["bot_token"], "***");
    assert_eq!(channel["config"]["secret_token"], "***");
    let hook = channel["webhook_url"].as_str().unwrap().to_owned();
    assert!(hook.starts_with("/hooks/"), "{hook}");
    let update = text_update(733561004, 42, "Où est mon colis ?");
    assert_eq!(
        api.hook(&hook, &update, None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.hook(&hook, &update, Some("guess")).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        api.inbound().await.is_empty(),
        "a refused call stores nothing"
    );
    assert_eq!(api.hook(&hook, &update, Some(SECRET)).await, StatusCode::OK);
    assert_eq!(
        api.hook(&hook, &update, Some(SECRET)).await,
        StatusCode::OK,
        "a redelivery"
    );
    let inbound = api.inbound().await;
    assert_eq!(inbound.len(), 1, "{inbound:?}");
    assert_eq!(inbound[0]["channel"], "telegram");
    assert_eq!(inbound[0]["from"], CHAT.to_string());
    assert_eq!(inbound[0]["text"], "Où est mon colis ?");
    // An update of a kind the channel does not read is taken, so Telegram stops sending it.
    let left = json!({"update_id": 733561005, "my_chat_member": {}});
    assert_eq!(api.hook(&hook, &left, Some(SECRET)).await, StatusCode::OK);
    assert_eq!(api.inbound().await.len(), 1);
}

#[tokio::test]
async fn a_tap_keeps_its_payload_is_answered_and_a_reply_goes_out_by_send_message() {
    let api = api().await;
    let hook = api.channel().await["webhook_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let tap = json!({"update_id": 733561010, "callback_query": {"id": "4382bfdwdsb323b2d9",
        "from": {"id": CHAT, "is_bot": false, "first_name": "Camille"},
        "message": {"message_id": 41, "date": 1764839000, "chat": {"id": CHAT, "type": "private"},
            "text": "Demain 10 h ?",
            "reply_markup": {"inline_keyboard": [[{"text": "Je confirme", "callback_data": "RDV_OK"}]]}},
        "chat_instance": "-8000000000000000000", "data": "RDV_OK"}});
    assert_eq!(api.hook(&hook, &tap, Some(SECRET)).await, StatusCode::OK);
    let inbound = api.inbound().await;
    assert_eq!(inbound.len(), 1, "{inbound:?}");
    assert_eq!(inbound[0]["text"], "Je confirme");
    assert_eq!(inbound[0]["payload"], "RDV_OK");
    let mut answered = Vec::new();
    for _ in 0..100 {
        answered = api.calls_of("answerCallbackQuery");
        if !answered.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        answered,
        [json!({"callback_query_id": "4382bfdwdsb323b2d9"})]
    );

    let (status, accepted) = api
        .call(
            "POST",
            "/v1/messages",
            Some(
                json!({"to": {"channel": "telegram", "address": CHAT.to_string()},
                "channel": "tg", "content": {"text": "C'est noté, à demain."}}),
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
        api.calls_of("sendMessage"),
        [json!({"chat_id": CHAT, "text": "C'est noté, à demain."})]
    );
}
