//! A configured `webpush` channel end to end, against a local fake push service: the
//! channel hides its VAPID private key and shows its public key, a browser's subscription
//! becomes a contact's `webpush` identity, and a message to that contact is pushed to the
//! subscription's endpoint, encrypted (`aes128gcm`) and signed (`vapid t=…, k=…`); an
//! operator removes a subscription by its URL-encoded address. A subscription the push
//! service says is gone is removed by Relais itself: `tests/push_gone.rs`.
//!
//! The crypto itself (RFC 8291 Appendix A, PyPI http_ece, the VAPID signature) is checked
//! in `crates/relais-channels/tests/webpush.rs`.

mod support;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use support::{AUTH, P256DH, Stepped, VAPID_PRIVATE, VAPID_PUBLIC};

/// `(endpoint id, headers of interest, body length)` of every push.
type Pushes = Arc<Mutex<Vec<(String, Vec<(String, String)>, Vec<u8>)>>>;

async fn push_service(
    State(pushes): State<Pushes>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let kept = ["content-encoding", "authorization", "ttl", "urgency"]
        .iter()
        .map(|name| {
            let value = headers.get(*name).and_then(|v| v.to_str().ok());
            (name.to_string(), value.unwrap_or_default().to_owned())
        })
        .collect();
    pushes
        .lock()
        .unwrap()
        .push((id.clone(), kept, body.to_vec()));
    (
        StatusCode::CREATED,
        [("location", format!("/message/{id}"))],
    )
        .into_response()
}

struct Api {
    server: Stepped,
    pushes: Pushes,
    base_url: String,
}

async fn api() -> Api {
    let pushes = Pushes::default();
    let fake = axum::Router::new()
        .route("/push/{id}", axum::routing::post(push_service))
        .with_state(pushes.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, fake).await });
    Api {
        server: support::stepped().await,
        pushes,
        base_url,
    }
}

impl Api {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.server.call(method, uri, body).await
    }

    /// `JSON.stringify(subscription)` of a browser subscribed at `/push/{id}`.
    fn subscription(&self, id: &str) -> String {
        json!({"endpoint": format!("{}/push/{id}", self.base_url), "expirationTime": null,
            "keys": {"p256dh": P256DH, "auth": AUTH}})
        .to_string()
    }

    /// Sends `text` to a new contact whose webpush identity is subscribed at `/push/{id}`;
    /// the message once the dispatcher has answered it.
    async fn send_to_contact(&self, id: &str, text: &str) -> Value {
        let (status, contact) = self
            .call(
                "POST",
                "/v1/contacts",
                Some(json!({"identities": [{"channel": "webpush", "address": self.subscription(id)}]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{contact}");
        let contact_id = contact["id"].as_str().unwrap().to_owned();
        let (status, accepted) = self
            .call(
                "POST",
                "/v1/messages",
                Some(json!({"to": {"contact_id": contact_id}, "channel": "push",
                    "content": {"text": text}})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        self.server.settle(accepted["id"].as_str().unwrap()).await
    }
}

#[tokio::test]
async fn a_subscription_is_a_contacts_identity_and_a_message_is_pushed_to_it() {
    let api = api().await;
    let (status, channel) = api
        .call(
            "POST",
            "/v1/channels",
            Some(json!({"kind": "webpush", "name": "push", "config": {
                "vapid_private_key": VAPID_PRIVATE, "vapid_public_key": VAPID_PUBLIC,
                "vapid_subject": "mailto:ops@example.com", "title": "Boutique",
                "allow_http_endpoints": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{channel}");
    assert_eq!(channel["config"]["vapid_private_key"], "***");
    assert_eq!(channel["config"]["vapid_public_key"], VAPID_PUBLIC);

    let message = api.send_to_contact("abc", "Votre commande est prête").await;
    assert_eq!(message["status"], "sent", "{message}");
    let pushes = api.pushes.lock().unwrap().clone();
    assert_eq!(pushes.len(), 1);
    let (id, headers, body) = &pushes[0];
    assert_eq!(id, "abc");
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(header("content-encoding"), "aes128gcm");
    assert_eq!(header("ttl"), "86400");
    assert_eq!(header("urgency"), "normal");
    assert!(
        header("authorization").starts_with("vapid t=")
            && header("authorization").ends_with(&format!(", k={VAPID_PUBLIC}")),
        "{}",
        header("authorization")
    );
    // salt(16) rs(4) = 4096, idlen(1) = 65, an uncompressed point, then one record.
    assert_eq!(&body[16..21], &[0, 0, 0x10, 0, 65]);
    assert_eq!(body[21], 0x04);
    assert!(
        !body.windows(8).any(|w| w == b"commande"),
        "the text travels encrypted"
    );
}

#[tokio::test]
async fn a_subscription_is_removed_by_its_url_encoded_address() {
    let api = api().await;
    let (status, contact) = api
        .call(
            "POST",
            "/v1/contacts",
            Some(
                json!({"identities": [{"channel": "webpush", "address": api.subscription("old")}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    let contact = contact["id"].as_str().unwrap();
    let address: String = api
        .subscription("old")
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    let (status, answer) = api
        .call(
            "DELETE",
            &format!("/v1/contacts/{contact}/identities/webpush/{address}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    let (_, contact) = api
        .call("GET", &format!("/v1/contacts/{contact}"), None)
        .await;
    assert_eq!(contact["identities"], json!([]), "{contact}");
}
