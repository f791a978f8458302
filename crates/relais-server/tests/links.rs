//! Tracked links and click-to-chat entry points over HTTP, as a marketer and the people
//! they write to see them: links in a message become short links on the public URL, a
//! click redirects and shows on the message, a forged link is a 404, and an entry point's
//! referral starts its flow and attributes the conversation.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use jiff::SignedDuration;
use relais_core::clock::{Clock, ManualClock};
use relais_core::tracked_link::PublicBase;
use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
use relais_engine::sim::SimConfig;
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;

const PUBLIC: &str = "https://r.example";

struct Api {
    app: axum::Router,
    key: String,
    clock: Arc<ManualClock>,
    dispatcher: Dispatcher,
    _dir: tempfile::TempDir,
}

async fn api_with(public_url: Option<&str>) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let clock = Arc::new(ManualClock::new("2026-12-05T10:00:00Z".parse().unwrap()));
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let settings = HttpSettings {
        default_country: Some(phonenumber::country::Id::FR),
        public_url: public_url.map(|u| PublicBase::parse(u).unwrap()),
        ..Default::default()
    };
    let state = AppState::new(store.clone(), clock.clone(), settings, None);
    let config = DispatcherConfig {
        lease_owner: "test".into(),
        ..Default::default()
    };
    let dispatcher = Dispatcher::new(store.clone(), clock.clone(), config).with_adapter(Arc::new(
        relais_engine::sim::adapter(store.clone(), SimConfig::default()),
    ));
    Api {
        app: router(state),
        key: key.secret,
        clock,
        dispatcher,
        _dir: dir,
    }
}

async fn api() -> Api {
    api_with(Some(PUBLIC)).await
}

impl Api {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        support::call(&self.app, &self.key, method, uri, body).await
    }

    async fn send(&self, body: Value) -> String {
        let (status, accepted) = self.call("POST", "/v1/messages", Some(body)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        accepted["id"].as_str().unwrap().to_owned()
    }

    async fn message(&self, id: &str) -> Value {
        let (status, message) = self.call("GET", &format!("/v1/messages/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{message}");
        message
    }

    /// Sends what is due and lets the sim phone's receipt come back.
    async fn deliver(&self) {
        self.dispatcher.run_until_idle(10).await.unwrap();
        self.clock.advance(SignedDuration::from_secs(1));
        self.dispatcher.run_until_idle(10).await.unwrap();
    }

    /// A person (no API key) opens `path` in a browser: the status and `Location`.
    async fn open(&self, path: &str, user_agent: &str) -> (StatusCode, Option<String>) {
        let request = Request::builder()
            .uri(path)
            .header(header::USER_AGENT, user_agent)
            .body(Body::empty())
            .unwrap();
        let response = tower::ServiceExt::oneshot(self.app.clone(), request)
            .await
            .unwrap();
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        (response.status(), location)
    }
}

fn events(message: &Value) -> Vec<String> {
    message["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_owned())
        .collect()
}

/// The short links in a text, as paths on the server (`/l/{code}`).
fn short_links(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter_map(|word| word.strip_prefix(PUBLIC))
        .map(|path| path.trim_end_matches(['.', ',', '!']).to_owned())
        .collect()
}

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15";

#[tokio::test]
async fn a_click_on_a_tracked_link_redirects_and_shows_as_clicked_on_the_message() {
    let api = api().await;
    let id = api
        .send(json!({"to": "+33612345678", "campaign": "soldes",
            "content": {"text": "Soldes ! https://shop.example/soldes?utm=sms à bientôt"}}))
        .await;
    api.deliver().await;
    let message = api.message(&id).await;
    let text = message["content"]["text"].as_str().unwrap();
    let links = short_links(text);
    assert_eq!(links.len(), 1, "{text}");
    assert!(!text.contains("shop.example"), "{text}");
    // 12 random characters after /l/: short enough for an SMS, too many to guess.
    let code = links[0].strip_prefix("/l/").unwrap();
    assert_eq!(code.len(), 12);
    assert_eq!(message["status"], "delivered");

    api.clock.advance(SignedDuration::from_secs(60));
    let (status, location) = api.open(&links[0], IPHONE).await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(
        location.as_deref(),
        Some("https://shop.example/soldes?utm=sms")
    );
    let message = api.message(&id).await;
    // A click does not move the status back, and shows among the events.
    assert_eq!(message["status"], "delivered");
    assert_eq!(
        events(&message),
        [
            "accepted",
            "queued",
            "sending",
            "sent",
            "delivered",
            "clicked"
        ]
    );
    let clicked = message["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(clicked["channel"], "sim");
    assert_eq!(clicked["at"], "2026-12-05T10:01:01Z");
    assert_eq!(clicked["detail"], "https://shop.example/soldes?utm=sms");

    // A second click is counted too; the message counts once as clicked in analytics.
    api.open(&links[0], IPHONE).await;
    let message = api.message(&id).await;
    assert_eq!(
        events(&message).iter().filter(|s| *s == "clicked").count(),
        2
    );
    let (status, figures) = api.call("GET", "/v1/analytics", None).await;
    assert_eq!(status, StatusCode::OK, "{figures}");
    assert_eq!(figures["totals"]["funnel"]["clicked"], 1, "{figures}");
    assert_eq!(figures["sends"][0]["campaign"], "soldes");
    assert_eq!(figures["sends"][0]["funnel"]["clicked"], 1);
}

#[tokio::test]
async fn a_forged_or_unknown_short_link_is_a_404_and_records_nothing() {
    let api = api().await;
    let id = api
        .send(
            json!({"to": "+33612345678", "content": {"text": "Suivi : https://track.example/42"}}),
        )
        .await;
    api.deliver().await;
    let text = api.message(&id).await["content"]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let real = short_links(&text).remove(0);
    // One character changed, a code of the wrong shape, a path trying to escape.
    let mut forged = real.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'a' { 'b' } else { 'a' });
    for path in [
        forged.as_str(),
        "/l/short",
        "/l/..%2F..%2Fetc",
        "/l/https:%2F%2Fevil.example",
    ] {
        let (status, location) = api.open(path, IPHONE).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(location, None, "{path}: no redirect anywhere");
    }
    assert!(!events(&api.message(&id).await).contains(&"clicked".to_owned()));
}

#[tokio::test]
async fn a_link_preview_fetched_by_a_messaging_app_is_not_a_click() {
    let api = api().await;
    let id = api
        .send(json!({"to": "+33612345678", "content": {"text": "https://shop.example/new"}}))
        .await;
    api.deliver().await;
    let text = api.message(&id).await["content"]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let link = short_links(&text).remove(0);
    let (status, location) = api.open(&link, "WhatsApp/2.23.20.0 A").await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(location.as_deref(), Some("https://shop.example/new"));
    // A link checker's HEAD request is no click either.
    let head = Request::builder()
        .method("HEAD")
        .uri(&link)
        .header(header::USER_AGENT, IPHONE)
        .body(Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(api.app.clone(), head)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert!(!events(&api.message(&id).await).contains(&"clicked".to_owned()));
}

#[tokio::test]
async fn track_links_false_leaves_the_url_as_it_was_written() {
    let api = api().await;
    let text = "Votre facture : https://billing.example/inv/77.";
    let id = api
        .send(json!({"to": "+33612345678", "track_links": false, "content": {"text": text}}))
        .await;
    assert_eq!(api.message(&id).await["content"]["text"], text);
    // And in a batch.
    let (status, answer) = api
        .call(
            "POST",
            "/v1/messages/batch",
            Some(json!({"messages": [
                {"to": "+33612345678", "track_links": false, "content": {"text": text}},
                {"to": "+33612345679", "content": {"text": text}}
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let kept = answer["results"][0]["id"].as_str().unwrap();
    let tracked = answer["results"][1]["id"].as_str().unwrap();
    assert_eq!(api.message(kept).await["content"]["text"], text);
    let rewritten = api.message(tracked).await["content"]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        rewritten.starts_with("Votre facture : https://r.example/l/"),
        "{rewritten}"
    );
    assert!(
        rewritten.ends_with('.'),
        "the sentence keeps its full stop: {rewritten}"
    );
}

#[tokio::test]
async fn without_a_public_url_links_are_left_as_they_are() {
    let api = api_with(None).await;
    let text = "https://shop.example/soldes";
    let id = api
        .send(json!({"to": "+33612345678", "content": {"text": text}}))
        .await;
    assert_eq!(api.message(&id).await["content"]["text"], text);
}

#[tokio::test]
async fn a_url_button_is_tracked_too() {
    let api = api().await;
    let id = api
        .send(json!({"to": {"channel": "sim", "address": "+33612345678"},
            "content": {"text": "Nouvelle collection",
                "buttons": [{"type": "url", "title": "Voir", "url": "https://shop.example/new"}]}}))
        .await;
    let message = api.message(&id).await;
    let url = message["content"]["buttons"][0]["url"].as_str().unwrap();
    assert!(url.starts_with("https://r.example/l/"), "{message}");
    let path = url.strip_prefix(PUBLIC).unwrap();
    let (status, location) = api.open(path, IPHONE).await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(location.as_deref(), Some("https://shop.example/new"));
}

#[tokio::test]
async fn an_entry_point_gives_its_whatsapp_link_and_qr_code() {
    let api = api().await;
    let (status, entry) = api
        .call(
            "POST",
            "/v1/entry-points",
            Some(
                json!({"name": "Spring ads", "channel": "whatsapp", "number": "+33612345678",
                "text": "Bonjour !", "ref": "spring-26", "campaign": "spring"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    assert_eq!(entry["ref"], "SPRING-26");
    assert_eq!(entry["prefilled_text"], "Bonjour ! [ref:SPRING-26]");
    assert_eq!(
        entry["link"],
        "https://wa.me/33612345678?text=Bonjour%20%21%20%5Bref%3ASPRING-26%5D"
    );
    let id = entry["id"].as_str().unwrap();
    let (status, svg, content_type) = support::respond(
        &api.app,
        Request::builder()
            .uri(format!("/v1/entry-points/{id}/qr.svg"))
            .header(header::AUTHORIZATION, format!("Bearer {}", api.key))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "image/svg+xml");
    assert!(svg.as_str().unwrap().contains("<svg"), "{svg}");

    // The same referral code again is a conflict; a bad field is a 422; neither is stored.
    let (status, problem) = api
        .call(
            "POST",
            "/v1/entry-points",
            Some(json!({"name": "Again", "channel": "sms", "number": "+33612345678", "ref": "SPRING-26"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let (status, problem) = api
        .call(
            "POST",
            "/v1/entry-points",
            Some(json!({"name": "Bad", "channel": "fax", "number": "+33612345678"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/channel");
    let (status, problem) = api
        .call(
            "POST",
            "/v1/entry-points",
            Some(json!({"name": "No page", "channel": "webchat"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/page");
    let (_, list) = api.call("GET", "/v1/entry-points", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_referral_in_the_first_message_starts_the_entry_points_flow_and_attributes_the_conversation()
 {
    let api = api().await;
    for (name, flow) in [
        (
            "welcome",
            json!({"entry": {"new_conversation": true}, "start": "hi",
                "nodes": {"hi": {"type": "end", "text": "Bienvenue !"}}}),
        ),
        (
            "spring",
            json!({"entry": {"keywords": ["PRINTEMPS"]}, "start": "offer",
                "nodes": {"offer": {"type": "end", "text": "-20 % avec le code PRINTEMPS"}}}),
        ),
    ] {
        let (status, stored) = api
            .call("PUT", &format!("/v1/flows/{name}"), Some(flow))
            .await;
        assert_eq!(status, StatusCode::OK, "{stored}");
    }
    let (status, entry) = api
        .call(
            "POST",
            "/v1/entry-points",
            Some(
                json!({"name": "Poster", "channel": "sms", "number": "+33612345678",
                "text": "Bonjour", "flow": "spring", "campaign": "spring-posters"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    let prefilled = entry["prefilled_text"].as_str().unwrap().to_owned();
    assert!(
        entry["link"]
            .as_str()
            .unwrap()
            .starts_with("sms:+33612345678?body=")
    );

    // The person sends the prefilled text; another writes without a referral.
    let (status, referred) = api
        .call(
            "POST",
            "/v1/sim/phones/0611111111/reply",
            Some(json!({"text": prefilled})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{referred}");
    let (_, plain) = api
        .call(
            "POST",
            "/v1/sim/phones/0622222222/reply",
            Some(json!({"text": "Bonjour"})),
        )
        .await;
    let said = |thread: Value| -> Vec<String> {
        thread["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["direction"] == "out")
            .map(|m| m["content"]["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let conversation = referred["inbound"]["conversation_id"].as_str().unwrap();
    let (_, thread) = api
        .call("GET", &format!("/v1/conversations/{conversation}"), None)
        .await;
    assert_eq!(said(thread), ["-20 % avec le code PRINTEMPS"]);
    let other = plain["inbound"]["conversation_id"].as_str().unwrap();
    let (_, thread) = api
        .call("GET", &format!("/v1/conversations/{other}"), None)
        .await;
    assert_eq!(said(thread), ["Bienvenue !"]);

    let id = entry["id"].as_str().unwrap();
    let (status, brought) = api
        .call("GET", &format!("/v1/entry-points/{id}/conversations"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{brought}");
    let brought = brought["data"].as_array().unwrap();
    assert_eq!(brought.len(), 1, "{brought:?}");
    assert_eq!(brought[0]["conversation_id"], conversation);
    assert_eq!(brought[0]["campaign"], "spring-posters");
    assert_eq!(brought[0]["message_id"], referred["inbound"]["id"]);
}
