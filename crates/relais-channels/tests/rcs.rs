//! The RCS channel against an in-process fake of Google's RBM API and token endpoint
//! (axum on 127.0.0.1:0), and webhook deliveries shaped like Google's documented ones.
//!
//! The token endpoint checks the assertion's RS256 signature with the test key's public
//! half and its claims, and hands out numbered tokens; the API checks the bearer token
//! is the last one handed out, records what it is sent, and answers by number:
//! `+33600000404` has no RCS (404 on the capability check and on sends), `+33600000429`
//! is throttled, `+33600000401` meets a refused token, `+33600000500` a server error; any
//! other number takes the message, once per message id.

use axum::Json;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jiff::Timestamp;
use relais_channels::adapter::{ChannelAdapter, OutboundMessage};
use relais_channels::event::{MessageRef, NewInbound};
use relais_channels::rcs::handshake::{self, Verification};
use relais_channels::rcs::{
    DeliveryError, InboundKind, Notification, RcsChannel, RcsConfig, SignatureError,
    SuggestionSource, WebhookError, signature,
};
use relais_core::channel::ChannelKind;
use relais_core::content::Content;
use relais_core::retry::ErrorClass;
use relais_core::status::MessageStatus;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const AGENT: &str = "relais_ab12cd34_agent";
const CLIENT_TOKEN: &str = "SJENCPGJESMGUFPY";
const EMAIL: &str = "relais@relais-test.iam.gserviceaccount.com";
const SCOPE: &str = "https://www.googleapis.com/auth/rcsbusinessmessaging";
const KEY: &str = include_str!("fixtures/rcs-service-account-key.pem");

// ---- the fake RBM API and token endpoint ----

#[derive(Clone, Default)]
struct Seen {
    /// Tokens handed out, in order.
    tokens: Arc<Mutex<Vec<String>>>,
    /// Numbers asked about, in order.
    capability_checks: Arc<Mutex<Vec<String>>>,
    /// Every message post, in order.
    posts: Arc<Mutex<Vec<Post>>>,
    /// Message ids taken, once each.
    taken: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone, Debug)]
struct Post {
    phone: String,
    query: HashMap<String, String>,
    body: Value,
}

#[derive(Clone)]
struct Fake {
    base: String,
    public_key: Vec<u8>,
    seen: Seen,
}

fn google_error(status: StatusCode, name: &str, message: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": name}});
    (status, Json(body)).into_response()
}

/// Checks an assertion as Google would: its RS256 signature under the account's public
/// key, then its claims. The reason when it is refused.
fn check_assertion(fake: &Fake, jwt: &str) -> Result<(), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("not three segments".into());
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| e.to_string())?;
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &fake.public_key)
        .verify(format!("{header}.{claims}").as_bytes(), &signature)
        .map_err(|_| "Invalid JWT Signature.".to_owned())?;
    let decode = |segment: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let (header, claims) = (decode(header)?, decode(claims)?);
    if header["alg"] != "RS256" {
        return Err(format!("alg {}", header["alg"]));
    }
    let lifetime = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
    let now = Timestamp::now().as_second();
    let fresh = (claims["iat"].as_i64().unwrap_or(0) - now).abs() < 60;
    if claims["iss"] != EMAIL
        || claims["scope"] != SCOPE
        || claims["aud"] != format!("{}/token", fake.base)
        || lifetime != 3600
        || !fresh
    {
        return Err(format!("Invalid JWT claims: {claims}"));
    }
    Ok(())
}

async fn token(State(fake): State<Fake>, Form(form): Form<HashMap<String, String>>) -> Response {
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    let assertion = form.get("assertion").cloned().unwrap_or_default();
    if let Err(reason) = check_assertion(&fake, &assertion) {
        let body = json!({"error": "invalid_grant", "error_description": reason});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    let mut tokens = fake.seen.tokens.lock().unwrap();
    let token = format!("ya29.fake-{}", tokens.len() + 1);
    tokens.push(token.clone());
    Json(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})).into_response()
}

fn authorized(fake: &Fake, headers: &HeaderMap) -> bool {
    let last = fake.seen.tokens.lock().unwrap().last().cloned();
    let given = headers.get("authorization").and_then(|v| v.to_str().ok());
    last.is_some_and(|token| given == Some(format!("Bearer {token}").as_str()))
}

async fn capabilities(
    State(fake): State<Fake>,
    Path(phone): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&fake, &headers) {
        return google_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        );
    }
    assert_eq!(query.get("agentId").map(String::as_str), Some(AGENT));
    assert_eq!(query.get("requestId").map(String::len), Some(36), "a UUID");
    fake.seen
        .capability_checks
        .lock()
        .unwrap()
        .push(phone.clone());
    if phone == "+33600000404" {
        return google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "Requested entity was not found.",
        );
    }
    Json(
        json!({"features": ["RICHCARD_STANDALONE", "RICHCARD_CAROUSEL", "ACTION_DIAL",
        "ACTION_OPEN_URL", "ACTION_VIEW_LOCATION"]}),
    )
    .into_response()
}

async fn agent_messages(
    State(fake): State<Fake>,
    Path(phone): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&fake, &headers) || phone == "+33600000401" {
        return google_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        );
    }
    assert_eq!(query.get("agentId").map(String::as_str), Some(AGENT));
    let id = query.get("messageId").cloned().unwrap_or_default();
    fake.seen.posts.lock().unwrap().push(Post {
        phone: phone.clone(),
        query,
        body: body.clone(),
    });
    match phone.as_str() {
        "+33600000404" => google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "Requested entity was not found.",
        ),
        "+33600000429" => google_error(
            StatusCode::TOO_MANY_REQUESTS,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Agent messages'.",
        ),
        "+33600000500" => google_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "Internal error encountered.",
        ),
        _ => {
            let mut taken = fake.seen.taken.lock().unwrap();
            if taken.contains(&id) {
                return google_error(
                    StatusCode::CONFLICT,
                    "ALREADY_EXISTS",
                    "Message with this ID already exists.",
                );
            }
            taken.push(id.clone());
            Json(json!({"name": format!("phones/{phone}/agentMessages/{id}"),
                "sendTime": "2025-06-15T10:00:00.123Z", "contentMessage": body["contentMessage"]}))
            .into_response()
        }
    }
}

async fn spawn_fake() -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let account = RcsConfig::parse(&config_json("http://unused", true)).unwrap();
    let fake = Fake {
        base: format!("http://{}", listener.local_addr().unwrap()),
        public_key: account.service_account().public_key_der().to_vec(),
        seen: Seen::default(),
    };
    let app = axum::Router::new()
        .route("/token", post(token))
        .route("/v1/phones/{phone}/capabilities", get(capabilities))
        .route("/v1/phones/{phone}/agentMessages", post(agent_messages))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake
}

fn key_file(email: &str) -> Value {
    json!({"type": "service_account", "project_id": "relais-test", "private_key_id": "3f1a",
        "private_key": KEY, "client_email": email, "client_id": "1",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token"})
}

fn config_json(base: &str, check_capability: bool) -> Value {
    json!({"agent_id": AGENT, "service_account": key_file(EMAIL), "client_token": CLIENT_TOKEN,
        "base_url": format!("{base}/"), "token_uri": format!("{base}/token"),
        "check_capability": check_capability})
}

fn channel(fake: &Fake) -> RcsChannel {
    RcsChannel::new(RcsConfig::parse(&config_json(&fake.base, true)).unwrap()).unwrap()
}

fn outbound(id: &str, to: &str, content: Value) -> OutboundMessage {
    OutboundMessage {
        purpose: relais_core::consent::Purpose::Transactional,
        message_id: id.into(),
        tenant_id: "default".into(),
        channel: ChannelKind::Rcs,
        to: to.into(),
        from: None,
        content: serde_json::from_value::<Content>(content).unwrap(),
        human_agent_since: None,
        attempt: 1,
        now: Timestamp::from_second(1_750_000_000).unwrap(),
    }
}

const ID: &str = "0197a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

async fn send_error(to: &str) -> (ErrorClass, String, String) {
    let fake = spawn_fake().await;
    let e = channel(&fake)
        .send(&outbound(ID, to, json!({"text": "hi"})))
        .await
        .unwrap_err();
    (e.class, e.code, e.reason)
}

// ---- sending ----

#[tokio::test]
async fn a_text_goes_with_our_message_id_after_one_capability_check_and_one_token() {
    let fake = spawn_fake().await;
    let channel = channel(&fake);
    assert_eq!(channel.kind(), ChannelKind::Rcs);
    let ack = channel
        .send(&outbound(
            ID,
            "+33612345678",
            json!({"text": "Votre colis arrive demain"}),
        ))
        .await
        .unwrap();
    assert_eq!(ack.provider_id, ID, "Google answers our own id back");
    let second = "0197a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";
    channel
        .send(&outbound(
            second,
            "+33612345678",
            json!({"text": "Il est arrivé"}),
        ))
        .await
        .unwrap();
    let posts = fake.seen.posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 2);
    let Post { phone, query, body } = &posts[0];
    assert_eq!(phone, "+33612345678");
    assert_eq!(query.get("messageId").map(String::as_str), Some(ID));
    assert_eq!(
        body,
        &json!({"contentMessage": {"text": "Votre colis arrive demain"}})
    );
    assert_eq!(
        fake.seen.capability_checks.lock().unwrap().as_slice(),
        ["+33612345678"],
        "the answer is remembered"
    );
    assert_eq!(
        fake.seen.tokens.lock().unwrap().len(),
        1,
        "the token is cached"
    );
}

#[tokio::test]
async fn a_card_with_suggestions_is_posted_as_a_rich_card() {
    let fake = spawn_fake().await;
    channel(&fake)
        .send(&outbound(
            ID,
            "+33612345678",
            json!({"card": {"title": "Sneaker", "text": "89 €",
            "media": {"url": "https://cdn.example/s.jpg", "mime_type": "image/jpeg"},
            "buttons": [{"type": "call", "title": "Appeler", "phone": "+33170000000"}]},
            "quick_replies": [{"title": "Autre taille", "payload": "SIZE"}]}),
        ))
        .await
        .unwrap();
    let body = fake.seen.posts.lock().unwrap()[0].body.clone();
    assert_eq!(
        body["contentMessage"],
        json!({"richCard": {"standaloneCard": {"cardOrientation": "VERTICAL", "cardContent": {
            "title": "Sneaker", "description": "89 €",
            "media": {"height": "MEDIUM", "contentInfo": {"fileUrl": "https://cdn.example/s.jpg"}},
            "suggestions": [{"action": {"text": "Appeler", "postbackData": "Appeler",
                "dialAction": {"phoneNumber": "+33170000000"}}}]}}},
            "suggestions": [{"reply": {"text": "Autre taille", "postbackData": "SIZE"}}]})
    );
}

#[tokio::test]
async fn a_phone_without_rcs_is_not_reachable_at_once_and_nothing_is_posted() {
    let fake = spawn_fake().await;
    let channel = channel(&fake);
    for _ in 0..2 {
        let e = channel
            .send(&outbound(ID, "+33600000404", json!({"text": "hi"})))
            .await
            .unwrap_err();
        assert_eq!(
            (e.class, e.code.as_str()),
            (ErrorClass::Permanent, "not_reachable")
        );
    }
    assert!(fake.seen.posts.lock().unwrap().is_empty());
    assert_eq!(
        fake.seen.capability_checks.lock().unwrap().len(),
        1,
        "asked once an hour"
    );
}

#[tokio::test]
async fn without_the_capability_check_a_404_on_the_send_is_not_reachable() {
    let fake = spawn_fake().await;
    let channel =
        RcsChannel::new(RcsConfig::parse(&config_json(&fake.base, false)).unwrap()).unwrap();
    let e = channel
        .send(&outbound(ID, "+33600000404", json!({"text": "hi"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "not_reachable")
    );
    assert!(fake.seen.capability_checks.lock().unwrap().is_empty());
    assert_eq!(fake.seen.posts.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_retry_with_the_same_message_id_is_taken_as_sent_and_delivered_once() {
    let fake = spawn_fake().await;
    let channel = channel(&fake);
    let message = outbound(ID, "+33612345678", json!({"text": "Code : 482913"}));
    assert_eq!(channel.send(&message).await.unwrap().provider_id, ID);
    assert_eq!(channel.send(&message).await.unwrap().provider_id, ID);
    assert_eq!(fake.seen.posts.lock().unwrap().len(), 2);
    assert_eq!(fake.seen.taken.lock().unwrap().as_slice(), [ID]);
}

#[tokio::test]
async fn quota_exhaustion_is_a_transient_throttle() {
    let (class, code, reason) = send_error("+33600000429").await;
    assert_eq!((class, code.as_str()), (ErrorClass::Transient, "throttled"));
    assert!(reason.contains("RESOURCE_EXHAUSTED"), "{reason}");
}

#[tokio::test]
async fn a_server_error_is_transient() {
    let (class, code, _) = send_error("+33600000500").await;
    assert_eq!(
        (class, code.as_str()),
        (ErrorClass::Transient, "provider_unavailable")
    );
}

#[tokio::test]
async fn a_refused_token_holds_messages_and_the_next_send_gets_a_new_one() {
    let fake = spawn_fake().await;
    let channel = channel(&fake);
    let e = channel
        .send(&outbound(ID, "+33600000401", json!({"text": "hi"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::NotSent, "auth_failed")
    );
    assert!(!channel.is_ready(), "the channel waits for the operator");
    channel
        .send(&outbound(ID, "+33612345678", json!({"text": "hi"})))
        .await
        .unwrap();
    assert_eq!(
        fake.seen.tokens.lock().unwrap().len(),
        2,
        "the refused token was dropped"
    );
}

#[tokio::test]
async fn an_assertion_google_refuses_is_auth_failed_and_nothing_is_asked() {
    let fake = spawn_fake().await;
    let mut config = config_json(&fake.base, true);
    config["service_account"] = key_file("stranger@other.iam.gserviceaccount.com");
    let channel = RcsChannel::new(RcsConfig::parse(&config).unwrap()).unwrap();
    let e = channel
        .send(&outbound(ID, "+33612345678", json!({"text": "hi"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::NotSent, "auth_failed")
    );
    assert!(e.reason.contains("invalid_grant"), "{}", e.reason);
    assert!(!channel.is_ready());
    assert!(fake.seen.capability_checks.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unreachable_api_is_transient() {
    // A port that was just free: nothing listens there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let channel = RcsChannel::new(RcsConfig::parse(&config_json(&base, true)).unwrap()).unwrap();
    let e = channel
        .send(&outbound(ID, "+33612345678", json!({"text": "hi"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "provider_unavailable")
    );
}

#[tokio::test]
async fn content_rcs_cannot_carry_and_bad_numbers_never_reach_google() {
    let fake = spawn_fake().await;
    let channel = channel(&fake);
    let e = channel
        .send(&outbound(
            ID,
            "+33612345678",
            json!({"template": "order_shipped"}),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "bad_content")
    );
    let e = channel
        .send(&outbound(ID, "alice@example.com", json!({"text": "hi"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "invalid_number")
    );
    assert!(fake.seen.tokens.lock().unwrap().is_empty());
    assert!(fake.seen.posts.lock().unwrap().is_empty());
}

// ---- webhooks ----

fn config() -> RcsConfig {
    RcsConfig::parse(&config_json(
        "https://rcsbusinessmessaging.googleapis.com",
        true,
    ))
    .unwrap()
}

/// A delivery of `payload` as Google pushes it, and its `X-Goog-Signature` under `token`.
fn pushed(payload: &Value, token: &str) -> (Vec<u8>, String) {
    let data = payload.to_string();
    let body = json!({"message": {"attributes": {}, "data": STANDARD.encode(&data),
        "messageId": "2070443601311540", "message_id": "2070443601311540",
        "publishTime": "2025-06-15T10:00:00.749Z", "publish_time": "2025-06-15T10:00:00.749Z"},
        "subscription": "projects/rbm-relais-ab12cd34/subscriptions/rbm-agent-subscription"});
    (
        body.to_string().into_bytes(),
        signature::sign(token, data.as_bytes()),
    )
}

fn read(payload: &Value) -> Notification {
    let (body, signature) = pushed(payload, CLIENT_TOKEN);
    config().read_delivery(Some(&signature), &body).unwrap()
}

fn user_message(content: Value) -> Value {
    let mut payload = json!({"senderPhoneNumber": "+33612345678",
        "messageId": "MxEQvPbWKGTiOi-fdEAH7QaA", "sendTime": "2025-06-15T10:00:00.041253Z",
        "agentId": format!("{AGENT}@rbm.goog")});
    for (key, value) in content.as_object().unwrap() {
        payload[key] = value.clone();
    }
    payload
}

#[test]
fn a_text_message_becomes_a_new_inbound_from_the_sender_to_the_agent() {
    let Notification::Message(message) = read(&user_message(
        json!({"text": "Bonjour, où est mon colis ?"}),
    )) else {
        panic!("a message")
    };
    assert_eq!(
        message.at,
        Some("2025-06-15T10:00:00.041253Z".parse().unwrap())
    );
    assert_eq!(
        message.to_new_inbound("default", "ch-rcs", config().agent_id()),
        NewInbound {
            answers: Vec::new(),
            tenant_id: "default".into(),
            channel: ChannelKind::Rcs,
            channel_id: Some("ch-rcs".into()),
            from: "+33612345678".into(),
            to: AGENT.into(),
            text: "Bonjour, où est mon colis ?".into(),
            payload: None,
            media: None,
            provider_id: Some("MxEQvPbWKGTiOi-fdEAH7QaA".into()),
        }
    );
}

#[test]
fn a_tapped_suggestion_gives_its_text_and_keeps_its_postback_data() {
    let payload = user_message(
        json!({"suggestionResponse": {"postbackData": "CONFIRM_0197a1b2",
        "text": "Oui, mardi 10h", "type": "REPLY"}}),
    );
    let Notification::Message(message) = read(&payload) else {
        panic!("a message")
    };
    assert_eq!(
        message.kind,
        InboundKind::Suggestion {
            source: SuggestionSource::Reply,
            text: "Oui, mardi 10h".into(),
            postback_data: "CONFIRM_0197a1b2".into()
        }
    );
    assert_eq!(message.postback_data(), Some("CONFIRM_0197a1b2"));
    assert_eq!(
        message.to_new_inbound("default", "ch-rcs", AGENT).text,
        "Oui, mardi 10h"
    );
}

#[test]
fn delivered_and_read_events_report_on_our_own_message_id() {
    let mut reports = Vec::new();
    for event_type in ["DELIVERED", "READ"] {
        let payload = json!({"senderPhoneNumber": "+33612345678", "eventType": event_type,
            "eventId": "MxfDsZTp9xTx2z6aIA2fV4Pw", "messageId": ID,
            "sendTime": "2025-06-15T10:00:05.123Z", "agentId": format!("{AGENT}@rbm.goog")});
        let Notification::Event(event) = read(&payload) else {
            panic!("an event")
        };
        reports.push(event.to_status_report("default", "ch-rcs").unwrap());
    }
    assert_eq!(reports[0].status, MessageStatus::Delivered);
    assert_eq!(reports[1].status, MessageStatus::Read);
    for report in &reports {
        assert_eq!(report.message, MessageRef::Ours(ID.into()));
        assert_eq!(report.at, Some("2025-06-15T10:00:05.123Z".parse().unwrap()));
    }
}

#[test]
fn the_signature_accepts_googles_hmac_and_refuses_anything_else() {
    let payload = user_message(json!({"text": "Bonjour"}));
    let (body, good) = pushed(&payload, CLIENT_TOKEN);
    assert!(config().read_delivery(Some(&good), &body).is_ok());
    let (_, forged) = pushed(&payload, "ANOTHERTOKEN");
    assert_eq!(
        config().read_delivery(Some(&forged), &body),
        Err(DeliveryError::Unsigned(SignatureError::Mismatch))
    );
    assert_eq!(
        config().read_delivery(None, &body),
        Err(DeliveryError::Unsigned(SignatureError::Missing))
    );
    let (changed, _) = pushed(&user_message(json!({"text": "Bonsoir"})), CLIENT_TOKEN);
    assert_eq!(
        config().read_delivery(Some(&good), &changed),
        Err(DeliveryError::Unsigned(SignatureError::Mismatch)),
        "a payload changed after signing is refused"
    );
}

#[test]
fn a_delivery_for_another_agent_is_refused() {
    let mut payload = user_message(json!({"text": "Bonjour"}));
    payload["agentId"] = json!("someone_else_agent@rbm.goog");
    let (body, signature) = pushed(&payload, CLIENT_TOKEN);
    assert_eq!(
        config().read_delivery(Some(&signature), &body),
        Err(DeliveryError::OtherAgent(
            "someone_else_agent@rbm.goog".into()
        ))
    );
}

#[test]
fn a_malformed_delivery_is_refused_whole() {
    let signature = signature::sign(CLIENT_TOKEN, b"");
    for body in [
        &b"{\"message\": "[..],
        br#"{"subscription": "s"}"#,
        br#"{"message": {"data": "%%%"}}"#,
    ] {
        assert!(
            matches!(
                config().read_delivery(Some(&signature), body),
                Err(DeliveryError::Malformed(_))
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let no_sender = json!({"messageId": "m", "agentId": AGENT, "text": "hi"});
    let (body, signature) = pushed(&no_sender, CLIENT_TOKEN);
    assert_eq!(
        config().read_delivery(Some(&signature), &body),
        Err(DeliveryError::Malformed(WebhookError::Unrecognised))
    );
    let no_id = user_message(json!({"text": "hi"}));
    let mut no_id = no_id.as_object().unwrap().clone();
    no_id.remove("messageId");
    let (body, signature) = pushed(&Value::Object(no_id), CLIENT_TOKEN);
    assert_eq!(
        config().read_delivery(Some(&signature), &body),
        Err(DeliveryError::Malformed(WebhookError::Missing(
            "/messageId".into()
        )))
    );
}

#[test]
fn the_verification_handshake_answers_the_secret_to_the_holder_of_the_client_token() {
    let body = json!({"clientToken": CLIENT_TOKEN, "secret": "1234567890"});
    let call = Verification::from_body(&body).unwrap();
    assert_eq!(
        handshake::answer(config().client_token(), &call),
        Ok("1234567890".into())
    );
    let guess = Verification::from_body(&json!({"clientToken": "GUESS", "secret": "1"})).unwrap();
    assert!(handshake::answer(config().client_token(), &guess).is_err());
}
