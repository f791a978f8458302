//! The FCM channel against an in-process fake of Google's token endpoint and the FCM
//! HTTP v1 API (axum on 127.0.0.1:0), started the way the engine starts it.
//!
//! The token endpoint verifies the signed assertion (RS256, FCM's scope) with the key's
//! public half and counts its exchanges. `messages:send` checks the bearer token and
//! records bodies; it answers by device token: `gone` is `UNREGISTERED` (404),
//! `malformed` an `INVALID_ARGUMENT` about the token (400), `quota` is 429
//! `QUOTA_EXCEEDED` with `Retry-After: 17`, `busy` 503 with `Retry-After: 5`, `refused`
//! 401, `broken` 500; any other token gets `{"name": "projects/…/messages/{n}"}`.

use axum::Json;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use relais_channels::adapter::{ChannelAdapter, OutboundMessage};
use relais_channels::fcm::{FcmChannel, FcmConfig};
use relais_channels::{ChannelIdentity, check_config, start};
use relais_core::channel::ChannelKind;
use relais_core::content::Content;
use relais_core::retry::ErrorClass;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const KEY: &str = include_str!("fixtures/rcs-service-account-key.pem");
const PROJECT: &str = "relais-push-1";
const ACCESS: &str = "ya29.c.fcm-test-token";
const DEVICE: &str = "dK3xVq0wRb2:APA91bHPRgkF3JUikC4ENAHEeMrd41Zxv3hVZjC9KtT8OvPVGJ-hQMRKRrZuJAEcl7B338qju59zJMjw2DELjzEvxwYv7hH5Ynpc1ODQ0aT4U4OFEeco8ohsN5PjL1iC2dNtk2BAokeMCg2ZXKqpc8FXKmhX94kIxQ";

#[derive(Clone, Default)]
struct Fake {
    base: String,
    public_key: Vec<u8>,
    exchanges: Arc<Mutex<usize>>,
    sent: Arc<Mutex<Vec<Value>>>,
}

fn google_error(status: StatusCode, google: &str, fcm: &str, message: &str) -> Response {
    (
        status,
        Json(
            json!({"error": {"code": status.as_u16(), "message": message, "status": google,
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": fcm}]}}),
        ),
    )
        .into_response()
}

async fn token(State(fake): State<Fake>, Form(form): Form<HashMap<String, String>>) -> Response {
    assert_eq!(
        form.get("grant_type").map(String::as_str),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    let jwt = form.get("assertion").cloned().unwrap_or_default();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &fake.public_key)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("the assertion is signed with the service account's key");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/firebase.messaging"
    );
    assert_eq!(claims["aud"], format!("{}/token", fake.base));
    *fake.exchanges.lock().unwrap() += 1;
    Json(json!({"access_token": ACCESS, "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

async fn send(State(fake): State<Fake>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let device = body["message"]["token"].as_str().unwrap_or("").to_owned();
    if bearer != format!("Bearer {ACCESS}") || device == "refused" {
        return google_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "THIRD_PARTY_AUTH_ERROR",
            "Request had invalid authentication credentials.",
        );
    }
    let n = {
        let mut sent = fake.sent.lock().unwrap();
        sent.push(body);
        sent.len()
    };
    let with_retry = |status: StatusCode, google: &str, fcm: &str, after: &str| {
        let mut response = google_error(status, google, fcm, "try later");
        response
            .headers_mut()
            .insert("retry-after", after.parse().unwrap());
        response
    };
    match device.as_str() {
        "gone" => google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "UNREGISTERED",
            "Requested entity was not found.",
        ),
        "malformed" => google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
        ),
        "quota" => with_retry(
            StatusCode::TOO_MANY_REQUESTS,
            "RESOURCE_EXHAUSTED",
            "QUOTA_EXCEEDED",
            "17",
        ),
        "busy" => with_retry(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "UNAVAILABLE",
            "5",
        ),
        "broken" => google_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "INTERNAL",
            "Internal error encountered.",
        ),
        _ => Json(json!({"name": format!("projects/{PROJECT}/messages/0:17500000{n}%abc")}))
            .into_response(),
    }
}

async fn spawn_fake() -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let account = FcmConfig::parse(&config_json(&base)).unwrap();
    let fake = Fake {
        base,
        public_key: account.service_account().public_key_der().to_vec(),
        ..Fake::default()
    };
    let app = axum::Router::new()
        .route("/token", post(token))
        .route(
            "/token-refused",
            post(|| async {
                (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."})),
                )
            }),
        )
        .route(
            &format!("/v1/projects/{PROJECT}/messages:send"),
            post(send),
        )
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake
}

fn config_json(base: &str) -> Value {
    json!({"service_account": {"type": "service_account", "project_id": PROJECT,
        "private_key_id": "3f1a", "private_key": KEY,
        "client_email": "relais@relais-push-1.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token"},
        "base_url": format!("{base}/"), "token_uri": format!("{base}/token")})
}

fn channel(fake: &Fake) -> FcmChannel {
    FcmChannel::new(FcmConfig::parse(&config_json(&fake.base)).unwrap()).unwrap()
}

fn outbound(to: &str, content: Value) -> OutboundMessage {
    OutboundMessage {
        purpose: relais_core::consent::Purpose::Transactional,
        message_id: "0197a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
        tenant_id: "default".into(),
        channel: ChannelKind::Fcm,
        to: to.into(),
        from: None,
        content: serde_json::from_value::<Content>(content).unwrap(),
        human_agent_since: None,
        attempt: 1,
        now: Timestamp::from_second(1_750_000_000).unwrap(),
    }
}

async fn send_error(to: &str) -> (relais_channels::adapter::SendError, FcmChannel) {
    let fake = spawn_fake().await;
    let channel = channel(&fake);
    let e = channel
        .send(&outbound(to, json!({"text": "hi"})))
        .await
        .unwrap_err();
    (e, channel)
}

#[tokio::test]
async fn a_text_and_a_card_go_as_documented_with_one_token_reused() {
    let fake = spawn_fake().await;
    let identity = ChannelIdentity {
        id: "ch_fcm".into(),
        tenant_id: "default".into(),
        name: "Android app".into(),
    };
    check_config("fcm", &config_json(&fake.base)).unwrap();
    let started = start("fcm", identity, &config_json(&fake.base)).unwrap();
    assert!(
        started.webhook.is_none() && started.events.is_none(),
        "push has no inbound"
    );
    let channel = started.adapter;
    assert_eq!(channel.kind(), ChannelKind::Fcm);
    let ack = channel
        .send(&outbound(
            DEVICE,
            json!({"text": "Votre colis arrive demain"}),
        ))
        .await
        .unwrap();
    assert_eq!(
        ack.provider_id,
        format!("projects/{PROJECT}/messages/0:175000001%abc")
    );
    channel
        .send(&outbound(
            DEVICE,
            json!({"card": {"title": "Colis 42", "text": "Livré à 14 h",
                "media": {"url": "https://cdn.example.com/colis.jpg", "mime_type": "image/jpeg"}}}),
        ))
        .await
        .unwrap();
    assert_eq!(
        *fake.exchanges.lock().unwrap(),
        1,
        "the token is fetched once and reused"
    );
    let sent = fake.sent.lock().unwrap().clone();
    assert_eq!(
        sent[0],
        json!({"message": {"token": DEVICE,
            "notification": {"body": "Votre colis arrive demain"},
            "data": {"relais_message_id": "0197a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"},
            "android": {"priority": "high"}}})
    );
    assert_eq!(
        sent[1]["message"]["notification"],
        json!({"title": "Colis 42", "body": "Livré à 14 h",
            "image": "https://cdn.example.com/colis.jpg"})
    );
}

#[tokio::test]
async fn a_dead_device_token_is_gone_for_good() {
    for device in ["gone", "malformed"] {
        let (e, channel) = send_error(device).await;
        assert_eq!(
            (e.class, e.code.as_str(), e.address_gone),
            (ErrorClass::Permanent, "subscription_gone", true),
            "{device}"
        );
        assert!(
            channel.is_ready(),
            "one dead token does not hold the channel"
        );
    }
    let (e, _) = send_error("gone").await;
    assert!(e.reason.contains("UNREGISTERED"), "{}", e.reason);
}

#[tokio::test]
async fn quota_and_busy_answers_hold_the_channel_for_their_delay() {
    let (e, channel) = send_error("quota").await;
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "throttled")
    );
    assert!(e.reason.contains("retry after 17 s"), "{}", e.reason);
    assert!(!channel.is_ready(), "held while Retry-After runs");
    let (e, channel) = send_error("busy").await;
    assert_eq!(e.code, "throttled");
    assert!(e.reason.contains("retry after 5 s"), "{}", e.reason);
    assert!(!channel.is_ready());
}

#[tokio::test]
async fn refused_credentials_wait_without_spending_attempts_and_server_errors_retry() {
    let (e, channel) = send_error("refused").await;
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::NotSent, "auth_failed")
    );
    assert!(
        !channel.is_ready(),
        "held until the operator fixes the credentials"
    );
    let (e, channel) = send_error("broken").await;
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "provider_unavailable")
    );
    assert!(channel.is_ready());
}

#[tokio::test]
async fn a_token_endpoint_that_refuses_the_account_is_auth_failed() {
    let fake = spawn_fake().await;
    let mut config = config_json(&fake.base);
    config["token_uri"] = json!(format!("{}/token-refused", fake.base));
    let channel = FcmChannel::new(FcmConfig::parse(&config).unwrap()).unwrap();
    let e = channel
        .send(&outbound(DEVICE, json!({"text": "hi"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::NotSent, "auth_failed")
    );
    assert!(e.reason.contains("invalid_grant"), "{}", e.reason);
    assert!(
        fake.sent.lock().unwrap().is_empty(),
        "nothing sent without a token"
    );
}
