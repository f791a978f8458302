//! The web chat widget's Web Push opt-in, from the page's side: the page reads the VAPID
//! public key (never the private one) only when the tenant has a Web Push channel; a
//! visitor's subscription is refused, storing nothing, without a visitor token, from
//! another site, with an `http://` endpoint or keys of the wrong size; a good one becomes a
//! `webpush` identity of the visitor's contact, a message to that contact on the push
//! channel reaches a local fake push service, and the visitor removes it (only their own).

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::{AUTH, P256DH, Stepped, VAPID_PRIVATE, VAPID_PUBLIC};

const SITE: &str = "https://shop.example";
/// Visitors' tokens, as the socket's welcome frame gives them (43 base64url characters).
const ANA: &str = "anaAnaAnaAnaAnaAnaAnaAnaAnaAnaAnaAnaAnaAnaA";
const BOB: &str = "bobBobBobBobBobBobBobBobBobBobBobBobBobBobB";

struct App {
    server: Stepped,
    channel: String,
    /// Pushes the fake push service received.
    pushes: Arc<AtomicUsize>,
    push_base: String,
}

async fn app() -> App {
    let server = support::stepped().await;
    let (push_base, pushes) = support::counting_push_service().await;
    let (status, created) = server
        .call(
            "POST",
            "/v1/channels",
            Some(json!({"kind": "webchat", "name": "site", "config": {"allowed_origins": [SITE]}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    App {
        server,
        channel: created["id"].as_str().unwrap().to_owned(),
        pushes,
        push_base,
    }
}

/// A subscription as `PushSubscription.toJSON()` gives it.
fn subscription(endpoint: &str, p256dh: &str, auth: &str) -> Value {
    json!({"endpoint": endpoint, "expirationTime": null, "keys": {"p256dh": p256dh, "auth": auth}})
}

impl App {
    async fn api(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.server.call(method, uri, body).await
    }

    /// The tenant's Web Push channel; `allow_http` for the local fake push service.
    async fn add_push_channel(&self, allow_http: bool) {
        let (status, created) = self
            .api(
                "POST",
                "/v1/channels",
                Some(json!({"kind": "webpush", "name": "push", "config": {
                    "vapid_private_key": VAPID_PRIVATE, "vapid_subject": "mailto:ops@example.com",
                    "allow_http_endpoints": allow_http}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }

    /// A call to `/webchat/{channel}/push` from a page of `origin` with a visitor's
    /// `token`: status, body, and the `Access-Control-Allow-Origin` it got.
    async fn page(
        &self,
        method: &str,
        origin: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value, String) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("/webchat/{}/push", self.channel))
            .header(header::ORIGIN, origin);
        if let Some(token) = token {
            request = request.header("x-relais-visitor", token);
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Body::from(body.unwrap_or_default().to_owned()))
            .unwrap();
        let response = tower::ServiceExt::oneshot(self.server.app.clone(), request)
            .await
            .unwrap();
        let allowed = response
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let status = response.status();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value, allowed)
    }

    async fn subscribe(&self, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        let (status, answer, _) = self
            .page("POST", SITE, token, Some(&body.to_string()))
            .await;
        (status, answer)
    }

    async fn identities(&self, contact: &str) -> Vec<Value> {
        let (status, contact) = self
            .api("GET", &format!("/v1/contacts/{contact}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{contact}");
        contact["identities"].as_array().unwrap().clone()
    }
}

#[tokio::test]
async fn the_page_reads_the_public_key_only_when_the_tenant_has_a_web_push_channel() {
    let app = app().await;
    let (status, answer, _) = app.page("GET", SITE, None, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"vapid_public_key": null}));

    app.add_push_channel(false).await;
    let (status, answer, allowed) = app.page("GET", SITE, None, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"vapid_public_key": VAPID_PUBLIC}));
    assert_eq!(allowed, SITE, "the widget on the site may read it");
    assert!(!answer.to_string().contains(VAPID_PRIVATE));

    let (status, _, _) = app
        .page("GET", "https://elsewhere.example", None, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_subscription_is_refused_unless_it_is_a_visitors_checked_subscription_and_nothing_is_stored()
 {
    let app = app().await;
    let good = subscription("https://push.example.net/send/abc", P256DH, AUTH);
    // No Web Push channel yet: nothing to subscribe to.
    let (status, answer) = app.subscribe(Some(ANA), &good).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");

    app.add_push_channel(false).await;
    let cases = [
        (None, good.clone(), StatusCode::UNAUTHORIZED, None),
        (
            Some("not-a-token"),
            good.clone(),
            StatusCode::UNAUTHORIZED,
            None,
        ),
        (
            Some(ANA),
            subscription("http://push.example.net/send/abc", P256DH, AUTH),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("/endpoint"),
        ),
        (
            Some(ANA),
            subscription("https://push.example.net/send/abc", &P256DH[..43], AUTH),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("/keys/p256dh"),
        ),
        (
            Some(ANA),
            subscription("https://push.example.net/send/abc", P256DH, "AAAA"),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("/keys/auth"),
        ),
        (
            Some(ANA),
            json!({"endpoint": "https://push.example.net/send/abc"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(""),
        ),
    ];
    for (token, body, expected, pointer) in cases {
        let (status, answer) = app.subscribe(token, &body).await;
        assert_eq!(status, expected, "{token:?} {body}: {answer}");
        if let Some(pointer) = pointer {
            assert_eq!(answer["errors"][0]["pointer"], pointer, "{answer}");
        }
    }
    let (status, _, _) = app
        .page(
            "POST",
            "https://elsewhere.example",
            Some(ANA),
            Some(&good.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (_, contacts) = app.api("GET", "/v1/contacts", None).await;
    assert_eq!(contacts["data"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn a_visitors_subscription_is_their_contacts_identity_and_a_message_reaches_it() {
    let app = app().await;
    app.add_push_channel(true).await;
    let endpoint = format!("{}/push/ana", app.push_base);
    let ana = subscription(&endpoint, P256DH, AUTH);
    let (status, answer) = app.subscribe(Some(ANA), &ana).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let contact = answer["contact_id"].as_str().unwrap().to_owned();
    // The same subscription again (a page loaded twice) changes nothing.
    let (status, again) = app.subscribe(Some(ANA), &ana).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["contact_id"], contact.as_str());
    let identities = app.identities(&contact).await;
    let channels: Vec<&str> = identities
        .iter()
        .map(|i| i["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["webchat", "webpush"], "{identities:?}");
    let address: Value = serde_json::from_str(identities[1]["address"].as_str().unwrap()).unwrap();
    assert_eq!(address["endpoint"], endpoint.as_str());

    let (status, accepted) = app
        .api(
            "POST",
            "/v1/messages",
            Some(json!({"to": {"contact_id": contact}, "channel": "push",
                "content": {"text": "Votre conseiller vous a répondu"}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let message = app.server.settle(accepted["id"].as_str().unwrap()).await;
    assert_eq!(message["status"], "sent", "{message}");
    assert_eq!(app.pushes.load(Ordering::SeqCst), 1);

    // Another visitor cannot remove Ana's subscription; Ana can.
    let unsubscribe = json!({"endpoint": endpoint}).to_string();
    let (status, _, _) = app
        .page("DELETE", SITE, Some(BOB), Some(&unsubscribe))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.identities(&contact).await.len(), 2);
    let (status, answer, allowed) = app
        .page("DELETE", SITE, Some(ANA), Some(&unsubscribe))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    assert_eq!(allowed, SITE);
    let left = app.identities(&contact).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["channel"], "webchat");
}
