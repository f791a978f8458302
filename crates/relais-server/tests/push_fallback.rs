//! A fallback chain from push to SMS, with the dispatcher driven by a manual clock: each
//! step goes to the contact's own address on its channel (the push subscription, then
//! their phone number), the SMS leaves only when the push was not delivered within the
//! chain's wait (a browser reports a notification it showed), and a push the service
//! refuses falls back at once. A reply button of a notification, clicked, is the person's
//! answer in their conversation.

mod support;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::SignedDuration;
use relais_core::clock::{Clock, ManualClock};
use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
use relais_engine::sim::SimConfig;
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// RFC 8291 Appendix A's application server key, and a browser's keys.
const VAPID_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
const P256DH: &str =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

const PHONE: &str = "+33612345678";

/// A push service: every subscription takes pushes, except `/push/gone` (410).
async fn push_service(
    State(pushes): State<Arc<Mutex<Vec<String>>>>,
    Path(id): Path<String>,
) -> Response {
    pushes.lock().unwrap().push(id.clone());
    if id == "gone" {
        return (StatusCode::GONE, "push subscription has unsubscribed").into_response();
    }
    (
        StatusCode::CREATED,
        [("location", format!("/message/{id}"))],
    )
        .into_response()
}

struct Api {
    app: axum::Router,
    key: String,
    clock: Arc<ManualClock>,
    dispatcher: Arc<Dispatcher>,
    pushes: Arc<Mutex<Vec<String>>>,
    push_base: String,
    channel_id: String,
    _store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let state = AppState::new(store.clone(), clock.clone(), HttpSettings::default(), None);
    let dispatcher = Arc::new(
        Dispatcher::new(
            store.clone(),
            clock.clone(),
            DispatcherConfig {
                lease_owner: "test".into(),
                ..Default::default()
            },
        )
        .with_registry(state.channels.registry())
        .with_adapter(Arc::new(relais_engine::sim::adapter(
            store.clone(),
            SimConfig::default(),
        ))),
    );
    let pushes = Arc::new(Mutex::new(Vec::new()));
    let fake = axum::Router::new()
        .route("/push/{id}", axum::routing::post(push_service))
        .with_state(pushes.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let push_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, fake).await });
    let mut api = Api {
        app: router(state),
        key: key.secret,
        clock,
        dispatcher,
        pushes,
        push_base,
        channel_id: String::new(),
        _store: store,
        _dir: dir,
    };
    let (status, channel) = api
        .call(
            "POST",
            "/v1/channels",
            Some(json!({"kind": "webpush", "name": "push", "config": {
                "vapid_private_key": VAPID_PRIVATE, "vapid_subject": "mailto:ops@example.com",
                "public_url": "https://relais.example.com", "allow_http_endpoints": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{channel}");
    api.channel_id = channel["id"].as_str().unwrap().to_owned();
    api
}

impl Api {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        support::call(&self.app, &self.key, method, uri, body).await
    }

    /// A contact with a browser subscribed at `/push/{push}` and, when given, a phone.
    async fn contact(&self, push: &str, phone: Option<&str>) -> String {
        let subscription = json!({"endpoint": format!("{}/push/{push}", self.push_base),
            "keys": {"p256dh": P256DH, "auth": AUTH}})
        .to_string();
        let mut identities = vec![json!({"channel": "webpush", "address": subscription})];
        if let Some(phone) = phone {
            identities.push(json!({"channel": "sms", "address": phone}));
        }
        let (status, contact) = self
            .call(
                "POST",
                "/v1/contacts",
                Some(json!({"identities": identities})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{contact}");
        contact["id"].as_str().unwrap().to_owned()
    }

    /// What the page's service worker posts when it showed message `id`'s notification,
    /// with the token the notification carried (`token`: None for the right one).
    async fn browser_reports(&self, id: &str, event: &str, token: Option<&str>) -> StatusCode {
        let right = relais_channels::webpush::ReportKey::derive(VAPID_PRIVATE).token(id);
        let body = json!({"message": id, "token": token.unwrap_or(&right), "event": event});
        self.report(body).await
    }

    /// What the service worker posts when the person clicked reply button `action`.
    async fn browser_answers(
        &self,
        id: &str,
        action: &str,
        title: &str,
        payload: &str,
    ) -> StatusCode {
        let token = relais_channels::webpush::ReportKey::derive(VAPID_PRIVATE).token(id);
        self.report(json!({"message": id, "token": token, "event": "clicked",
            "action": action, "title": title, "payload": payload}))
            .await
    }

    async fn report(&self, body: Value) -> StatusCode {
        let request = axum::http::Request::post(format!("/hooks/{}", self.channel_id))
            .header("content-type", "text/plain;charset=UTF-8")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        // Statuses are applied by the dispatcher's receipt path: it runs meanwhile.
        let dispatcher = self.dispatcher.clone();
        let running = tokio::spawn(async move {
            loop {
                dispatcher.run_once().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        });
        let status = support::respond(&self.app, request).await.0;
        running.abort();
        status
    }

    async fn send(&self, body: Value) -> (StatusCode, Value) {
        self.call("POST", "/v1/messages", Some(body)).await
    }

    async fn message(&self, id: &str) -> Value {
        self.call("GET", &format!("/v1/messages/{id}"), None)
            .await
            .1
    }

    /// Runs the dispatcher until the message's status is one of `statuses`.
    async fn dispatch_until(&self, id: &str, statuses: &[&str]) -> Value {
        let mut message = Value::Null;
        for _ in 0..300 {
            self.dispatcher.run_once().await.unwrap();
            message = self.message(id).await;
            if statuses.iter().any(|s| message["status"] == *s) {
                return message;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the message never reached {statuses:?}: {message}")
    }

    /// Runs the dispatcher until the sandbox phone `number` received something; what it
    /// received.
    async fn dispatch_until_received(&self, number: &str) -> Vec<String> {
        for _ in 0..300 {
            self.dispatcher.run_once().await.unwrap();
            let received = self.phone(number).await;
            if !received.is_empty() {
                return received;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the sandbox phone {number} received nothing")
    }

    /// What the sandbox phone `number` received.
    async fn phone(&self, number: &str) -> Vec<String> {
        let (status, log) = self
            .call("GET", &format!("/v1/sim/phones/{number}/messages"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        log["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["direction"] == "received")
            .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

fn reasons(message: &Value) -> Vec<String> {
    message["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect()
}

fn push_then_sms(contact: &str, text: &str) -> Value {
    json!({"to": {"contact_id": contact},
        "channels": ["push", {"channel": "sim", "after": "not_delivered", "within": "2m"}],
        "content": {"text": text}})
}

#[tokio::test]
async fn a_push_not_delivered_in_time_goes_by_sms_to_the_contacts_phone() {
    let api = api().await;
    let contact = api.contact("ana", Some(PHONE)).await;
    let (status, accepted) = api
        .send(push_then_sms(&contact, "Votre colis arrive demain"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["id"].as_str().unwrap();

    let pushed = api.dispatch_until(id, &["sent"]).await;
    assert_eq!(
        *api.pushes.lock().unwrap(),
        ["ana"],
        "pushed to the subscription"
    );
    assert!(
        pushed["to"].as_str().unwrap().contains("/push/ana"),
        "the push step's address is the subscription: {pushed}"
    );

    // The push service took it, but nothing says the browser showed it.
    api.clock.advance(SignedDuration::from_secs(119));
    for _ in 0..3 {
        api.dispatcher.run_once().await.unwrap();
    }
    assert!(api.phone(PHONE).await.is_empty(), "still within the wait");

    api.clock.advance(SignedDuration::from_secs(1));
    assert_eq!(
        api.dispatch_until_received(PHONE).await,
        ["Votre colis arrive demain"]
    );
    let moved = api.message(id).await;
    assert_eq!(moved["channel"], "sim", "{moved}");
    assert_eq!(moved["to"], PHONE, "the SMS step's address is the phone");
    assert!(
        reasons(&moved).contains(&"fallback_timeout".to_owned()),
        "{moved}"
    );
    assert_eq!(api.pushes.lock().unwrap().len(), 1, "pushed once");
}

#[tokio::test]
async fn a_push_the_service_refuses_falls_back_at_once() {
    let api = api().await;
    let contact = api.contact("gone", Some(PHONE)).await;
    let (status, accepted) = api.send(push_then_sms(&contact, "Code : 4821")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["id"].as_str().unwrap();
    assert_eq!(
        api.dispatch_until_received(PHONE).await,
        ["Code : 4821"],
        "no wait for the timer"
    );
    let moved = api.message(id).await;
    assert_eq!(moved["to"], PHONE, "{moved}");
    assert_eq!(*api.pushes.lock().unwrap(), ["gone"]);
}

#[tokio::test]
async fn a_step_the_contact_has_no_address_for_is_left_out_and_said_so() {
    let api = api().await;
    // Known only by a push subscription: the SMS step cannot reach them.
    let contact = api.contact("solo", None).await;
    let (status, accepted) = api.send(push_then_sms(&contact, "Bonjour")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["id"].as_str().unwrap();
    let message = api.dispatch_until(id, &["sent"]).await;
    assert!(
        reasons(&message).contains(&"no_address".to_owned()),
        "{message}"
    );

    // With no step left that reaches them, the request is refused and nothing is stored.
    let (status, problem) = api
        .send(json!({"to": {"contact_id": contact}, "channel": "sim",
            "content": {"text": "Bonjour"}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem.to_string().contains("no address on `sim`"),
        "{problem}"
    );
    let (_, listed) = api.call("GET", "/v1/messages", None).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");
}

#[tokio::test]
async fn a_push_the_browser_reports_shown_in_time_is_delivered_and_no_sms_follows() {
    let api = api().await;
    let contact = api.contact("ana", Some(PHONE)).await;
    let (_, accepted) = api
        .send(push_then_sms(&contact, "Votre colis arrive"))
        .await;
    let id = accepted["id"].as_str().unwrap();
    api.dispatch_until(id, &["sent"]).await;

    // A forged report changes nothing.
    assert_eq!(
        api.browser_reports(id, "shown", Some("AAAAAAAAAAAAAAAAAAAAAA"))
            .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(api.message(id).await["status"], "sent");

    api.clock.advance(SignedDuration::from_secs(60));
    assert_eq!(api.browser_reports(id, "shown", None).await, StatusCode::OK);
    assert_eq!(api.message(id).await["status"], "delivered");

    api.clock.advance(SignedDuration::from_secs(120));
    for _ in 0..5 {
        api.dispatcher.run_once().await.unwrap();
    }
    assert!(
        api.phone(PHONE).await.is_empty(),
        "no SMS after a delivered push"
    );
    assert_eq!(
        api.browser_reports(id, "clicked", None).await,
        StatusCode::OK
    );
    let read = api.message(id).await;
    assert_eq!(read["status"], "read", "{read}");
}

#[tokio::test]
async fn a_reply_button_clicked_on_a_notification_is_the_persons_answer_in_their_conversation() {
    let api = api().await;
    let contact = api.contact("ana", Some(PHONE)).await;
    let (status, accepted) = api
        .send(json!({"to": {"contact_id": contact}, "channel": "push",
            "content": {"text": "Rendez-vous mardi 10h ?", "buttons": [
                {"type": "reply", "title": "Je confirme", "payload": "CONFIRM"},
                {"type": "reply", "title": "Je déplace", "payload": "MOVE"}]}}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["id"].as_str().unwrap();
    api.dispatch_until(id, &["sent"]).await;

    // Clicked twice (a second device, a retried report): one answer.
    for _ in 0..2 {
        assert_eq!(
            api.browser_answers(id, "reply1", "Je déplace", "MOVE")
                .await,
            StatusCode::OK
        );
    }
    let (_, inbound) = api.call("GET", "/v1/inbound", None).await;
    let answers = inbound["data"].as_array().unwrap();
    assert_eq!(answers.len(), 1, "{inbound}");
    assert_eq!(answers[0]["text"], "Je déplace");
    assert_eq!(answers[0]["payload"], "MOVE");
    assert_eq!(answers[0]["channel"], "webpush");
    assert_eq!(answers[0]["contact_id"], contact.as_str(), "{inbound}");
    assert!(
        answers[0]["from"].as_str().unwrap().contains("/push/ana"),
        "from the subscription the notification went to: {inbound}"
    );
    assert_eq!(api.message(id).await["status"], "read");

    // A click with another message's token is no one's answer.
    let forged = relais_channels::webpush::ReportKey::derive(VAPID_PRIVATE).token("other");
    let status = api
        .report(json!({"message": id, "token": forged, "event": "clicked",
            "action": "reply0", "title": "Je confirme", "payload": "CONFIRM"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, inbound) = api.call("GET", "/v1/inbound", None).await;
    assert_eq!(inbound["data"].as_array().unwrap().len(), 1);
}
