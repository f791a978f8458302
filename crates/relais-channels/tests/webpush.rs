//! The Web Push channel's crypto checked against references written elsewhere, and its
//! sends against an in-process fake push service (axum on 127.0.0.1:0), started the way
//! the engine starts it ([`relais_channels::start`]).
//!
//! - RFC 8291 Appendix A: with the appendix's keys, salt and auth secret, Relais writes
//!   the appendix's body byte for byte, and the test's own reader (the RFC's steps done
//!   again here) decrypts the appendix's body.
//! - PyPI's `http_ece` decrypts a body Relais sealed for a fresh subscription, and PyPI's
//!   `cryptography` verifies the VAPID JWT (`tests/webpush/peer.py`; installed by
//!   `scripts/install-webpush-peers.sh`; skipped when missing unless
//!   `RELAIS_REQUIRE_PEERS=1`).
//! - The fake push service checks each push's headers and VAPID token (signature by
//!   ring, audience, expiry, subject), decrypts the body with the subscription's private
//!   key, and answers by the endpoint's last path segment: `gone` 410, `missing` 404,
//!   `big` 413, `busy` 429 with `Retry-After: 7`, `down` 503, `denied` 403; any other
//!   201 with a `Location`.

#![allow(deprecated)] // ring::test::rand::FixedSliceRandom: a known private key for ECDH

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use relais_channels::adapter::OutboundMessage;
use relais_channels::event::MessageRef;
use relais_channels::webpush::{ReceiverKeys, encrypt, encrypt_with};
use relais_channels::{
    ChannelEvent, ChannelIdentity, Started, WebhookAnswer, WebhookError, WebhookRequest,
};
use relais_core::channel::ChannelKind;
use relais_core::content::Content;
use relais_core::retry::ErrorClass;
use relais_core::status::MessageStatus;
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::agreement::{ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, ECDSA_P256_SHA256_FIXED};
use serde_json::{Value, json};
use std::process::Command;
use std::sync::{Arc, Mutex};

fn b64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

// ---- RFC 8291, Appendix A ----

const PLAINTEXT: &str = "When I grow up, I want to be a watermelon";
const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
const AS_PUBLIC: &str =
    "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
const UA_PUBLIC: &str =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
const BODY: &str = concat!(
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYW",
    "AmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxs",
    "j_Qulcy4a-fN"
);

/// A P-256 key with a known private scalar (ring generates keys only from its random
/// source, so the scalar is given as that source's bytes).
fn key_of(scalar: &[u8]) -> EphemeralPrivateKey {
    let fixed = ring::test::rand::FixedSliceRandom { bytes: scalar };
    EphemeralPrivateKey::generate(&ECDH_P256, &fixed).unwrap()
}

fn keys_of(p256dh: &[u8], auth: &[u8]) -> ReceiverKeys {
    ReceiverKeys {
        p256dh: p256dh.try_into().unwrap(),
        auth: auth.try_into().unwrap(),
    }
}

/// The user agent's side (RFC 8291 §3.4, RFC 8188 §2), written again here from the RFCs:
/// the plaintext of a one-record aes128gcm body.
fn decrypt(body: &[u8], ua_private: &[u8], auth: &[u8]) -> Result<Vec<u8>, String> {
    struct Len(usize);
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, salt)
            .extract(ikm)
            .expand(&[info], Len(len))
            .unwrap()
            .fill(&mut out)
            .unwrap();
        out
    }
    if body.len() < 21 {
        return Err("shorter than the header".into());
    }
    let salt = &body[..16];
    let rs = u32::from_be_bytes(body[16..20].try_into().unwrap());
    let idlen = body[20] as usize;
    if idlen != 65 || body.len() < 21 + idlen {
        return Err(format!("keyid of {idlen} bytes, 65 expected"));
    }
    let as_public = &body[21..21 + idlen];
    let ciphertext = &body[21 + idlen..];
    if ciphertext.len() > rs as usize {
        return Err("more than one record".into());
    }
    let ua_key = key_of(ua_private);
    let ua_public = ua_key.compute_public_key().unwrap().as_ref().to_vec();
    let ecdh = agree_ephemeral(
        ua_key,
        &UnparsedPublicKey::new(&ECDH_P256, as_public),
        |shared| shared.to_vec(),
    )
    .map_err(|_| "bad sender key".to_string())?;
    let key_info = [b"WebPush: info\0".as_slice(), &ua_public, as_public].concat();
    let ikm = hkdf(auth, &ecdh, &key_info, 32);
    let cek = hkdf(salt, &ikm, b"Content-Encoding: aes128gcm\0", 16);
    let nonce = hkdf(salt, &ikm, b"Content-Encoding: nonce\0", 12);
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek).unwrap());
    let mut record = ciphertext.to_vec();
    let plain = key
        .open_in_place(
            Nonce::try_assume_unique_for_key(&nonce).unwrap(),
            Aad::empty(),
            &mut record,
        )
        .map_err(|_| "the tag does not verify".to_string())?;
    let end = plain
        .iter()
        .rposition(|b| *b != 0)
        .ok_or("no padding delimiter")?;
    if plain[end] != 0x02 {
        return Err(format!(
            "delimiter {:#x}, 0x02 expected (last record)",
            plain[end]
        ));
    }
    Ok(plain[..end].to_vec())
}

#[test]
fn relais_writes_rfc_8291_appendix_a_byte_for_byte() {
    let ephemeral = key_of(&b64(AS_PRIVATE));
    assert_eq!(
        ephemeral.compute_public_key().unwrap().as_ref(),
        b64(AS_PUBLIC).as_slice()
    );
    let salt: [u8; 16] = b64(SALT).try_into().unwrap();
    let body = encrypt_with(
        PLAINTEXT.as_bytes(),
        &keys_of(&b64(UA_PUBLIC), &b64(AUTH)),
        salt,
        ephemeral,
    )
    .unwrap();
    assert_eq!(URL_SAFE_NO_PAD.encode(&body), BODY);
    assert_eq!(body.len(), 144);
}

#[test]
fn the_tests_reader_decrypts_the_appendix_and_refuses_a_changed_byte() {
    let body = b64(BODY);
    assert_eq!(
        decrypt(&body, &b64(UA_PRIVATE), &b64(AUTH)).unwrap(),
        PLAINTEXT.as_bytes()
    );
    let mut changed = body.clone();
    changed[100] ^= 1;
    assert!(decrypt(&changed, &b64(UA_PRIVATE), &b64(AUTH)).is_err());
    let mut wrong_auth = b64(AUTH);
    wrong_auth[0] ^= 1;
    assert!(decrypt(&body, &b64(UA_PRIVATE), &wrong_auth).is_err());
}

// ---- a browser's subscription ----

/// A fresh subscription: its private scalar, public key and auth secret.
struct Browser {
    private: Vec<u8>,
    public: Vec<u8>,
    auth: Vec<u8>,
}

impl Browser {
    fn new() -> Browser {
        let rng = SystemRandom::new();
        loop {
            let mut scalar = vec![0u8; 32];
            rng.fill(&mut scalar).unwrap();
            let fixed = ring::test::rand::FixedSliceRandom { bytes: &scalar };
            let Ok(key) = EphemeralPrivateKey::generate(&ECDH_P256, &fixed) else {
                continue;
            };
            let mut auth = vec![0u8; 16];
            rng.fill(&mut auth).unwrap();
            return Browser {
                public: key.compute_public_key().unwrap().as_ref().to_vec(),
                private: scalar,
                auth,
            };
        }
    }

    fn keys(&self) -> ReceiverKeys {
        keys_of(&self.public, &self.auth)
    }

    /// `JSON.stringify(subscription)` for `endpoint`.
    fn address(&self, endpoint: &str) -> String {
        json!({"endpoint": endpoint, "expirationTime": null, "keys": {
            "p256dh": URL_SAFE_NO_PAD.encode(&self.public),
            "auth": URL_SAFE_NO_PAD.encode(&self.auth)}})
        .to_string()
    }
}

// ---- VAPID ----

/// A VAPID key made by `openssl ecparam -genkey -name prime256v1 | openssl pkcs8 -topk8
/// -nocrypt`, and its public key.
const VAPID_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQga/YvfFFjebT7qm94
NV2flsT/TfXfAgaOMWXz37EL1OahRANCAASGlrhkSyreyp1RH35NXPlGAFLaf1+/
12Nw9QsTNmXrId6O1RE7gnAtIUqSZiiU83aolcU/o25mLPov8Jv67SlY
-----END PRIVATE KEY-----
";
const VAPID_PUBLIC: &str =
    "BIaWuGRLKt7KnVEffk1c-UYAUtp_X7_XY3D1CxM2Zesh3o7VETuCcC0hSpJmKJTzdqiVxT-jbmYs-i_wm_rtKVg";
const SUBJECT: &str = "mailto:ops@example.com";

/// Checks `Authorization: vapid t=<jwt>, k=<key>` (RFC 8292 §3): the key is the channel's,
/// the signature verifies with it, `aud` is `audience`, `exp` is in the next 24 hours, and
/// `sub` the channel's contact. The JWT and its claims.
fn check_vapid(header: &str, audience: &str) -> Result<(String, Value), String> {
    let rest = header.strip_prefix("vapid ").ok_or("not a vapid scheme")?;
    let (mut token, mut key) = (None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => token = Some(value.to_owned()),
            Some(("k", value)) => key = Some(value.to_owned()),
            _ => return Err(format!("unexpected parameter {part}")),
        }
    }
    let (token, key) = (token.ok_or("no t=")?, key.ok_or("no k=")?);
    if key != VAPID_PUBLIC {
        return Err(format!("k={key} is not the channel's key"));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header64, claims64, signature64] = parts[..] else {
        return Err("not a JWS compact token".into());
    };
    let jose: Value = serde_json::from_slice(&b64(header64)).map_err(|e| e.to_string())?;
    if jose["alg"] != "ES256" {
        return Err(format!("alg {}", jose["alg"]));
    }
    signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, b64(&key))
        .verify(
            format!("{header64}.{claims64}").as_bytes(),
            &b64(signature64),
        )
        .map_err(|_| "the signature does not verify".to_string())?;
    let claims: Value = serde_json::from_slice(&b64(claims64)).map_err(|e| e.to_string())?;
    let now = Timestamp::now().as_second();
    let exp = claims["exp"].as_i64().ok_or("no exp")?;
    if exp <= now || exp > now + 24 * 3600 {
        return Err(format!("exp {exp} is not within 24 h of {now}"));
    }
    if claims["aud"] != audience || claims["sub"] != SUBJECT {
        return Err(format!("claims {claims}"));
    }
    Ok((token, claims))
}

// ---- PyPI http_ece and cryptography, written elsewhere ----

fn python_has(modules: &str) -> bool {
    let present = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|out| out.status.success());
    if present {
        return true;
    }
    if std::env::var("RELAIS_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!(
            "python3 with {modules} is missing and RELAIS_REQUIRE_PEERS=1 (run scripts/install-webpush-peers.sh)"
        );
    }
    eprintln!("SKIP: python3 with {modules} is missing (run scripts/install-webpush-peers.sh)");
    false
}

#[test]
fn pypi_http_ece_decrypts_what_relais_sealed_and_cryptography_verifies_its_vapid_token() {
    if !python_has("http_ece, cryptography") {
        return;
    }
    let browser = Browser::new();
    let message = "Votre colis arrive aujourd'hui — entre 14 h et 16 h";
    let body = encrypt(message.as_bytes(), &browser.keys()).unwrap();
    let key = relais_channels::webpush::VapidKey::parse(VAPID_PEM).unwrap();
    let jwt = key
        .token(
            "https://fcm.googleapis.com",
            SUBJECT,
            Timestamp::now().as_second(),
        )
        .unwrap();

    let dir = std::env::temp_dir().join(format!(
        "relais-webpush-{}-{}",
        std::process::id(),
        URL_SAFE_NO_PAD.encode(&browser.auth[..6])
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("body.bin"), &body).unwrap();
    std::fs::write(dir.join("ua_private.bin"), &browser.private).unwrap();
    std::fs::write(dir.join("auth.bin"), &browser.auth).unwrap();
    std::fs::write(dir.join("jwt.txt"), &jwt).unwrap();
    std::fs::write(dir.join("vapid_public.bin"), b64(VAPID_PUBLIC)).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webpush/peer.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "peer failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some(message));
    let claims: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(claims["aud"], "https://fcm.googleapis.com");
    assert_eq!(claims["sub"], SUBJECT);
}

// ---- the fake push service ----

/// One push the fake took: its headers of interest, the decrypted
/// notification.
#[derive(Debug, Clone)]
struct Push {
    ttl: String,
    urgency: String,
    notification: Value,
}

#[derive(Clone)]
struct Fake {
    base: String,
    browser: Arc<Browser>,
    pushes: Arc<Mutex<Vec<Push>>>,
}

async fn push(
    State(fake): State<Fake>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    if header("content-encoding") != "aes128gcm" {
        return (
            StatusCode::BAD_REQUEST,
            "Content-Encoding must be aes128gcm",
        )
            .into_response();
    }
    if let Err(e) = check_vapid(&header("authorization"), &fake.base) {
        return (StatusCode::UNAUTHORIZED, format!("VAPID: {e}")).into_response();
    }
    let plaintext = match decrypt(&body, &fake.browser.private, &fake.browser.auth) {
        Ok(plaintext) => plaintext,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("cannot decrypt: {e}")).into_response(),
    };
    let notification = serde_json::from_slice(&plaintext).unwrap_or(Value::Null);
    fake.pushes.lock().unwrap().push(Push {
        ttl: header("ttl"),
        urgency: header("urgency"),
        notification,
    });
    match id.as_str() {
        "gone" => (
            StatusCode::GONE,
            "push subscription has unsubscribed or expired.",
        )
            .into_response(),
        "missing" => StatusCode::NOT_FOUND.into_response(),
        "big" => StatusCode::PAYLOAD_TOO_LARGE.into_response(),
        "busy" => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "7")]).into_response(),
        "down" => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        "denied" => (StatusCode::FORBIDDEN, "invalid JWT provided").into_response(),
        _ => (
            StatusCode::CREATED,
            [("location", format!("{}/message/{id}-1", fake.base))],
        )
            .into_response(),
    }
}

async fn fake_push_service() -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let fake = Fake {
        base,
        browser: Arc::new(Browser::new()),
        pushes: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/push/{id}", post(push))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    fake
}

fn start(config: Value) -> Started {
    let identity = ChannelIdentity {
        id: "ch-webpush".into(),
        tenant_id: "default".into(),
        name: "browser push".into(),
    };
    relais_channels::start("webpush", identity, &config).unwrap()
}

fn config() -> Value {
    json!({"vapid_private_key": VAPID_PEM, "vapid_subject": SUBJECT,
        "vapid_public_key": VAPID_PUBLIC, "title": "Boutique", "ttl": 3600,
        "urgency": "high", "allow_http_endpoints": true})
}

fn outbound(to: String, content: Value) -> OutboundMessage {
    OutboundMessage {
        purpose: relais_core::consent::Purpose::Transactional,
        message_id: "msg-1".into(),
        tenant_id: "default".into(),
        channel: ChannelKind::Webpush,
        to,
        from: None,
        content: serde_json::from_value::<Content>(content).unwrap(),
        human_agent_since: None,
        attempt: 1,
        now: Timestamp::now(),
    }
}

#[tokio::test]
async fn a_push_reaches_the_browser_encrypted_and_signed() {
    let fake = fake_push_service().await;
    let started = start(config());
    assert!(started.events.is_none());
    let to = fake.browser.address(&format!("{}/push/abc", fake.base));
    let ack = started
        .adapter
        .send(&outbound(
            to,
            json!({"text": "Votre commande est prête",
                "buttons": [{"type": "url", "title": "Voir", "url": "https://shop.example/o/42"}]}),
        ))
        .await
        .unwrap();
    assert_eq!(
        ack.provider_id, "msg-1",
        "the message's own id, which its notification and its reports carry"
    );
    let pushes = fake.pushes.lock().unwrap().clone();
    assert_eq!(pushes.len(), 1);
    assert_eq!(
        (pushes[0].ttl.as_str(), pushes[0].urgency.as_str()),
        ("3600", "high")
    );
    assert_eq!(
        pushes[0].notification,
        json!({"title": "Boutique", "body": "Votre commande est prête",
            "url": "https://shop.example/o/42",
            "actions": [{"action": "url0", "title": "Voir", "url": "https://shop.example/o/42"}]})
    );
}

#[tokio::test]
async fn each_answer_of_the_push_service_is_told_apart() {
    let fake = fake_push_service().await;
    let started = start(config());
    let send = |id: &str| {
        let to = fake.browser.address(&format!("{}/push/{id}", fake.base));
        let adapter = started.adapter.clone();
        async move {
            adapter
                .send(&outbound(to, json!({"text": "Bonjour"})))
                .await
        }
    };
    for (id, code, class, address_gone) in [
        ("gone", "subscription_gone", ErrorClass::Permanent, true),
        ("missing", "subscription_gone", ErrorClass::Permanent, true),
        ("big", "bad_content", ErrorClass::Permanent, false),
        ("down", "provider_unavailable", ErrorClass::Transient, false),
    ] {
        let e = send(id).await.unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.class, e.address_gone),
            (code, class, address_gone),
            "{id}: {e}"
        );
        assert!(started.adapter.is_ready(), "{id} does not hold the channel");
    }
    let gone = send("gone").await.unwrap_err();
    assert!(gone.reason.contains("no longer exists"), "{gone}");

    let e = send("busy").await.unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.class),
        ("throttled", ErrorClass::Transient)
    );
    assert!(
        !started.adapter.is_ready(),
        "a 429 holds the channel for its Retry-After"
    );

    let started = start(config());
    let to = fake.browser.address(&format!("{}/push/denied", fake.base));
    let e = started
        .adapter
        .send(&outbound(to, json!({"text": "Bonjour"})))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.class),
        ("auth_failed", ErrorClass::NotSent)
    );
    assert!(
        !started.adapter.is_ready(),
        "refused credentials hold the channel"
    );
}

#[tokio::test]
async fn a_bad_subscription_or_content_is_refused_before_any_push() {
    let fake = fake_push_service().await;
    let started = start(config());
    let other = Browser::new();
    let cases = [
        (
            json!({"endpoint": format!("{}/push/x", fake.base), "keys": {"p256dh": "BAAA", "auth": URL_SAFE_NO_PAD.encode(&other.auth)}}).to_string(),
            json!({"text": "x"}),
            "invalid_recipient",
        ),
        ("+33612345678".to_owned(), json!({"text": "x"}), "invalid_recipient"),
        (
            fake.browser.address(&format!("{}/push/x", fake.base)),
            json!({"location": {"lat": 48.85, "lon": 2.35}}),
            "bad_content",
        ),
    ];
    for (to, content, code) in cases {
        let e = started
            .adapter
            .send(&outbound(to.clone(), content))
            .await
            .unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.class),
            (code, ErrorClass::Permanent),
            "{to}"
        );
    }
    // Without `allow_http_endpoints`, only https:// endpoints are pushed to.
    let strict = start(json!({"vapid_private_key": VAPID_PEM, "vapid_subject": SUBJECT}));
    let e = strict
        .adapter
        .send(&outbound(
            fake.browser.address(&format!("{}/push/x", fake.base)),
            json!({"text": "x"}),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code, "invalid_recipient");
    assert!(
        fake.pushes.lock().unwrap().is_empty(),
        "nothing reached the push service"
    );
}

#[test]
fn a_config_with_a_wrong_public_key_or_subject_is_refused() {
    let mut config = config();
    config["vapid_public_key"] = json!(AS_PUBLIC);
    let e = relais_channels::check_config("webpush", &config).unwrap_err();
    assert_eq!(e.pointer, "/vapid_public_key");
    assert!(
        e.detail.contains(VAPID_PUBLIC),
        "the error shows the right key: {e}"
    );
    let mut config = self::config();
    config["vapid_subject"] = json!("ops@example.com");
    assert_eq!(
        relais_channels::check_config("webpush", &config)
            .unwrap_err()
            .pointer,
        "/vapid_subject"
    );
    assert!(relais_channels::check_config("webpush", &self::config()).is_ok());
}

/// A browser's report posted to the channel's `/hooks/` address.
fn report(started: &Started, body: &Value) -> Result<WebhookAnswer, WebhookError> {
    let body = body.to_string();
    let read = started
        .webhook
        .as_ref()
        .expect("a Web Push channel takes reports");
    read(&WebhookRequest {
        is_get: false,
        query: &[],
        headers: &[("content-type".into(), "text/plain;charset=UTF-8".into())],
        body: body.as_bytes(),
    })
}

#[tokio::test]
async fn with_a_public_url_a_notification_carries_what_its_service_worker_reports_with() {
    let fake = fake_push_service().await;
    let mut reporting = config();
    reporting["public_url"] = json!("https://relais.example.com/");
    let started = start(reporting);
    let to = fake.browser.address(&format!("{}/push/abc", fake.base));
    started
        .adapter
        .send(&outbound(to, json!({"text": "Votre colis arrive"})))
        .await
        .unwrap();
    let notification = fake.pushes.lock().unwrap()[0].notification.clone();
    let stamp = &notification["relais"];
    assert_eq!(stamp["message"], "msg-1");
    assert_eq!(
        stamp["report"],
        "https://relais.example.com/hooks/ch-webpush"
    );
    let token = stamp["token"].as_str().unwrap().to_owned();

    // What the service worker posts back, with the token it was given.
    let shown = report(
        &started,
        &json!({"message": "msg-1", "token": token, "event": "shown"}),
    )
    .unwrap();
    let WebhookAnswer::Deliver(events) = shown else {
        panic!("a report is delivered to the engine")
    };
    match events.as_slice() {
        [ChannelEvent::Status(status, _)] => {
            assert_eq!(status.status, MessageStatus::Delivered);
            assert_eq!(status.message, MessageRef::Ours("msg-1".into()));
            assert_eq!(status.channel_id, "ch-webpush");
        }
        other => panic!("one status: {other:?}"),
    }
    // The same token does not speak for another message.
    assert!(matches!(
        report(
            &started,
            &json!({"message": "msg-2", "token": token, "event": "clicked"})
        ),
        Err(WebhookError::Unauthorized(_))
    ));

    // With reports, a reply button is an action whose click is the person's answer.
    assert!(started.adapter.capabilities().buttons.reply);
    let to = fake.browser.address(&format!("{}/push/rdv", fake.base));
    started
        .adapter
        .send(&outbound(
            to,
            json!({"text": "Rendez-vous mardi 10h ?",
                "buttons": [{"type": "reply", "title": "Je confirme", "payload": "CONFIRM"}]}),
        ))
        .await
        .unwrap();
    let notification = fake.pushes.lock().unwrap()[1].notification.clone();
    assert_eq!(
        notification["actions"],
        json!([{"action": "reply0", "title": "Je confirme", "payload": "CONFIRM"}])
    );
    let clicked = report(
        &started,
        &json!({"message": "msg-1", "token": token, "event": "clicked",
            "action": "reply0", "title": "Je confirme", "payload": "CONFIRM"}),
    )
    .unwrap();
    let WebhookAnswer::Deliver(events) = clicked else {
        panic!("a click is delivered to the engine")
    };
    match events.as_slice() {
        [
            ChannelEvent::Status(read, _),
            ChannelEvent::Inbound(answer, _),
        ] => {
            assert_eq!(read.status, MessageStatus::Read);
            assert_eq!(answer.text, "Je confirme");
            assert_eq!(answer.payload.as_deref(), Some("CONFIRM"));
            assert_eq!(answer.answers, ["msg-1"]);
            assert_eq!(
                answer.from, "",
                "the engine takes the answered message's address"
            );
        }
        other => panic!("a read and an answer: {other:?}"),
    }

    // Without a public_url, notifications carry nothing to report with, and a reply
    // button is not theirs to show.
    let plain = start(config());
    let to = fake.browser.address(&format!("{}/push/def", fake.base));
    plain
        .adapter
        .send(&outbound(to, json!({"text": "Bonjour"})))
        .await
        .unwrap();
    assert!(
        fake.pushes.lock().unwrap()[2]
            .notification
            .get("relais")
            .is_none()
    );
    assert!(!plain.adapter.capabilities().buttons.reply);
}
