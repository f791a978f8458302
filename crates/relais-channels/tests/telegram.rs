//! The Telegram channel against an in-process fake of the Bot API (axum on 127.0.0.1:0),
//! started the way the engine starts it ([`relais_channels::start`]), and webhook updates
//! shaped like the Bot API documentation's `Update` objects.
//!
//! The fake checks the bot token in the path, records every call (method and body), and
//! answers `send*` calls by the chat id: `429` is rate limited with `retry_after` 35,
//! `403` has blocked the bot, `404404` does not exist, `500` meets a server error; any
//! other chat gets the sent `Message` with the next `message_id`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jiff::Timestamp;
use relais_channels::adapter::OutboundMessage;
use relais_channels::event::NewInbound;
use relais_channels::{
    ChannelEvent, ChannelIdentity, Started, WebhookAnswer, WebhookError, WebhookRequest,
};
use relais_core::channel::ChannelKind;
use relais_core::content::Content;
use relais_core::retry::ErrorClass;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "123456789:AAEhBOweik6ad6PsVMRxjQ5C8o3bT2Fvd-x";
const SECRET: &str = "hook_secret-42";
const CHAT: &str = "987654321";

// ---- the fake Bot API ----

#[derive(Clone)]
struct Fake {
    base: String,
    /// `(method, body)` of every call, in order.
    calls: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Fake {
    fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().unwrap().clone()
    }

    fn calls_of(&self, method: &str) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|(m, _)| m == method)
            .map(|(_, body)| body)
            .collect()
    }

    fn last(&self) -> (String, Value) {
        self.calls().last().cloned().unwrap()
    }
}

fn refused(status: StatusCode, description: &str, parameters: Option<Value>) -> Response {
    let mut body = json!({"ok": false, "error_code": status.as_u16(), "description": description});
    if let Some(parameters) = parameters {
        body["parameters"] = parameters;
    }
    (status, Json(body)).into_response()
}

async fn method(
    State(fake): State<Fake>,
    Path((bot, method)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if bot != format!("bot{TOKEN}") {
        return refused(StatusCode::UNAUTHORIZED, "Unauthorized", None);
    }
    let n = {
        let mut calls = fake.calls.lock().unwrap();
        calls.push((method.clone(), body.clone()));
        calls.len()
    };
    if !method.starts_with("send") {
        return Json(json!({"ok": true, "result": true})).into_response();
    }
    let chat = body["chat_id"].as_i64().unwrap_or_default();
    match chat {
        429 => refused(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests: retry after 35",
            Some(json!({"retry_after": 35})),
        ),
        403 => refused(
            StatusCode::FORBIDDEN,
            "Forbidden: bot was blocked by the user",
            None,
        ),
        404404 => refused(StatusCode::BAD_REQUEST, "Bad Request: chat not found", None),
        500 => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response(),
        _ => Json(json!({"ok": true, "result": {"message_id": n, "date": 1_764_840_000,
            "from": {"id": 123456789, "is_bot": true, "first_name": "Relais", "username": "relais_bot"},
            "chat": {"id": chat, "type": "private", "first_name": "Camille"}}}))
        .into_response(),
    }
}

async fn spawn_fake() -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = Fake {
        base: format!("http://{}", listener.local_addr().unwrap()),
        calls: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/{bot}/{method}", post(method))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake
}

fn identity() -> ChannelIdentity {
    ChannelIdentity {
        id: "ch-tg".into(),
        tenant_id: "default".into(),
        name: "bot".into(),
    }
}

fn start_with(config: Value) -> Started {
    relais_channels::start("telegram", identity(), &config).unwrap()
}

fn start(fake: &Fake) -> Started {
    start_with(json!({"bot_token": TOKEN, "secret_token": SECRET, "base_url": fake.base}))
}

fn outbound(to: &str, content: Value) -> OutboundMessage {
    OutboundMessage {
        purpose: relais_core::consent::Purpose::Transactional,
        message_id: "msg-1".into(),
        tenant_id: "default".into(),
        channel: ChannelKind::Telegram,
        to: to.into(),
        from: None,
        content: serde_json::from_value::<Content>(content).unwrap(),
        human_agent_since: None,
        attempt: 1,
        now: Timestamp::from_second(1_750_000_000).unwrap(),
    }
}

// ---- sending ----

#[tokio::test]
async fn a_text_goes_by_send_message_and_its_provider_id_is_the_chat_and_message() {
    let fake = spawn_fake().await;
    let channel = start(&fake).adapter;
    assert_eq!(channel.kind(), ChannelKind::Telegram);
    let ack = channel
        .send(&outbound(
            CHAT,
            json!({"text": "Votre colis arrive demain"}),
        ))
        .await
        .unwrap();
    assert_eq!(ack.provider_id, format!("{CHAT}:1"));
    assert_eq!(
        fake.last(),
        (
            "sendMessage".to_owned(),
            json!({"chat_id": 987654321, "text": "Votre colis arrive demain"})
        )
    );
}

#[tokio::test]
async fn buttons_become_an_inline_keyboard_of_callback_and_url_buttons() {
    let fake = spawn_fake().await;
    let channel = start(&fake).adapter;
    channel
        .send(&outbound(
            "-1001234567890",
            json!({"text": "Votre rendez-vous de demain ?",
                "buttons": [{"type": "reply", "title": "Je confirme", "payload": "RDV_OK"},
                            {"type": "reply", "title": "Annuler"},
                            {"type": "url", "title": "Déplacer", "url": "https://rdv.example/42"}]}),
        ))
        .await
        .unwrap();
    assert_eq!(
        fake.last(),
        (
            "sendMessage".to_owned(),
            json!({"chat_id": -1001234567890i64, "text": "Votre rendez-vous de demain ?",
                "reply_markup": {"inline_keyboard": [
                    [{"text": "Je confirme", "callback_data": "RDV_OK"}],
                    [{"text": "Annuler", "callback_data": "Annuler"}],
                    [{"text": "Déplacer", "url": "https://rdv.example/42"}]]}})
        )
    );
}

#[tokio::test]
async fn quick_replies_become_a_one_time_reply_keyboard() {
    let fake = spawn_fake().await;
    let channel = start(&fake).adapter;
    channel
        .send(&outbound(
            CHAT,
            json!({"text": "Quel créneau ?", "quick_replies": ["Matin", "Midi", "Soir", "Nuit"]}),
        ))
        .await
        .unwrap();
    assert_eq!(
        fake.last().1["reply_markup"],
        json!({"keyboard": [[{"text": "Matin"}, {"text": "Midi"}, {"text": "Soir"}],
                            [{"text": "Nuit"}]],
               "one_time_keyboard": true, "resize_keyboard": true})
    );
}

#[tokio::test]
async fn an_image_goes_by_send_photo_with_its_caption_and_a_pdf_by_send_document() {
    let fake = spawn_fake().await;
    let channel = start(&fake).adapter;
    channel
        .send(&outbound(
            CHAT,
            json!({"media": {"url": "https://cdn.example/colis.jpg", "mime_type": "image/jpeg",
                "caption": "Votre colis"}}),
        ))
        .await
        .unwrap();
    assert_eq!(
        fake.last(),
        (
            "sendPhoto".to_owned(),
            json!({"chat_id": 987654321, "photo": "https://cdn.example/colis.jpg",
                "caption": "Votre colis"})
        )
    );
    channel
        .send(&outbound(
            CHAT,
            json!({"media": {"url": "https://cdn.example/facture.pdf", "mime_type": "application/pdf"}}),
        ))
        .await
        .unwrap();
    assert_eq!(
        fake.last(),
        (
            "sendDocument".to_owned(),
            json!({"chat_id": 987654321, "document": "https://cdn.example/facture.pdf"})
        )
    );
}

#[tokio::test]
async fn a_payload_over_64_bytes_or_a_bad_chat_id_is_refused_before_any_call() {
    let fake = spawn_fake().await;
    let channel = start(&fake).adapter;
    let long = "P".repeat(65);
    let e = channel
        .send(&outbound(
            CHAT,
            json!({"text": "?", "buttons": [{"type": "reply", "title": "Oui", "payload": long}]}),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "bad_content")
    );
    assert!(e.reason.contains("64"), "{}", e.reason);
    let e = channel
        .send(&outbound("@camille", json!({"text": "Bonjour"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "invalid_recipient")
    );
    assert!(fake.calls().is_empty(), "nothing reached Telegram");
}

// ---- errors ----

#[tokio::test]
async fn a_429_is_throttled_with_its_retry_after_and_holds_the_channel() {
    let fake = spawn_fake().await;
    let channel = start(&fake).adapter;
    assert!(channel.is_ready());
    let e = channel
        .send(&outbound("429", json!({"text": "Promo"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "throttled")
    );
    assert!(e.reason.contains("retry after 35 s"), "{}", e.reason);
    assert!(
        !channel.is_ready(),
        "the channel waits out the 35 s before its next send"
    );
}

#[tokio::test]
async fn a_blocked_bot_and_a_missing_chat_are_permanent_failures_with_telegrams_words() {
    let fake = spawn_fake().await;
    let channel = start(&fake).adapter;
    let blocked = channel
        .send(&outbound("403", json!({"text": "Bonjour"})))
        .await
        .unwrap_err();
    assert_eq!(
        (blocked.class, blocked.code.as_str()),
        (ErrorClass::Permanent, "undeliverable")
    );
    assert!(
        blocked.reason.contains("bot was blocked by the user"),
        "{}",
        blocked.reason
    );
    let missing = channel
        .send(&outbound("404404", json!({"text": "Bonjour"})))
        .await
        .unwrap_err();
    assert_eq!(missing.class, ErrorClass::Permanent);
    assert!(
        missing.reason.contains("chat not found"),
        "{}",
        missing.reason
    );
    assert!(channel.is_ready(), "one person's block holds no one else");
}

#[tokio::test]
async fn server_errors_and_an_unreachable_api_are_retryable_and_never_show_the_token() {
    let fake = spawn_fake().await;
    let channel = start(&fake).adapter;
    let e = channel
        .send(&outbound("500", json!({"text": "Bonjour"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "provider_unavailable")
    );
    // A port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let channel =
        start_with(json!({"bot_token": TOKEN, "secret_token": SECRET, "base_url": base})).adapter;
    let e = channel
        .send(&outbound(CHAT, json!({"text": "Bonjour"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "provider_unavailable")
    );
    assert!(!e.reason.contains("AAEhBOweik"), "{}", e.reason);
}

#[tokio::test]
async fn a_refused_token_waits_for_the_operator_without_spending_attempts() {
    let fake = spawn_fake().await;
    let channel = start_with(
        json!({"bot_token": "123456789:revoked", "secret_token": SECRET,
        "base_url": fake.base}),
    )
    .adapter;
    let e = channel
        .send(&outbound(CHAT, json!({"text": "Bonjour"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::NotSent, "auth_failed")
    );
    assert!(!channel.is_ready());
}

// ---- webhooks ----

fn hook(
    started: &Started,
    secret: Option<&str>,
    update: &Value,
) -> Result<WebhookAnswer, WebhookError> {
    let headers: Vec<(String, String)> = secret
        .map(|s| ("x-telegram-bot-api-secret-token".to_owned(), s.to_owned()))
        .into_iter()
        .collect();
    let body = update.to_string().into_bytes();
    let request = WebhookRequest {
        is_get: false,
        query: &[],
        headers: &headers,
        body: &body,
    };
    let read = started
        .webhook
        .as_ref()
        .expect("a telegram channel takes webhooks");
    read(&request)
}

fn delivered(answer: Result<WebhookAnswer, WebhookError>) -> Vec<ChannelEvent> {
    match answer {
        Ok(WebhookAnswer::Deliver(events)) => events,
        other => panic!("expected a delivery, got {other:?}"),
    }
}

fn inbound(event: &ChannelEvent) -> &NewInbound {
    match event {
        ChannelEvent::Inbound(inbound, _) => inbound,
        other => panic!("expected an inbound message, got {other:?}"),
    }
}

/// The Bot API documentation's text message update.
fn text_update(update_id: i64, message_id: i64, text: &str) -> Value {
    json!({"update_id": update_id, "message": {"message_id": message_id, "date": 1_764_840_000,
        "from": {"id": 987654321, "is_bot": false, "first_name": "Camille", "language_code": "fr"},
        "chat": {"id": 987654321, "type": "private", "first_name": "Camille"},
        "text": text}})
}

#[tokio::test]
async fn an_update_without_or_with_a_wrong_secret_is_refused_and_yields_nothing() {
    let fake = spawn_fake().await;
    let started = start(&fake);
    let update = text_update(1, 1, "Bonjour");
    for secret in [None, Some("guess"), Some(""), Some("hook_secret-4")] {
        match hook(&started, secret, &update) {
            Err(WebhookError::Unauthorized(_)) => {}
            other => panic!("{secret:?} should be refused, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_text_update_becomes_an_inbound_from_the_chat_and_a_redelivery_has_the_same_id() {
    let fake = spawn_fake().await;
    let started = start(&fake);
    let update = text_update(733_561_004, 42, "Où est mon colis ?");
    let events = delivered(hook(&started, Some(SECRET), &update));
    assert_eq!(events.len(), 1);
    assert_eq!(
        inbound(&events[0]),
        &NewInbound {
            answers: Vec::new(),
            tenant_id: "default".into(),
            channel: ChannelKind::Telegram,
            channel_id: Some("ch-tg".into()),
            from: CHAT.into(),
            to: "123456789".into(),
            text: "Où est mon colis ?".into(),
            payload: None,
            media: None,
            provider_id: Some(format!("{CHAT}:42")),
        }
    );
    let again = delivered(hook(&started, Some(SECRET), &update));
    assert_eq!(
        inbound(&again[0]).provider_id,
        inbound(&events[0]).provider_id
    );
    let next = delivered(hook(
        &started,
        Some(SECRET),
        &text_update(733_561_005, 43, "Merci"),
    ));
    assert_ne!(
        inbound(&next[0]).provider_id,
        inbound(&events[0]).provider_id
    );
}

#[tokio::test]
async fn a_button_tap_keeps_its_payload_says_the_title_and_is_answered_once_stored() {
    let fake = spawn_fake().await;
    let started = start(&fake);
    let tap = json!({"update_id": 733_561_010, "callback_query": {
        "id": "4382bfdwdsb323b2d9",
        "from": {"id": 987654321, "is_bot": false, "first_name": "Camille", "language_code": "fr"},
        "message": {"message_id": 41, "date": 1_764_839_000,
            "from": {"id": 123456789, "is_bot": true, "first_name": "Relais"},
            "chat": {"id": 987654321, "type": "private"},
            "text": "Votre rendez-vous de demain ?",
            "reply_markup": {"inline_keyboard": [
                [{"text": "Je confirme", "callback_data": "RDV_OK"}],
                [{"text": "Annuler", "callback_data": "RDV_CANCEL"}]]}},
        "chat_instance": "-8000000000000000000", "data": "RDV_OK"}});
    let mut events = delivered(hook(&started, Some(SECRET), &tap));
    assert_eq!(events.len(), 1);
    let ChannelEvent::Inbound(message, confirm) = events.remove(0) else {
        panic!("an inbound tap expected")
    };
    assert_eq!(message.text, "Je confirme");
    assert_eq!(message.payload.as_deref(), Some("RDV_OK"));
    assert_eq!(message.from, CHAT);
    assert_eq!(
        message.provider_id.as_deref(),
        Some("callback:4382bfdwdsb323b2d9")
    );
    assert!(
        fake.calls_of("answerCallbackQuery").is_empty(),
        "not answered before it is stored"
    );
    confirm.confirm();
    let mut answered = Vec::new();
    for _ in 0..100 {
        answered = fake.calls_of("answerCallbackQuery");
        if !answered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        answered,
        [json!({"callback_query_id": "4382bfdwdsb323b2d9"})]
    );
}

#[tokio::test]
async fn unknown_updates_are_taken_with_nothing_stored_and_broken_json_is_refused() {
    let fake = spawn_fake().await;
    let started = start(&fake);
    let joined = json!({"update_id": 5, "my_chat_member": {"chat": {"id": 987654321, "type": "private"},
        "from": {"id": 987654321, "is_bot": false, "first_name": "Camille"}, "date": 1,
        "old_chat_member": {"status": "member"}, "new_chat_member": {"status": "kicked"}}});
    assert!(delivered(hook(&started, Some(SECRET), &joined)).is_empty());
    let broken = json!({"update_id": "x"});
    assert!(matches!(
        hook(&started, Some(SECRET), &broken),
        Err(WebhookError::Malformed(_))
    ));
}

#[tokio::test]
async fn with_a_public_url_the_channel_sets_its_webhook_with_its_secret_when_it_starts() {
    let fake = spawn_fake().await;
    let _started = start_with(json!({"bot_token": TOKEN, "secret_token": SECRET,
        "base_url": fake.base, "public_url": "https://relais.example.com/"}));
    let mut set = Vec::new();
    for _ in 0..100 {
        set = fake.calls_of("setWebhook");
        if !set.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        set,
        [
            json!({"url": "https://relais.example.com/hooks/ch-tg", "secret_token": SECRET,
            "allowed_updates": ["message", "callback_query"]})
        ]
    );
    // Without one, nothing is registered.
    let _quiet = start(&fake);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.calls_of("setWebhook").len(), 1);
}

#[test]
fn a_bad_config_names_its_key() {
    let err =
        relais_channels::check_config("telegram", &json!({"secret_token": SECRET})).unwrap_err();
    assert_eq!(err.pointer, "/bot_token");
    let err = relais_channels::check_config(
        "telegram",
        &json!({"bot_token": TOKEN, "secret_token": "has spaces"}),
    )
    .unwrap_err();
    assert_eq!(err.pointer, "/secret_token");
    assert!(relais_channels::takes_webhooks("telegram"));
    assert_eq!(
        relais_channels::kind_of("telegram"),
        Some(ChannelKind::Telegram)
    );
}
