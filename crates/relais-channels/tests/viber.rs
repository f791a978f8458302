//! The Viber channel against an in-process fake of the REST bot API (axum on
//! 127.0.0.1:0), started the way the engine starts it ([`relais_channels::start`]), and
//! callbacks shaped like the API documentation's, signed as Viber signs them.
//!
//! The fake checks `X-Viber-Auth-Token` (another token gets status 2,
//! `invalidAuthToken`), records every call (method and body), and answers `send_message`
//! by the receiver: `throttled=` gets status 12, `unsubscribed=` status 6, `nodevice=`
//! status 11, `boom=` an HTTP 500; anyone else gets status 0 and the next
//! `message_token`. It also serves `/files/facture.pdf` (2048 bytes) for a file's size.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use relais_channels::adapter::OutboundMessage;
use relais_channels::event::{MessageRef, NewInbound, StatusReport};
use relais_channels::viber::sign;
use relais_channels::{
    ChannelEvent, ChannelIdentity, Started, WebhookAnswer, WebhookError, WebhookRequest,
};
use relais_core::channel::ChannelKind;
use relais_core::content::Content;
use relais_core::retry::ErrorClass;
use relais_core::status::MessageStatus;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9";
const USER: &str = "01234567890A=";
const FIRST_TOKEN: u64 = 5_741_311_803_571_721_087;

// ---- the fake REST bot API ----

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

    fn file(&self) -> String {
        format!("{}/files/facture.pdf", self.base)
    }
}

fn status(status: u64, message: &str) -> Response {
    Json(json!({"status": status, "status_message": message, "chat_hostname": "SN-CHAT-05_"}))
        .into_response()
}

async fn method(
    State(fake): State<Fake>,
    Path(method): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if headers
        .get("x-viber-auth-token")
        .and_then(|v| v.to_str().ok())
        != Some(TOKEN)
    {
        return status(2, "invalidAuthToken");
    }
    let n = {
        let mut calls = fake.calls.lock().unwrap();
        calls.push((method.clone(), body.clone()));
        calls.len() as u64
    };
    if method != "send_message" {
        return status(0, "ok");
    }
    match body["receiver"].as_str().unwrap_or_default() {
        "throttled=" => status(12, "tooManyRequests"),
        "unsubscribed=" => status(6, "receiverNotSubscribed"),
        "nodevice=" => status(11, "receiverNoSuitableDevice"),
        "boom=" => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response(),
        _ => Json(json!({"status": 0, "status_message": "ok",
            "message_token": FIRST_TOKEN + n - 1, "chat_hostname": "SN-CHAT-05_", "billing_status": 1}))
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
        .route("/pa/{method}", post(method))
        .route("/files/facture.pdf", get(|| async { vec![b'%'; 2048] }))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake
}

fn identity() -> ChannelIdentity {
    ChannelIdentity {
        id: "ch-vb".into(),
        tenant_id: "default".into(),
        name: "bot".into(),
    }
}

fn start_with(config: Value) -> Started {
    relais_channels::start("viber", identity(), &config).unwrap()
}

fn start(fake: &Fake) -> Started {
    start_with(json!({"auth_token": TOKEN, "name": "Boutique Lyon",
        "avatar": "https://cdn.example/logo.jpg", "base_url": format!("{}/pa", fake.base)}))
}

fn outbound(to: &str, content: Value) -> OutboundMessage {
    OutboundMessage {
        purpose: relais_core::consent::Purpose::Transactional,
        message_id: "msg-1".into(),
        tenant_id: "default".into(),
        channel: ChannelKind::Viber,
        to: to.into(),
        from: None,
        content: serde_json::from_value::<Content>(content).unwrap(),
        human_agent_since: None,
        attempt: 1,
        now: Timestamp::from_second(1_750_000_000).unwrap(),
    }
}

fn sender() -> Value {
    json!({"name": "Boutique Lyon", "avatar": "https://cdn.example/logo.jpg"})
}

// ---- sending ----

#[tokio::test]
async fn a_text_goes_by_send_message_and_its_provider_id_is_the_message_token() {
    let fake = spawn_fake().await;
    let channel = start(&fake).adapter;
    assert_eq!(channel.kind(), ChannelKind::Viber);
    let ack = channel
        .send(&outbound(
            USER,
            json!({"text": "Votre colis arrive demain"}),
        ))
        .await
        .unwrap();
    assert_eq!(ack.provider_id, FIRST_TOKEN.to_string());
    assert_eq!(
        fake.last(),
        (
            "send_message".to_owned(),
            json!({"receiver": USER, "min_api_version": 1, "sender": sender(),
                "type": "text", "text": "Votre colis arrive demain"})
        )
    );
}

#[tokio::test]
async fn an_image_is_a_picture_with_its_caption_and_a_pdf_a_file_with_its_size() {
    let fake = spawn_fake().await;
    let channel = start(&fake).adapter;
    channel
        .send(&outbound(
            USER,
            json!({"media": {"url": "https://cdn.example/colis.jpg", "mime_type": "image/jpeg",
                "caption": "Votre colis"}}),
        ))
        .await
        .unwrap();
    assert_eq!(
        fake.last().1,
        json!({"receiver": USER, "min_api_version": 1, "sender": sender(),
            "type": "picture", "text": "Votre colis", "media": "https://cdn.example/colis.jpg"})
    );
    channel
        .send(&outbound(
            USER,
            json!({"media": {"url": fake.file(), "mime_type": "application/pdf"}}),
        ))
        .await
        .unwrap();
    assert_eq!(
        fake.last().1,
        json!({"receiver": USER, "min_api_version": 1, "sender": sender(),
            "type": "file", "media": fake.file(), "size": 2048, "file_name": "facture.pdf"})
    );
}

#[tokio::test]
async fn buttons_and_quick_replies_become_a_keyboard_whose_payloads_travel_in_tracking_data() {
    let fake = spawn_fake().await;
    let channel = start(&fake).adapter;
    channel
        .send(&outbound(
            USER,
            json!({"text": "Votre rendez-vous de demain ?",
                "buttons": [{"type": "reply", "title": "Je confirme", "payload": "RDV_OK"},
                            {"type": "url", "title": "Déplacer", "url": "https://rdv.example/42"}],
                "quick_replies": ["Matin", {"title": "Soir", "payload": "PM"}]}),
        ))
        .await
        .unwrap();
    let body = fake.last().1;
    assert_eq!(body["min_api_version"], 2);
    assert_eq!(
        body["keyboard"],
        json!({"Type": "keyboard", "DefaultHeight": false, "Buttons": [
            {"Columns": 6, "Rows": 1, "ActionType": "reply", "ActionBody": "RDV_OK", "Text": "Je confirme"},
            {"Columns": 6, "Rows": 1, "ActionType": "open-url", "ActionBody": "https://rdv.example/42", "Text": "Déplacer"},
            {"Columns": 2, "Rows": 1, "ActionType": "reply", "ActionBody": "Matin", "Text": "Matin"},
            {"Columns": 2, "Rows": 1, "ActionType": "reply", "ActionBody": "PM", "Text": "Soir"}]})
    );
    let tracking: Value = serde_json::from_str(body["tracking_data"].as_str().unwrap()).unwrap();
    assert_eq!(
        tracking,
        json!({"relais_payloads": {"RDV_OK": "Je confirme", "Matin": "Matin", "PM": "Soir"}})
    );
}

#[tokio::test]
async fn a_carousel_is_one_rich_media_message_of_equal_blocks() {
    let fake = spawn_fake().await;
    let channel = start(&fake).adapter;
    channel
        .send(&outbound(
            USER,
            json!({"carousel": [
                {"title": "Sneaker Air", "text": "89 €",
                 "media": {"url": "https://cdn.example/air.jpg", "mime_type": "image/jpeg"},
                 "buttons": [{"type": "reply", "title": "Acheter", "payload": "BUY_AIR"},
                             {"type": "url", "title": "Voir", "url": "https://shop.example/air"}]},
                {"title": "Sneaker Run", "text": "79 €",
                 "media": {"url": "https://cdn.example/run.jpg", "mime_type": "image/jpeg"},
                 "buttons": [{"type": "reply", "title": "Acheter", "payload": "BUY_RUN"}]}]}),
        ))
        .await
        .unwrap();
    let body = fake.last().1;
    assert_eq!(
        (&body["type"], &body["min_api_version"]),
        (&json!("rich_media"), &json!(2))
    );
    assert_eq!(body["alt_text"], "Sneaker Air · Sneaker Run");
    assert_eq!(
        body["rich_media"],
        json!({"Type": "rich_media", "ButtonsGroupColumns": 6, "ButtonsGroupRows": 6,
            "BgColor": "#FFFFFF", "Buttons": [
            {"Columns": 6, "Rows": 3, "ActionType": "none", "Image": "https://cdn.example/air.jpg"},
            {"Columns": 6, "Rows": 1, "ActionType": "none", "Text": "<b>Sneaker Air</b><br>89 €",
             "TextHAlign": "left", "TextVAlign": "top"},
            {"Columns": 6, "Rows": 1, "ActionType": "reply", "ActionBody": "BUY_AIR", "Text": "Acheter"},
            {"Columns": 6, "Rows": 1, "ActionType": "open-url", "ActionBody": "https://shop.example/air", "Text": "Voir"},
            {"Columns": 6, "Rows": 3, "ActionType": "none", "Image": "https://cdn.example/run.jpg"},
            {"Columns": 6, "Rows": 2, "ActionType": "none", "Text": "<b>Sneaker Run</b><br>79 €",
             "TextHAlign": "left", "TextVAlign": "top"},
            {"Columns": 6, "Rows": 1, "ActionType": "reply", "ActionBody": "BUY_RUN", "Text": "Acheter"}]})
    );
    let tracking: Value = serde_json::from_str(body["tracking_data"].as_str().unwrap()).unwrap();
    assert_eq!(
        tracking["relais_payloads"],
        json!({"BUY_AIR": "Acheter", "BUY_RUN": "Acheter"})
    );
}

#[tokio::test]
async fn a_file_whose_size_is_unknown_or_a_bad_receiver_is_refused_before_any_call() {
    let fake = spawn_fake().await;
    let channel = start(&fake).adapter;
    let missing = format!("{}/files/absent.pdf", fake.base);
    let e = channel
        .send(&outbound(
            USER,
            json!({"media": {"url": missing, "mime_type": "application/pdf"}}),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "bad_content")
    );
    assert!(e.reason.contains("size"), "{}", e.reason);
    let e = channel
        .send(&outbound("not a user", json!({"text": "Bonjour"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "invalid_recipient")
    );
    assert!(fake.calls().is_empty(), "nothing reached Viber");
}

// ---- errors ----

#[tokio::test]
async fn an_unsubscribed_receiver_or_one_without_a_suitable_device_is_undeliverable_for_good() {
    let fake = spawn_fake().await;
    let channel = start(&fake).adapter;
    for (receiver, words) in [
        ("unsubscribed=", "receiverNotSubscribed (status 6)"),
        ("nodevice=", "receiverNoSuitableDevice (status 11)"),
    ] {
        let e = channel
            .send(&outbound(receiver, json!({"text": "Bonjour"})))
            .await
            .unwrap_err();
        assert_eq!(
            (e.class, e.code.as_str()),
            (ErrorClass::Permanent, "undeliverable")
        );
        assert!(e.reason.contains(words), "{}", e.reason);
    }
    assert!(channel.is_ready(), "one person's refusal holds no one else");
}

#[tokio::test]
async fn too_many_requests_is_throttled_and_holds_the_channel() {
    let fake = spawn_fake().await;
    let channel = start(&fake).adapter;
    let e = channel
        .send(&outbound("throttled=", json!({"text": "Promo"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "throttled")
    );
    assert!(!channel.is_ready());
}

#[tokio::test]
async fn a_refused_token_waits_for_the_operator_without_spending_attempts() {
    let fake = spawn_fake().await;
    let channel = start_with(json!({"auth_token": "revoked-token", "name": "Boutique",
        "base_url": format!("{}/pa", fake.base)}))
    .adapter;
    let e = channel
        .send(&outbound(USER, json!({"text": "Bonjour"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::NotSent, "auth_failed")
    );
    assert!(e.reason.contains("invalidAuthToken"), "{}", e.reason);
    assert!(!channel.is_ready());
}

#[tokio::test]
async fn server_errors_and_an_unreachable_api_are_retryable() {
    let fake = spawn_fake().await;
    let channel = start(&fake).adapter;
    let e = channel
        .send(&outbound("boom=", json!({"text": "Bonjour"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "provider_unavailable")
    );
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let channel = start_with(json!({"auth_token": TOKEN, "name": "B", "base_url": base})).adapter;
    let e = channel
        .send(&outbound(USER, json!({"text": "Bonjour"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "provider_unavailable")
    );
    assert!(!e.reason.contains(TOKEN), "{}", e.reason);
}

// ---- callbacks ----

/// Posts `body` to the channel's hook with `signature` (`None`: no header).
fn hook_raw(
    started: &Started,
    signature: Option<String>,
    body: &[u8],
) -> Result<WebhookAnswer, WebhookError> {
    let headers: Vec<(String, String)> = signature
        .map(|s| ("x-viber-content-signature".to_owned(), s))
        .into_iter()
        .collect();
    let request = WebhookRequest {
        is_get: false,
        query: &[],
        headers: &headers,
        body,
    };
    let read = started
        .webhook
        .as_ref()
        .expect("a viber channel takes callbacks");
    read(&request)
}

/// Posts `callback` signed as Viber signs it.
fn hook(started: &Started, callback: &Value) -> Result<WebhookAnswer, WebhookError> {
    let body = callback.to_string().into_bytes();
    hook_raw(started, Some(sign(TOKEN, &body)), &body)
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

fn status_of(event: &ChannelEvent) -> &StatusReport {
    match event {
        ChannelEvent::Status(report, _) => report,
        other => panic!("expected a status, got {other:?}"),
    }
}

/// The documentation's `message` callback.
fn message_callback(token: u64, message: Value) -> Value {
    json!({"event": "message", "timestamp": 1_457_764_197_627u64, "chat_hostname": "SN-376_",
        "message_token": token,
        "sender": {"id": USER, "name": "Camille", "avatar": "http://avatar.example.com",
            "country": "FR", "language": "fr", "api_version": 10},
        "message": message, "silent": false})
}

#[tokio::test]
async fn a_callback_unsigned_or_signed_with_another_token_or_over_other_bytes_is_refused() {
    let fake = spawn_fake().await;
    let started = start(&fake);
    let body = message_callback(1, json!({"type": "text", "text": "Bonjour"}))
        .to_string()
        .into_bytes();
    let mut tampered = body.clone();
    tampered.push(b' ');
    for (signature, bytes) in [
        (None, &body),
        (Some(sign("another-token", &body)), &body),
        (Some("not hex".to_owned()), &body),
        (Some(String::new()), &body),
        (Some(sign(TOKEN, &body)), &tampered),
    ] {
        match hook_raw(&started, signature.clone(), bytes) {
            Err(WebhookError::Unauthorized(_)) => {}
            other => panic!("{signature:?} should be refused, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_text_message_becomes_an_inbound_and_a_redelivery_has_the_same_id() {
    let fake = spawn_fake().await;
    let started = start(&fake);
    let callback = message_callback(
        4_912_661_846_655_238_145,
        json!({"type": "text", "text": "Où est mon colis ?"}),
    );
    let events = delivered(hook(&started, &callback));
    assert_eq!(events.len(), 1);
    assert_eq!(
        inbound(&events[0]),
        &NewInbound {
            answers: Vec::new(),
            tenant_id: "default".into(),
            channel: ChannelKind::Viber,
            channel_id: Some("ch-vb".into()),
            from: USER.into(),
            to: "Boutique Lyon".into(),
            text: "Où est mon colis ?".into(),
            payload: None,
            media: None,
            provider_id: Some("4912661846655238145".into()),
        }
    );
    let again = delivered(hook(&started, &callback));
    assert_eq!(
        inbound(&again[0]).provider_id,
        inbound(&events[0]).provider_id
    );
    let next = delivered(hook(
        &started,
        &message_callback(
            4_912_661_846_655_238_146,
            json!({"type": "text", "text": "Merci"}),
        ),
    ));
    assert_ne!(
        inbound(&next[0]).provider_id,
        inbound(&events[0]).provider_id
    );
}

#[tokio::test]
async fn a_key_tap_keeps_the_payload_relais_sent_and_says_its_title() {
    let fake = spawn_fake().await;
    let started = start(&fake);
    let channel = started.adapter.clone();
    channel
        .send(&outbound(
            USER,
            json!({"text": "Votre rendez-vous ?",
                "buttons": [{"type": "reply", "title": "Je confirme", "payload": "RDV_OK"}]}),
        ))
        .await
        .unwrap();
    // Viber hands back the tracking_data of the message the keyboard was under.
    let tracking = fake.last().1["tracking_data"].clone();
    let tap = message_callback(
        77,
        json!({"type": "text", "text": "RDV_OK", "tracking_data": tracking}),
    );
    let events = delivered(hook(&started, &tap));
    let message = inbound(&events[0]);
    assert_eq!(message.text, "Je confirme");
    assert_eq!(message.payload.as_deref(), Some("RDV_OK"));
    // Someone typing the same word without Relais's tracking data just wrote text.
    let typed = message_callback(78, json!({"type": "text", "text": "RDV_OK"}));
    let events = delivered(hook(&started, &typed));
    assert_eq!(
        (
            inbound(&events[0]).text.as_str(),
            inbound(&events[0]).payload.as_deref()
        ),
        ("RDV_OK", None)
    );
}

#[tokio::test]
async fn a_picture_says_its_caption_and_where_the_image_is() {
    let fake = spawn_fake().await;
    let started = start(&fake);
    let picture = message_callback(
        79,
        json!({"type": "picture", "text": "Le colis abîmé",
            "media": "https://dl-media.viber.com/5/share/2/long/photo.jpg",
            "thumbnail": "https://dl-media.viber.com/5/share/2/long/thumb.jpg"}),
    );
    let events = delivered(hook(&started, &picture));
    assert_eq!(
        inbound(&events[0]).text,
        "Le colis abîmé\n[picture] https://dl-media.viber.com/5/share/2/long/photo.jpg"
    );
}

#[tokio::test]
async fn delivered_seen_and_failed_become_statuses_of_the_message_token() {
    let fake = spawn_fake().await;
    let started = start(&fake);
    let token = 4_912_661_846_655_238_145u64;
    let mut seen = Vec::new();
    for (event, extra) in [
        ("delivered", json!({})),
        ("seen", json!({})),
        ("failed", json!({"desc": "failure description"})),
    ] {
        let mut callback = json!({"event": event, "timestamp": 1_457_764_197_627u64,
            "chat_hostname": "SN-CHAT-05_", "message_token": token, "user_id": USER});
        for (key, value) in extra.as_object().unwrap() {
            callback[key] = value.clone();
        }
        let events = delivered(hook(&started, &callback));
        assert_eq!(events.len(), 1);
        seen.push(status_of(&events[0]).clone());
    }
    let at = Some(Timestamp::from_millisecond(1_457_764_197_627).unwrap());
    let report = |status, detail: Option<&str>| StatusReport {
        tenant_id: "default".into(),
        channel_id: "ch-vb".into(),
        message: MessageRef::Provider(token.to_string()),
        status,
        at,
        detail: detail.map(str::to_owned),
        address_gone: false,
    };
    assert_eq!(
        seen,
        [
            report(MessageStatus::Delivered, None),
            report(MessageStatus::Read, None),
            report(MessageStatus::Undelivered, Some("failure description")),
        ]
    );
}

#[tokio::test]
async fn subscription_events_and_the_webhook_check_are_taken_with_nothing_stored() {
    let fake = spawn_fake().await;
    let started = start(&fake);
    for callback in [
        json!({"event": "webhook", "timestamp": 1_457_764_197_627u64,
            "chat_hostname": "SN-219_", "message_token": 241_256_543_215u64}),
        json!({"event": "conversation_started", "timestamp": 1_457_764_197_627u64,
            "message_token": 4_912_661_846_655_238_145u64, "type": "open", "context": "ctx",
            "user": {"id": USER, "name": "Camille", "language": "fr", "api_version": 10},
            "subscribed": false}),
        json!({"event": "subscribed", "timestamp": 1_457_764_197_627u64,
            "user": {"id": USER, "name": "Camille", "language": "fr", "api_version": 10},
            "message_token": 4_912_661_846_655_238_145u64}),
    ] {
        assert!(
            delivered(hook(&started, &callback)).is_empty(),
            "{callback}"
        );
    }
    assert!(matches!(
        hook(&started, &json!({"event": "message", "message_token": 1})),
        Err(WebhookError::Malformed(_))
    ));
    let broken = b"{\"event\": ";
    assert!(matches!(
        hook_raw(&started, Some(sign(TOKEN, broken)), broken),
        Err(WebhookError::Malformed(_))
    ));
}

#[tokio::test]
async fn an_unsubscribe_is_an_opt_out_of_everything_on_viber_with_the_callback_as_proof() {
    let fake = spawn_fake().await;
    let started = start(&fake);
    let callback = json!({"event": "unsubscribed", "timestamp": 1_457_764_197_627u64,
        "user_id": USER, "message_token": 4_912_661_846_655_238_145u64});
    let events = delivered(hook(&started, &callback));
    let [ChannelEvent::Consent(report, _)] = events.as_slice() else {
        panic!("expected one consent change, got {events:?}");
    };
    assert_eq!(report.channel, ChannelKind::Viber);
    assert_eq!(report.address, USER);
    assert_eq!(report.status, relais_core::consent::ConsentStatus::OptedOut);
    assert_eq!(report.purpose, relais_core::consent::Purpose::All);
    assert!(
        report.proof.contains("unsubscribed") && report.proof.contains("2016-03-12T06:29:57.627Z"),
        "the proof names the callback and its time: {}",
        report.proof
    );
    let again = delivered(hook(&started, &callback));
    let [ChannelEvent::Consent(redelivered, _)] = again.as_slice() else {
        panic!("expected one consent change, got {again:?}");
    };
    assert_eq!(
        redelivered.proof, report.proof,
        "a redelivery says the same, so the engine records it once"
    );
}

#[tokio::test]
async fn with_a_public_url_the_channel_sets_its_webhook_when_it_starts() {
    let fake = spawn_fake().await;
    let _started = start_with(json!({"auth_token": TOKEN, "name": "Boutique",
        "base_url": format!("{}/pa", fake.base), "public_url": "https://relais.example.com/"}));
    let mut set = Vec::new();
    for _ in 0..100 {
        set = fake.calls_of("set_webhook");
        if !set.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        set,
        [json!({"url": "https://relais.example.com/hooks/ch-vb",
            "event_types": ["delivered", "seen", "failed", "unsubscribed", "conversation_started"],
            "send_name": true, "send_photo": false})]
    );
    let _quiet = start(&fake);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.calls_of("set_webhook").len(), 1);
}

#[test]
fn a_bad_config_names_its_key() {
    let err = relais_channels::check_config("viber", &json!({"name": "B"})).unwrap_err();
    assert_eq!(err.pointer, "/auth_token");
    let err = relais_channels::check_config("viber", &json!({"auth_token": TOKEN})).unwrap_err();
    assert_eq!(err.pointer, "/name");
    assert!(relais_channels::takes_webhooks("viber"));
    assert_eq!(relais_channels::kind_of("viber"), Some(ChannelKind::Viber));
}
