//! The WhatsApp channel against an in-process fake of Meta's Graph API (axum on
//! 127.0.0.1:0), and webhook deliveries shaped like Meta's documented examples.
//!
//! The fake checks the bearer token, records every body it is sent, and answers by the
//! recipient's number: `33600130429` is rate limited, `33600131047` is outside the
//! 24-hour window, `33600000500` meets a server error; any other number gets a wamid.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use relais_channels::adapter::{ChannelAdapter, OutboundMessage};
use relais_channels::event::{MessageRef, NewInbound};
use relais_channels::whatsapp::{
    InboundKind, Notification, ReplySource, SignatureError, TemplateCategory, TemplateStatus,
    WebhookError, WhatsAppChannel, WhatsAppConfig, parse_webhook, signature,
};
use relais_core::channel::ChannelKind;
use relais_core::content::Content;
use relais_core::retry::ErrorClass;
use relais_core::status::MessageStatus;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const TOKEN: &str = "EAAJB-test-token";
const PHONE_NUMBER_ID: &str = "106540352242922";
const WABA: &str = "102290129340398";
const APP_SECRET: &str = "test-app-secret";

// ---- the fake Graph API ----

#[derive(Clone, Default)]
struct Seen {
    /// Bodies posted to `/messages`, in order.
    sent: Arc<Mutex<Vec<Value>>>,
    /// Query strings of the template list requests, in order.
    template_queries: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

#[derive(Clone)]
struct Fake {
    base: String,
    seen: Seen,
}

fn graph_error(status: StatusCode, code: i64, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "OAuthException", "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": message},
        "fbtrace_id": "AE9jPfwk6-lgxrhmyNUuovy"}});
    (status, Json(body)).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"))
}

async fn messages(
    State(fake): State<Fake>,
    Path((version, phone)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&headers) {
        return graph_error(
            StatusCode::UNAUTHORIZED,
            190,
            "Error validating access token: Session has expired",
        );
    }
    assert_eq!(
        (version.as_str(), phone.as_str()),
        ("v23.0", PHONE_NUMBER_ID)
    );
    let to = body["to"].as_str().unwrap_or_default().to_owned();
    let n = {
        let mut sent = fake.seen.sent.lock().unwrap();
        sent.push(body);
        sent.len()
    };
    match to.as_str() {
        "33600130429" => graph_error(StatusCode::BAD_REQUEST, 130429, "(#130429) Rate limit hit"),
        "33600131047" => graph_error(
            StatusCode::BAD_REQUEST,
            131047,
            "(#131047) Re-engagement message",
        ),
        "33600000500" => {
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
        }
        _ => Json(json!({"messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": format!("wamid.TEST{n}")}]}))
        .into_response(),
    }
}

async fn message_templates(
    State(fake): State<Fake>,
    Path((version, waba)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return graph_error(StatusCode::UNAUTHORIZED, 190, "Invalid OAuth access token");
    }
    let second_page = query.get("after").is_some_and(|after| after == "PAGE2");
    fake.seen.template_queries.lock().unwrap().push(query);
    if second_page {
        return Json(json!({"data": [
            {"name": "promo_noel", "language": "fr", "status": "PAUSED", "category": "MARKETING",
             "components": [{"type": "BODY", "text": "Joyeux Noël"}], "id": "3"}],
            "paging": {"cursors": {"before": "PAGE2", "after": "END"}}}))
        .into_response();
    }
    Json(json!({"data": [
        {"name": "order_shipped", "language": "fr", "status": "APPROVED", "category": "UTILITY",
         "components": [{"type": "BODY", "text": "Bonjour {{1}}, votre commande {{2}} est partie."}], "id": "1"},
        {"name": "otp", "language": "en_US", "status": "APPROVED", "category": "AUTHENTICATION",
         "components": [], "id": "2"}],
        "paging": {"cursors": {"before": "PAGE1", "after": "PAGE2"},
            "next": format!("{}/{version}/{waba}/message_templates?fields=name,language,status,category,components&limit=100&after=PAGE2", fake.base)}}))
    .into_response()
}

/// Starts the fake on the test's runtime.
async fn spawn_fake() -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = Fake {
        base: format!("http://{}", listener.local_addr().unwrap()),
        seen: Seen::default(),
    };
    let app = axum::Router::new()
        .route("/{version}/{phone}/messages", post(messages))
        .route(
            "/{version}/{waba}/message_templates",
            get(message_templates),
        )
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake
}

fn config(base_url: &str, token: &str) -> WhatsAppConfig {
    WhatsAppConfig::parse(
        &json!({"phone_number_id": PHONE_NUMBER_ID, "access_token": token,
        "app_secret": APP_SECRET, "verify_token": "handshake", "business_account_id": WABA,
        "base_url": format!("{base_url}/"), "api_version": "v23.0"}),
    )
    .unwrap()
}

fn channel(fake: &Fake) -> WhatsAppChannel {
    WhatsAppChannel::new(config(&fake.base, TOKEN)).unwrap()
}

fn outbound(to: &str, content: Value) -> OutboundMessage {
    OutboundMessage {
        purpose: relais_core::consent::Purpose::Transactional,
        message_id: "msg-1".into(),
        tenant_id: "default".into(),
        channel: ChannelKind::Whatsapp,
        to: to.into(),
        from: None,
        content: serde_json::from_value::<Content>(content).unwrap(),
        human_agent_since: None,
        attempt: 1,
        now: Timestamp::from_second(1_750_000_000).unwrap(),
    }
}

fn last_sent(fake: &Fake) -> Value {
    fake.seen.sent.lock().unwrap().last().cloned().unwrap()
}

// ---- sending ----

#[tokio::test]
async fn a_text_send_returns_the_wamid_and_posts_the_documented_body() {
    let fake = spawn_fake().await;
    let channel = channel(&fake);
    assert_eq!(channel.kind(), ChannelKind::Whatsapp);
    let ack = channel
        .send(&outbound(
            "+33612345678",
            json!({"text": "Votre colis arrive demain"}),
        ))
        .await
        .unwrap();
    assert_eq!(ack.provider_id, "wamid.TEST1");
    assert_eq!(
        last_sent(&fake),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "33612345678",
               "type": "text", "text": {"preview_url": false, "body": "Votre colis arrive demain"}})
    );
}

#[tokio::test]
async fn reply_buttons_are_posted_with_their_payloads_as_ids() {
    let fake = spawn_fake().await;
    channel(&fake)
        .send(&outbound(
            "+33612345678",
            json!({"text": "Confirmez-vous mardi 10h ?", "buttons": [
            {"type": "reply", "title": "Oui", "payload": "CONFIRM"},
            {"type": "reply", "title": "Non", "payload": "CANCEL"}]}),
        ))
        .await
        .unwrap();
    assert_eq!(
        last_sent(&fake)["interactive"],
        json!({"type": "button", "body": {"text": "Confirmez-vous mardi 10h ?"}, "action": {"buttons": [
            {"type": "reply", "reply": {"id": "CONFIRM", "title": "Oui"}},
            {"type": "reply", "reply": {"id": "CANCEL", "title": "Non"}}]}})
    );
}

#[tokio::test]
async fn a_template_is_posted_with_its_language_and_body_parameters() {
    let fake = spawn_fake().await;
    channel(&fake)
        .send(&outbound(
            "+33612345678",
            json!({"template": "order_shipped", "language": "fr",
            "variables": {"1": "Marie", "2": "A-12"}}),
        ))
        .await
        .unwrap();
    let sent = last_sent(&fake);
    assert_eq!(sent["type"], "template");
    assert_eq!(
        sent["template"],
        json!({"name": "order_shipped", "language": {"code": "fr"}, "components": [{"type": "body",
            "parameters": [{"type": "text", "text": "Marie"}, {"type": "text", "text": "A-12"}]}]})
    );
}

#[tokio::test]
async fn a_rate_limit_is_a_transient_throttle() {
    let fake = spawn_fake().await;
    let e = channel(&fake)
        .send(&outbound("+33600130429", json!({"text": "hi"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "throttled")
    );
    assert!(
        e.reason.contains("130429") && e.reason.contains("Rate limit hit"),
        "{}",
        e.reason
    );
}

#[tokio::test]
async fn a_closed_customer_service_window_is_permanent() {
    let fake = spawn_fake().await;
    let e = channel(&fake)
        .send(&outbound("+33600131047", json!({"text": "hi"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "outside_window")
    );
}

#[tokio::test]
async fn a_refused_token_holds_messages_without_spending_attempts() {
    let fake = spawn_fake().await;
    let channel = WhatsAppChannel::new(config(&fake.base, "EAAJB-expired")).unwrap();
    let e = channel
        .send(&outbound("+33612345678", json!({"text": "hi"})))
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
        fake.seen.sent.lock().unwrap().is_empty(),
        "the fake took nothing"
    );
}

#[tokio::test]
async fn a_server_error_is_transient() {
    let fake = spawn_fake().await;
    let e = channel(&fake)
        .send(&outbound("+33600000500", json!({"text": "hi"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "provider_unavailable")
    );
    assert!(e.reason.contains("HTTP 500"), "{}", e.reason);
}

#[tokio::test]
async fn an_unreachable_graph_api_is_transient() {
    // A port that was just free: nothing listens there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let channel = WhatsAppChannel::new(config(&base, TOKEN)).unwrap();
    let e = channel
        .send(&outbound("+33612345678", json!({"text": "hi"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "provider_unavailable")
    );
}

#[tokio::test]
async fn content_whatsapp_cannot_carry_never_reaches_the_api() {
    let fake = spawn_fake().await;
    let e = channel(&fake)
        .send(&outbound(
            "+33612345678",
            json!({"card": {"title": "Sneaker"}}),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "bad_content")
    );
    assert!(fake.seen.sent.lock().unwrap().is_empty());
}

// ---- templates ----

#[tokio::test]
async fn templates_are_read_across_pages_through_paging_next() {
    let fake = spawn_fake().await;
    let templates = channel(&fake).fetch_templates().await.unwrap();
    let names: Vec<_> = templates.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["order_shipped", "otp", "promo_noel"]);
    assert_eq!(templates[0].status, TemplateStatus::Approved);
    assert_eq!(templates[1].category, TemplateCategory::Authentication);
    assert_eq!(templates[2].status, TemplateStatus::Paused);
    assert_eq!(templates[0].components[0]["type"], "BODY");
    let queries = fake.seen.template_queries.lock().unwrap();
    assert_eq!(queries.len(), 2);
    assert_eq!(
        queries[0]["fields"],
        "name,language,status,category,components"
    );
    assert_eq!(queries[0]["limit"], "100");
    assert_eq!(queries[1]["after"], "PAGE2");
}

// ---- webhooks ----

/// A delivery as Meta sends it, with one change value.
fn delivery(value: Value) -> Vec<u8> {
    json!({"object": "whatsapp_business_account", "entry": [{"id": WABA,
        "changes": [{"value": value, "field": "messages"}]}]})
    .to_string()
    .into_bytes()
}

fn metadata() -> Value {
    json!({"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID})
}

#[test]
fn a_text_message_with_its_contact_becomes_a_new_inbound() {
    let body = delivery(
        json!({"messaging_product": "whatsapp", "metadata": metadata(),
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
        "messages": [{"from": "16505551234", "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
            "timestamp": "1739321024", "text": {"body": "Bonjour, où est ma commande ?"}, "type": "text"}]}),
    );
    let notifications = parse_webhook(&body).unwrap();
    let [Notification::Message(message)] = notifications.as_slice() else {
        panic!("expected one message, got {notifications:?}")
    };
    assert_eq!(message.profile_name.as_deref(), Some("Sheena Nelson"));
    assert_eq!(message.business.phone_number_id, PHONE_NUMBER_ID);
    assert_eq!(message.at, Timestamp::from_second(1_739_321_024).unwrap());
    assert_eq!(
        message.to_new_inbound("default", "ch-wa"),
        NewInbound {
            answers: Vec::new(),
            tenant_id: "default".into(),
            channel: ChannelKind::Whatsapp,
            channel_id: Some("ch-wa".into()),
            from: "16505551234".into(),
            to: "15550783881".into(),
            text: "Bonjour, où est ma commande ?".into(),
            payload: None,
            media: None,
            provider_id: Some(
                "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=".into()
            ),
        }
    );
}

#[test]
fn a_tapped_reply_button_gives_its_title_as_text_and_its_id_as_payload() {
    let body = delivery(
        json!({"messaging_product": "whatsapp", "metadata": metadata(),
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
        "messages": [{"context": {"from": "15550783881", "id": "wamid.OUT1"},
            "from": "16505551234", "id": "wamid.IN2", "timestamp": "1739321030", "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": "CONFIRM", "title": "Oui"}}}]}),
    );
    let notifications = parse_webhook(&body).unwrap();
    let [Notification::Message(message)] = notifications.as_slice() else {
        panic!("expected one message, got {notifications:?}")
    };
    assert_eq!(
        message.kind,
        InboundKind::Reply {
            source: ReplySource::Button,
            title: "Oui".into(),
            payload: "CONFIRM".into()
        }
    );
    assert_eq!(message.payload(), Some("CONFIRM"));
    assert_eq!(message.context_id.as_deref(), Some("wamid.OUT1"));
    assert_eq!(message.to_new_inbound("default", "ch-wa").text, "Oui");
}

#[test]
fn delivered_and_failed_statuses_become_reports_on_the_wamid() {
    let body = delivery(
        json!({"messaging_product": "whatsapp", "metadata": metadata(),
        "statuses": [
            {"id": "wamid.OUT1", "status": "delivered", "timestamp": "1750857384", "recipient_id": "16505551234",
             "pricing": {"billable": true, "pricing_model": "PMP", "category": "utility"}},
            {"id": "wamid.OUT2", "status": "failed", "timestamp": "1750857390", "recipient_id": "16505551234",
             "errors": [{"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable",
                "error_data": {"details": "Message Undeliverable."},
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}]}]}),
    );
    let reports: Vec<_> = parse_webhook(&body)
        .unwrap()
        .into_iter()
        .filter_map(|n| match n {
            Notification::Status(status) => status.to_status_report("default", "ch-wa"),
            Notification::Message(_) => None,
        })
        .collect();
    assert_eq!(reports.len(), 2);
    assert_eq!(
        reports[0].message,
        MessageRef::Provider("wamid.OUT1".into())
    );
    assert_eq!(reports[0].status, MessageStatus::Delivered);
    assert_eq!(
        reports[0].at,
        Some(Timestamp::from_second(1_750_857_384).unwrap())
    );
    assert_eq!(reports[1].status, MessageStatus::Failed);
    let detail = reports[1].detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains("131026") && detail.contains("Message undeliverable"),
        "{detail}"
    );
}

#[test]
fn the_signature_accepts_metas_hmac_and_refuses_anything_else() {
    let config = config("https://graph.facebook.com", TOKEN);
    let body = delivery(json!({"metadata": metadata(), "statuses": []}));
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
fn a_malformed_delivery_is_refused_whole() {
    assert!(matches!(
        parse_webhook(b"{\"object\": "),
        Err(WebhookError::NotJson(_))
    ));
    let missing_from = delivery(json!({"metadata": metadata(),
        "messages": [{"id": "wamid.X", "timestamp": "1739321024", "type": "text", "text": {"body": "hi"}}]}));
    assert_eq!(
        parse_webhook(&missing_from),
        Err(WebhookError::Missing(
            "/entry/0/changes/0/value/messages/0/from".into()
        ))
    );
}
