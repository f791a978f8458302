//! A configured `rcs` agent end to end: its service account key and client token are
//! sealed and never shown, Google's verification handshake is answered only to the
//! holder of the client token, and users' messages pushed by Google (signed with
//! `X-Goog-Signature`) are stored once; a wrongly signed push stores nothing.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use relais_channels::rcs::signature::sign;
use relais_core::clock::{Clock, SystemClock};
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;

const KEY: &str = include_str!("../../relais-channels/tests/fixtures/rcs-service-account-key.pem");
const AGENT: &str = "relais_test_agent";
const CLIENT_TOKEN: &str = "the-client-token";

struct Api {
    app: axum::Router,
    key: String,
    hook: String,
    _store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let state = AppState::new(store.clone(), clock, HttpSettings::default(), None);
    let app = router(state);
    let key_file = json!({"type": "service_account", "project_id": "relais-test",
        "private_key": KEY, "client_email": "rbm@relais-test.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token"});
    let (status, created) = support::call(
        &app,
        &key.secret,
        "POST",
        "/v1/channels",
        Some(
            json!({"kind": "rcs", "name": "rbm", "config": {"agent_id": AGENT,
            "service_account": key_file, "client_token": CLIENT_TOKEN}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["config"]["service_account"], "***", "{created}");
    assert_eq!(created["config"]["client_token"], "***", "{created}");
    let hook = created["webhook_url"].as_str().unwrap().to_owned();
    Api {
        app,
        key: key.secret,
        hook,
        _store: store,
        _dir: dir,
    }
}

impl Api {
    async fn push(&self, body: &Value, signature: Option<String>) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method("POST")
            .uri(&self.hook)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(signature) = signature {
            req = req.header("x-goog-signature", signature);
        }
        let (status, value, _) =
            support::respond(&self.app, req.body(Body::from(body.to_string())).unwrap()).await;
        (status, value)
    }

    async fn inbound(&self) -> Vec<Value> {
        let (_, list) = support::call(&self.app, &self.key, "GET", "/v1/inbound", None).await;
        list.get("data")
            .cloned()
            .unwrap_or(list)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// A user's message as Google pushes it (Pub/Sub), and its signature under `token`.
fn pushed(text: &str, token: &str) -> (Value, String) {
    let payload =
        json!({"senderPhoneNumber": "+33612345678", "messageId": "MxEQvPbWKGTiOi-fdEAH7QaA",
        "sendTime": "2026-12-04T10:00:00.041253Z", "agentId": format!("{AGENT}@rbm.goog"),
        "text": text})
        .to_string();
    let body = json!({"message": {"attributes": {}, "data": STANDARD.encode(&payload),
        "messageId": "2070443601311540", "publishTime": "2026-12-04T10:00:00.749Z"},
        "subscription": "projects/rbm-relais/subscriptions/rbm-agent-subscription"});
    (body, sign(token, payload.as_bytes()))
}

#[tokio::test]
async fn googles_verification_is_answered_only_to_the_holder_of_the_client_token() {
    let api = api().await;
    let (status, answer) = api
        .push(
            &json!({"clientToken": CLIENT_TOKEN, "secret": "1234567890"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!(1234567890), "the secret is echoed as text");
    let (status, _) = api
        .push(
            &json!({"clientToken": "a-guess", "secret": "1234567890"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_users_message_is_stored_once_and_a_forged_push_stores_nothing() {
    let api = api().await;
    let (forged, signature) = pushed("Envoyez le code à ce numéro", "not-the-client-token");
    let (status, _) = api.push(&forged, Some(signature)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (unsigned, _) = pushed("Envoyez le code", CLIENT_TOKEN);
    let (status, _) = api.push(&unsigned, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(api.inbound().await.is_empty());

    let (body, signature) = pushed("Bonjour, où est mon colis ?", CLIENT_TOKEN);
    let (status, answer) = api.push(&body, Some(signature.clone())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _) = api.push(&body, Some(signature)).await;
    assert_eq!(status, StatusCode::OK, "Google's redelivery");
    let inbound = api.inbound().await;
    assert_eq!(inbound.len(), 1, "{inbound:?}");
    assert_eq!(inbound[0]["channel"], "rcs");
    assert_eq!(inbound[0]["from"], "+33612345678");
    assert_eq!(inbound[0]["text"], "Bonjour, où est mon colis ?");
}
