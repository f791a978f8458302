//! The APNs channel against an in-process fake of Apple's provider API that speaks
//! HTTP/2 only (hyper's HTTP/2 server, h2c with prior knowledge on 127.0.0.1:0), started
//! the way the engine starts it.
//!
//! The fake records each request's HTTP version, path, headers and body, verifies the
//! ES256 provider token with the key's public half, and answers by device token (64 hex
//! characters): `a…` is delivered (`apns-id`), `0…` is 410 `Unregistered`, `b…` 400
//! `BadDeviceToken`, `c…` 429 `TooManyRequests`, `d…` 503, `e…` 403
//! `ExpiredProviderToken` for the first provider token it sees and delivered with any
//! other, `f…` always 403 `InvalidProviderToken`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jiff::Timestamp;
use relais_channels::adapter::{ChannelAdapter, OutboundMessage, SendError};
use relais_channels::apns::{ApnsChannel, ApnsConfig};
use relais_channels::{ChannelIdentity, start};
use relais_core::channel::ChannelKind;
use relais_core::content::Content;
use relais_core::retry::ErrorClass;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const TEAM: &str = "ABC123DEFG";
const KEY_ID: &str = "KEY456HIJK";
const TOPIC: &str = "com.example.relais";

fn device(c: char) -> String {
    c.to_string().repeat(64)
}

#[derive(Debug, Clone)]
struct Seen {
    version: Version,
    path: String,
    headers: HashMap<String, String>,
    body: Value,
    jwt: String,
}

#[derive(Clone)]
struct Fake {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    first_jwt: Arc<Mutex<Option<String>>>,
}

fn pem(der: &[u8]) -> String {
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(der)
    )
}

fn answer(status: u16, body: Value, apns_id: Option<&str>) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(status);
    if let Some(id) = apns_id {
        builder = builder.header("apns-id", id);
    }
    builder
        .body(Full::new(Bytes::from(if body.is_null() {
            String::new()
        } else {
            body.to_string()
        })))
        .unwrap()
}

async fn handle(fake: Fake, public: Vec<u8>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let version = request.version();
    let path = request.uri().path().to_owned();
    let headers: HashMap<String, String> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let jwt = headers
        .get("authorization")
        .and_then(|a| a.strip_prefix("bearer "))
        .unwrap_or("")
        .to_owned();
    let parts: Vec<&str> = jwt.split('.').collect();
    let verified = parts.len() == 3
        && UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &public)
            .verify(
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &URL_SAFE_NO_PAD.decode(parts[2]).unwrap_or_default(),
            )
            .is_ok();
    fake.seen.lock().unwrap().push(Seen {
        version,
        path: path.clone(),
        headers,
        body,
        jwt: jwt.clone(),
    });
    if !verified {
        return answer(403, json!({"reason": "InvalidProviderToken"}), None);
    }
    let first = fake
        .first_jwt
        .lock()
        .unwrap()
        .get_or_insert_with(|| jwt.clone())
        .clone();
    let to = path.trim_start_matches("/3/device/");
    let delivered = answer(
        200,
        Value::Null,
        Some("EC1BF194-B3B2-424A-89A9-5A918A6E6B5B"),
    );
    match to.chars().next() {
        Some('0') => answer(
            410,
            json!({"reason": "Unregistered", "timestamp": 1750000000000i64}),
            None,
        ),
        Some('b') => answer(400, json!({"reason": "BadDeviceToken"}), None),
        Some('c') => answer(429, json!({"reason": "TooManyRequests"}), None),
        Some('d') => answer(503, json!({"reason": "ServiceUnavailable"}), None),
        Some('e') if jwt == first => answer(403, json!({"reason": "ExpiredProviderToken"}), None),
        Some('f') => answer(403, json!({"reason": "InvalidProviderToken"}), None),
        _ => delivered,
    }
}

async fn spawn_fake(public: Vec<u8>) -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = Fake {
        base: format!("http://{}", listener.local_addr().unwrap()),
        seen: Arc::default(),
        first_jwt: Arc::default(),
    };
    let server = fake.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (fake, public) = (server.clone(), public.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let (fake, public) = (fake.clone(), public.clone());
                    async move { Ok::<_, std::convert::Infallible>(handle(fake, public, request).await) }
                });
                // HTTP/2 only: an HTTP/1.1 request is not understood.
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    fake
}

struct Setup {
    fake: Fake,
    config: Value,
}

async fn setup() -> Setup {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
        &SystemRandom::new(),
    )
    .unwrap();
    let fake = spawn_fake(pair.public_key().as_ref().to_vec()).await;
    let config = json!({"team_id": TEAM, "key_id": KEY_ID, "private_key": pem(pkcs8.as_ref()),
        "topic": TOPIC, "base_url": format!("{}/", fake.base)});
    Setup { fake, config }
}

fn channel(setup: &Setup) -> ApnsChannel {
    ApnsChannel::new(ApnsConfig::parse(&setup.config).unwrap()).unwrap()
}

fn outbound(to: &str, content: Value) -> OutboundMessage {
    OutboundMessage {
        purpose: relais_core::consent::Purpose::Transactional,
        message_id: "0197a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
        tenant_id: "default".into(),
        channel: ChannelKind::Apns,
        to: to.into(),
        from: None,
        content: serde_json::from_value::<Content>(content).unwrap(),
        human_agent_since: None,
        attempt: 1,
        now: Timestamp::from_second(1_750_000_000).unwrap(),
    }
}

async fn send_error(c: char) -> (SendError, ApnsChannel, Setup) {
    let setup = setup().await;
    let channel = channel(&setup);
    let e = channel
        .send(&outbound(&device(c), json!({"text": "hi"})))
        .await
        .unwrap_err();
    (e, channel, setup)
}

fn decoded(segment: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

#[tokio::test]
async fn a_push_goes_over_http2_with_the_documented_headers_body_and_es256_token() {
    let setup = setup().await;
    let started = start(
        "apns",
        ChannelIdentity {
            id: "ch_apns".into(),
            tenant_id: "default".into(),
            name: "iOS app".into(),
        },
        &setup.config,
    )
    .unwrap();
    assert!(
        started.webhook.is_none() && started.events.is_none(),
        "push has no inbound"
    );
    let channel = started.adapter;
    assert_eq!(channel.kind(), ChannelKind::Apns);
    let ack = channel
        .send(&outbound(
            &device('a'),
            json!({"card": {"title": "Colis 42", "text": "Livré à 14 h"}}),
        ))
        .await
        .unwrap();
    assert_eq!(ack.provider_id, "EC1BF194-B3B2-424A-89A9-5A918A6E6B5B");
    channel
        .send(&outbound(&device('a'), json!({"text": "Encore"})))
        .await
        .unwrap();
    let seen = setup.fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let first = &seen[0];
    assert_eq!(first.version, Version::HTTP_2, "APNs speaks HTTP/2 only");
    assert_eq!(first.path, format!("/3/device/{}", device('a')));
    for (name, value) in [
        ("apns-topic", TOPIC),
        ("apns-push-type", "alert"),
        ("apns-priority", "10"),
        ("apns-expiration", "1750086400"),
    ] {
        assert_eq!(
            first.headers.get(name).map(String::as_str),
            Some(value),
            "{name}"
        );
    }
    assert_eq!(
        first.body,
        json!({"aps": {"alert": {"title": "Colis 42", "body": "Livré à 14 h"}, "sound": "default"},
            "relais_message_id": "0197a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"})
    );
    let parts: Vec<&str> = first.jwt.split('.').collect();
    assert_eq!(decoded(parts[0]), json!({"alg": "ES256", "kid": KEY_ID}));
    let claims = decoded(parts[1]);
    assert_eq!(claims["iss"], TEAM);
    assert!(claims["iat"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(
        seen[1].jwt, first.jwt,
        "the provider token is reused, not made per push"
    );
}

#[tokio::test]
async fn a_dead_device_token_is_gone_for_good() {
    for c in ['0', 'b'] {
        let (e, channel, _) = send_error(c).await;
        assert_eq!(
            (e.class, e.code.as_str(), e.address_gone),
            (ErrorClass::Permanent, "subscription_gone", true),
            "{c}"
        );
        assert!(channel.is_ready());
    }
    let (e, _, _) = send_error('0').await;
    assert!(e.reason.contains("Unregistered"), "{}", e.reason);
}

#[tokio::test]
async fn throttled_and_server_errors_are_transient() {
    let (e, _, _) = send_error('c').await;
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "throttled")
    );
    let (e, _, _) = send_error('d').await;
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "provider_unavailable")
    );
}

#[tokio::test]
async fn an_expired_provider_token_is_replaced_once_and_the_push_retried() {
    let setup = setup().await;
    let channel = channel(&setup);
    let ack = channel
        .send(&outbound(&device('e'), json!({"text": "hi"})))
        .await
        .unwrap();
    assert!(!ack.provider_id.is_empty());
    let seen = setup.fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one refusal, one retry");
    assert_ne!(seen[0].jwt, seen[1].jwt, "the retry carries a new token");
}

#[tokio::test]
async fn a_token_refused_again_is_auth_failed_and_holds_the_channel() {
    let (e, channel, setup) = send_error('f').await;
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::NotSent, "auth_failed")
    );
    assert!(!channel.is_ready());
    assert_eq!(
        setup.fake.seen.lock().unwrap().len(),
        2,
        "refreshed once, not in a loop"
    );
}

#[tokio::test]
async fn a_bad_address_or_key_is_refused_before_anything_is_sent() {
    let setup = setup().await;
    let e = channel(&setup)
        .send(&outbound("not-a-token", json!({"text": "hi"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "invalid_recipient")
    );
    assert!(setup.fake.seen.lock().unwrap().is_empty());
    let mut config = setup.config.clone();
    config["private_key"] = json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----");
    assert_eq!(
        ApnsConfig::parse(&config).unwrap_err().pointer,
        "/private_key"
    );
    let mut config = setup.config.clone();
    config["team_id"] = json!("short");
    assert_eq!(ApnsConfig::parse(&config).unwrap_err().pointer, "/team_id");
    let shown = format!("{:?}", ApnsConfig::parse(&setup.config).unwrap());
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}
