//! The Messenger and Instagram channels against an in-process fake of Meta's Send API
//! (axum on 127.0.0.1:0), and webhook deliveries shaped like Meta's documented examples
//! for both the `page` and the `instagram` objects.
//!
//! The fake checks the bearer token and its `appsecret_proof`, records every body it is
//! sent, and answers by the recipient's id: `613` is rate limited, `2018278` is outside
//! the 24-hour window, `1545041` is unavailable, `500` meets a server error; any other id
//! gets a `message_id`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jiff::Timestamp;
use relais_channels::adapter::{ChannelAdapter, OutboundMessage};
use relais_channels::event::{MessageRef, NewInbound};
use relais_channels::messenger::{
    InboundKind, MessagingTag, MessengerChannel, MessengerConfig, Notification, Platform,
    ReceiptState, WebhookError, appsecret_proof, parse_webhook,
};
use relais_channels::whatsapp::{SignatureError, signature};
use relais_core::channel::ChannelKind;
use relais_core::content::Content;
use relais_core::retry::ErrorClass;
use relais_core::status::MessageStatus;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const TOKEN: &str = "EAAG-page-token";
const APP_SECRET: &str = "test-app-secret";
const PAGE_ID: &str = "106540352242922";
const IG_ID: &str = "17841405822304914";
const PSID: &str = "1254477777772919";

// ---- the fake Send API ----

#[derive(Clone)]
struct Fake {
    base: String,
    /// Bodies posted to `/me/messages`, in order.
    sent: Arc<Mutex<Vec<Value>>>,
}

fn graph_error(status: StatusCode, code: i64, subcode: Option<i64>, message: &str) -> Response {
    let mut error = json!({"message": message, "type": "OAuthException", "code": code,
        "fbtrace_id": "BLBz/WZt8dN"});
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    (status, Json(json!({ "error": error }))).into_response()
}

fn authorized(headers: &HeaderMap, query: &HashMap<String, String>) -> bool {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"));
    let proof = query
        .get("appsecret_proof")
        .is_some_and(|proof| *proof == appsecret_proof(APP_SECRET, TOKEN));
    bearer && proof
}

async fn messages(
    State(fake): State<Fake>,
    Path(version): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&headers, &query) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            190,
            Some(460),
            "Error validating access token: Session has expired",
        );
    }
    assert_eq!(version, "v23.0");
    let to = body["recipient"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let n = {
        let mut sent = fake.sent.lock().unwrap();
        sent.push(body);
        sent.len()
    };
    match to.as_str() {
        "613" => graph_error(
            StatusCode::BAD_REQUEST,
            613,
            None,
            "Calls to this api have exceeded the rate limit.",
        ),
        "2018278" => graph_error(
            StatusCode::BAD_REQUEST,
            10,
            Some(2_018_278),
            "(#10) This message is sent outside of allowed window.",
        ),
        "1545041" => graph_error(
            StatusCode::BAD_REQUEST,
            551,
            Some(1_545_041),
            "This person isn't available right now.",
        ),
        "500" => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response(),
        _ => Json(json!({"recipient_id": to, "message_id": format!("m_TEST{n}")})).into_response(),
    }
}

async fn spawn_fake() -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = Fake {
        base: format!("http://{}", listener.local_addr().unwrap()),
        sent: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/{version}/me/messages", post(messages))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake
}

fn config(platform: Platform, base_url: &str, token: &str) -> MessengerConfig {
    let account = match platform {
        Platform::Messenger => PAGE_ID,
        Platform::Instagram => IG_ID,
    };
    MessengerConfig::parse(
        platform,
        &json!({"page_id": account, "access_token": token, "app_secret": APP_SECRET,
        "verify_token": "meatyhamhock", "base_url": format!("{base_url}/"), "api_version": "v23.0"}),
    )
    .unwrap()
}

fn channel(platform: Platform, fake: &Fake) -> MessengerChannel {
    MessengerChannel::new(config(platform, &fake.base, TOKEN)).unwrap()
}

fn outbound(platform: Platform, to: &str, content: Value) -> OutboundMessage {
    OutboundMessage {
        purpose: relais_core::consent::Purpose::Transactional,
        message_id: "msg-1".into(),
        tenant_id: "default".into(),
        channel: platform.kind(),
        to: to.into(),
        from: None,
        content: serde_json::from_value::<Content>(content).unwrap(),
        human_agent_since: None,
        attempt: 1,
        now: Timestamp::from_second(1_750_000_000).unwrap(),
    }
}

fn last_sent(fake: &Fake) -> Value {
    fake.sent.lock().unwrap().last().cloned().unwrap()
}

async fn send_error(to: &str) -> (ErrorClass, String, String) {
    let fake = spawn_fake().await;
    let e = channel(Platform::Messenger, &fake)
        .send(&outbound(Platform::Messenger, to, json!({"text": "hi"})))
        .await
        .unwrap_err();
    (e.class, e.code, e.reason)
}

// ---- sending ----

#[tokio::test]
async fn a_text_send_returns_the_message_id_and_posts_the_documented_body() {
    let fake = spawn_fake().await;
    let channel = channel(Platform::Messenger, &fake);
    assert_eq!(channel.kind(), ChannelKind::Messenger);
    let ack = channel
        .send(&outbound(
            Platform::Messenger,
            PSID,
            json!({"text": "Votre colis arrive demain"}),
        ))
        .await
        .unwrap();
    assert_eq!(ack.provider_id, "m_TEST1");
    assert_eq!(
        last_sent(&fake),
        json!({"recipient": {"id": PSID}, "messaging_type": "RESPONSE",
               "message": {"text": "Votre colis arrive demain"}})
    );
}

#[tokio::test]
async fn an_instagram_card_is_posted_as_a_generic_template_but_quick_replies_under_it_are_refused()
{
    let fake = spawn_fake().await;
    let channel = channel(Platform::Instagram, &fake);
    assert_eq!(channel.kind(), ChannelKind::Instagram);
    channel
        .send(&outbound(
            Platform::Instagram,
            PSID,
            json!({"card": {"title": "Sneaker", "text": "89 €",
            "media": {"url": "https://cdn.example/s.jpg", "mime_type": "image/jpeg"},
            "buttons": [{"type": "url", "title": "Voir", "url": "https://shop.example/s"}]}}),
        ))
        .await
        .unwrap();
    assert_eq!(
        last_sent(&fake)["message"],
        json!({"attachment": {"type": "template", "payload": {"template_type": "generic", "elements": [
            {"title": "Sneaker", "subtitle": "89 €", "image_url": "https://cdn.example/s.jpg",
             "buttons": [{"type": "web_url", "url": "https://shop.example/s", "title": "Voir"}]}]}}})
    );
    let e = channel
        .send(&outbound(
            Platform::Instagram,
            PSID,
            json!({"card": {"title": "Sneaker", "text": "89 €"}, "quick_replies": ["Oui"]}),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "bad_content")
    );
    assert_eq!(fake.sent.lock().unwrap().len(), 1, "nothing reached Meta");
}

#[tokio::test]
async fn an_agent_reply_past_the_window_goes_with_the_human_agent_tag() {
    let fake = spawn_fake().await;
    let channel = channel(Platform::Messenger, &fake);
    let tag = channel
        .config()
        .agent_reply_tag(jiff::SignedDuration::from_hours(30));
    assert_eq!(tag, MessagingTag::HumanAgent);
    channel
        .send_tagged(
            &outbound(
                Platform::Messenger,
                PSID,
                json!({"text": "Désolé pour l'attente"}),
            ),
            tag,
        )
        .await
        .unwrap();
    let sent = last_sent(&fake);
    assert_eq!(
        (&sent["messaging_type"], &sent["tag"]),
        (&json!("MESSAGE_TAG"), &json!("HUMAN_AGENT"))
    );
}

#[tokio::test]
async fn a_rate_limit_is_a_transient_throttle() {
    let (class, code, reason) = send_error("613").await;
    assert_eq!((class, code.as_str()), (ErrorClass::Transient, "throttled"));
    assert!(reason.contains("code 613"), "{reason}");
}

#[tokio::test]
async fn a_closed_window_is_permanent() {
    let (class, code, _) = send_error("2018278").await;
    assert_eq!(
        (class, code.as_str()),
        (ErrorClass::Permanent, "outside_window")
    );
}

#[tokio::test]
async fn an_unavailable_person_is_undeliverable() {
    let (class, code, _) = send_error("1545041").await;
    assert_eq!(
        (class, code.as_str()),
        (ErrorClass::Permanent, "undeliverable")
    );
}

#[tokio::test]
async fn a_server_error_is_transient() {
    let (class, code, reason) = send_error("500").await;
    assert_eq!(
        (class, code.as_str()),
        (ErrorClass::Transient, "provider_unavailable")
    );
    assert!(reason.contains("HTTP 500"), "{reason}");
}

#[tokio::test]
async fn a_refused_token_holds_messages_without_spending_attempts() {
    let fake = spawn_fake().await;
    let channel =
        MessengerChannel::new(config(Platform::Messenger, &fake.base, "EAAG-expired")).unwrap();
    let e = channel
        .send(&outbound(Platform::Messenger, PSID, json!({"text": "hi"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::NotSent, "auth_failed")
    );
    assert!(
        !channel.is_ready(),
        "the channel waits for the operator instead of retrying at once"
    );
    assert!(
        fake.sent.lock().unwrap().is_empty(),
        "the fake took nothing"
    );
}

#[tokio::test]
async fn an_unreachable_send_api_is_transient() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let channel = MessengerChannel::new(config(Platform::Messenger, &base, TOKEN)).unwrap();
    let e = channel
        .send(&outbound(Platform::Messenger, PSID, json!({"text": "hi"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "provider_unavailable")
    );
}

#[tokio::test]
async fn a_recipient_that_is_not_a_scoped_id_never_reaches_meta() {
    let fake = spawn_fake().await;
    let e = channel(Platform::Messenger, &fake)
        .send(&outbound(
            Platform::Messenger,
            "+33612345678",
            json!({"text": "hi"}),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "invalid_recipient")
    );
    assert!(fake.sent.lock().unwrap().is_empty());
}

// ---- webhooks ----

/// A delivery as Meta sends it: one entry for `account` with its `messaging` events.
fn delivery(object: &str, account: &str, events: Value) -> Vec<u8> {
    json!({"object": object, "entry": [{"id": account, "time": 1458692752478u64, "messaging": events}]})
        .to_string()
        .into_bytes()
}

fn notifications(platform: Platform, body: &[u8]) -> Vec<Notification> {
    parse_webhook(platform, body)
        .unwrap()
        .into_iter()
        .flat_map(|entry| entry.notifications)
        .collect()
}

fn only_message(platform: Platform, body: &[u8]) -> relais_channels::messenger::InboundMessage {
    match notifications(platform, body).as_slice() {
        [Notification::Message(message)] => message.clone(),
        other => panic!("expected one message, got {other:?}"),
    }
}

#[test]
fn a_messenger_text_becomes_a_new_inbound_from_the_psid_to_the_page() {
    let body = delivery(
        "page",
        PAGE_ID,
        json!([{"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": 1458692752478u64,
        "message": {"mid": "m_1457764197618:41d102a3e1ae206a38", "text": "hello, world!"}}]),
    );
    let message = only_message(Platform::Messenger, &body);
    assert_eq!(
        message.at,
        Timestamp::from_millisecond(1_458_692_752_478).unwrap()
    );
    assert_eq!(
        message.to_new_inbound("default", "ch-fb"),
        NewInbound {
            answers: Vec::new(),
            tenant_id: "default".into(),
            channel: ChannelKind::Messenger,
            channel_id: Some("ch-fb".into()),
            from: PSID.into(),
            to: PAGE_ID.into(),
            text: "hello, world!".into(),
            payload: None,
            media: None,
            provider_id: Some("m_1457764197618:41d102a3e1ae206a38".into()),
        }
    );
}

#[test]
fn an_instagram_quick_reply_gives_its_title_as_text_and_its_payload() {
    let body = delivery(
        "instagram",
        IG_ID,
        json!([{"sender": {"id": PSID}, "recipient": {"id": IG_ID}, "timestamp": 1502905976377u64,
        "message": {"mid": "aWdfZAG1faXRlbToxOklH", "text": "Matin",
            "quick_reply": {"payload": "SLOT_AM"}}}]),
    );
    let message = only_message(Platform::Instagram, &body);
    assert_eq!(
        message.kind,
        InboundKind::QuickReply {
            title: "Matin".into(),
            payload: "SLOT_AM".into()
        }
    );
    let inbound = message.to_new_inbound("default", "ch-ig");
    assert_eq!(
        (inbound.channel, inbound.text.as_str(), inbound.to.as_str()),
        (ChannelKind::Instagram, "Matin", IG_ID)
    );
}

#[test]
fn a_postback_gives_its_title_as_text_and_its_payload() {
    let body = delivery(
        "page",
        PAGE_ID,
        json!([{"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": 1527459824u64,
        "postback": {"mid": "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM", "title": "Suivre ma commande", "payload": "TRACK"}}]),
    );
    let message = only_message(Platform::Messenger, &body);
    assert_eq!(message.payload(), Some("TRACK"));
    assert_eq!(message.text(), "Suivre ma commande");
    assert_eq!(message.mid, "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM");
}

#[test]
fn an_attachment_is_described_with_its_url() {
    let body = delivery(
        "instagram",
        IG_ID,
        json!([{"sender": {"id": PSID}, "recipient": {"id": IG_ID}, "timestamp": 1569262485349u64,
        "message": {"mid": "aWdf2", "attachments": [
            {"type": "image", "payload": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1"}}]}}]),
    );
    assert_eq!(
        only_message(Platform::Instagram, &body).text(),
        "[image] https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1"
    );
}

#[test]
fn echoes_of_our_own_sends_are_ignored_on_both_platforms() {
    for (platform, object, account) in [
        (Platform::Messenger, "page", PAGE_ID),
        (Platform::Instagram, "instagram", IG_ID),
    ] {
        let body = delivery(
            object,
            account,
            json!([{"sender": {"id": account}, "recipient": {"id": PSID}, "timestamp": 1457764197627u64,
            "message": {"is_echo": true, "app_id": 1517776481860111u64, "mid": "m_OUT", "text": "hi"}}]),
        );
        assert!(notifications(platform, &body).is_empty(), "{object}");
    }
}

#[test]
fn a_delivery_becomes_a_delivered_report_per_mid() {
    let body = delivery(
        "page",
        PAGE_ID,
        json!([{"sender": {"id": PSID}, "recipient": {"id": PAGE_ID},
        "delivery": {"mids": ["m_TEST1", "m_TEST2"], "watermark": 1458668856253u64}}]),
    );
    let notifications = notifications(Platform::Messenger, &body);
    let [Notification::Receipt(receipt)] = notifications.as_slice() else {
        panic!("expected one receipt")
    };
    assert_eq!(receipt.state, ReceiptState::Delivered);
    let reports = receipt.to_status_reports("default", "ch-fb");
    assert_eq!(
        reports
            .iter()
            .map(|r| (r.message.clone(), r.status))
            .collect::<Vec<_>>(),
        vec![
            (
                MessageRef::Provider("m_TEST1".into()),
                MessageStatus::Delivered
            ),
            (
                MessageRef::Provider("m_TEST2".into()),
                MessageStatus::Delivered
            ),
        ]
    );
    assert_eq!(
        reports[0].at,
        Some(Timestamp::from_millisecond(1_458_668_856_253).unwrap())
    );
}

#[test]
fn the_signature_accepts_metas_hmac_and_refuses_anything_else() {
    let config = config(Platform::Messenger, "https://graph.facebook.com", TOKEN);
    let body = delivery("page", PAGE_ID, json!([]));
    let header = signature::sign(APP_SECRET, &body);
    assert_eq!(config.verify_signature(Some(&header), &body), Ok(()));
    let wrong = signature::sign("another-secret", &body);
    assert_eq!(
        config.verify_signature(Some(&wrong), &body),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        config.verify_signature(None, &body),
        Err(SignatureError::Missing)
    );
    let mut changed = body.clone();
    changed.extend_from_slice(b"\n");
    assert_eq!(
        config.verify_signature(Some(&header), &changed),
        Err(SignatureError::Mismatch),
        "a body changed after signing is refused"
    );
}

#[test]
fn another_pages_entry_is_told_apart_by_its_id() {
    // The hook refuses the whole delivery when any entry's id is not the channel's; the
    // parser gives it the ids to compare.
    let body = json!({"object": "page", "entry": [
        {"id": PAGE_ID, "time": 1458692752478u64, "messaging": []},
        {"id": "999999999", "time": 1458692752478u64, "messaging": []}]});
    let ids: Vec<String> = parse_webhook(Platform::Messenger, body.to_string().as_bytes())
        .unwrap()
        .into_iter()
        .map(|entry| entry.account_id)
        .collect();
    assert_eq!(ids, [PAGE_ID, "999999999"]);
}

#[test]
fn a_malformed_or_misdirected_delivery_is_refused_whole() {
    assert!(matches!(
        parse_webhook(Platform::Messenger, b"{\"object\": "),
        Err(WebhookError::NotJson(_))
    ));
    let instagram = delivery("instagram", IG_ID, json!([]));
    assert_eq!(
        parse_webhook(Platform::Messenger, &instagram),
        Err(WebhookError::WrongObject {
            expected: "page",
            found: "instagram".into()
        })
    );
    let missing_sender = delivery(
        "page",
        PAGE_ID,
        json!([{"recipient": {"id": PAGE_ID}, "timestamp": 1458692752478u64,
        "message": {"mid": "m_X", "text": "hi"}}]),
    );
    assert_eq!(
        parse_webhook(Platform::Messenger, &missing_sender),
        Err(WebhookError::Missing("/entry/0/messaging/0/sender".into()))
    );
}
