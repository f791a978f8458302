//! Messages over HTTP as a client sees them: send, batch, read with events, cancel,
//! idempotency, and the sim sandbox phones, with the dispatcher driven by a manual clock.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use jiff::SignedDuration;
use relais_core::clock::{Clock, ManualClock};
use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
use relais_engine::sim::SimConfig;
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;

struct Api {
    app: axum::Router,
    key: String,
    clock: Arc<ManualClock>,
    dispatcher: Dispatcher,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    // Saturday 21 November 2026, 10:00 UTC.
    let clock = Arc::new(ManualClock::new("2026-11-21T10:00:00Z".parse().unwrap()));
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let settings = HttpSettings {
        json_body_limit: 64 * 1024,
        import_body_limit: 64 * 1024,
        default_country: Some(phonenumber::country::Id::FR),
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

impl Api {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        self.call_as(&self.key, method, uri, body, headers).await
    }

    async fn call_as(
        &self,
        key: &str,
        method: &str,
        uri: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let (status, value, _) = support::respond(&self.app, req.body(body).unwrap()).await;
        (status, value)
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", uri, Some(body), &[]).await
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call("GET", uri, None, &[]).await
    }

    async fn dispatch(&self) {
        self.dispatcher.run_until_idle(10).await.unwrap();
    }
}

fn event_statuses(message: &Value) -> Vec<String> {
    message["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_sent_message_reaches_the_sim_phone_and_shows_its_events() {
    let api = api().await;
    let (status, accepted) = api
        .post(
            "/v1/messages",
            json!({"to": "+33612345678", "content": {"text": "Votre code : 123456"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["status"], "queued");
    let id = accepted["id"].as_str().unwrap().to_owned();
    api.dispatch().await;
    api.clock.advance(SignedDuration::from_secs(1));
    api.dispatch().await;
    let (status, message) = api.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(message["status"], "delivered");
    assert_eq!(message["channel"], "sim");
    assert_eq!(message["segments"], 1);
    assert_eq!(
        event_statuses(&message),
        ["accepted", "queued", "sending", "sent", "delivered"]
    );
    assert!(
        message["events"][0]["at"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-21T10:00:00")
    );
    let (status, phone) = api.get("/v1/sim/phones/0612345678/messages").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(phone["number"], "+33612345678");
    assert_eq!(phone["messages"][0]["text"], "Votre code : 123456");
    assert_eq!(phone["messages"][0]["message_id"], id.as_str());
    // The phone answers.
    let (status, _) = api
        .post(
            "/v1/sim/phones/+33612345678/reply",
            json!({"text": "Merci"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, phone) = api.get("/v1/sim/phones/0612345678/messages").await;
    assert_eq!(phone["messages"][1]["direction"], "sent");
    assert_eq!(phone["messages"][1]["text"], "Merci");
    let (status, _) = api
        .get("/v1/messages/01900000-0000-7000-8000-000000000000")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_idempotency_key_replays_or_conflicts() {
    let api = api().await;
    let body = json!({"to": "+33612345678", "content": {"text": "Commande 42"}});
    let key = [("idempotency-key", "order-42")];
    let (s1, first) = api
        .call("POST", "/v1/messages", Some(body.clone()), &key)
        .await;
    let (s2, second) = api.call("POST", "/v1/messages", Some(body), &key).await;
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(first["id"], second["id"]);
    let other = json!({"to": "+33612345678", "content": {"text": "Commande 43"}});
    let (s3, problem) = api.call("POST", "/v1/messages", Some(other), &key).await;
    assert_eq!(s3, StatusCode::CONFLICT);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key")
    );
    api.dispatch().await;
    let (_, phone) = api.get("/v1/sim/phones/+33612345678/messages").await;
    assert_eq!(phone["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_requests_get_problems_that_point_at_the_field() {
    let api = api().await;
    let (status, problem) = api
        .post(
            "/v1/messages",
            json!({"to": "+33612345678", "template": "Bonjour {{ first_name }}"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["pointer"], "/template");
    assert!(
        problem["detail"].as_str().unwrap().contains("first_name"),
        "{problem}"
    );
    let (status, problem) = api
        .post(
            "/v1/messages",
            json!({"to": "call me", "content": {"text": "x"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["pointer"], "/to");
    let (status, problem) = api
        .post(
            "/v1/messages",
            json!({"to": {"phone": "+33612345678"}, "content": {"text": "x"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["pointer"], "/to");
    assert!(
        problem["detail"].as_str().unwrap().contains("contact_id"),
        "{problem}"
    );
    let (status, problem) = api
        .post(
            "/v1/messages",
            json!({"to": "+33612345678", "channel": "pigeon", "content": {"text": "x"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["pointer"], "/channel");
    let (status, problem) = api
        .post(
            "/v1/messages",
            json!({"to": "+33612345678", "from": "MyVeryLongShop", "content": {"text": "x"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["pointer"], "/from");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("11 characters"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_message_shows_its_sender() {
    let api = api().await;
    let (status, accepted) = api
        .post(
            "/v1/messages",
            json!({"to": "+33612345678", "from": "MyShop", "content": {"text": "Promo"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["id"].as_str().unwrap();
    let (_, message) = api.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(message["from"], "MyShop");
    let (_, accepted) = api
        .post(
            "/v1/messages",
            json!({"to": "+33612345678", "content": {"text": "Promo"}}),
        )
        .await;
    let id = accepted["id"].as_str().unwrap();
    let (_, message) = api.get(&format!("/v1/messages/{id}")).await;
    assert!(message.get("from").is_none(), "{message}");
}

#[tokio::test]
async fn a_message_without_consent_is_rejected_and_says_why() {
    let api = api().await;
    let (status, accepted) = api
        .post(
            "/v1/messages",
            json!({"to": "+33612345678", "purpose": "marketing", "content": {"text": "Promo"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(accepted["status"], "rejected");
    let (_, message) = api
        .get(&format!(
            "/v1/messages/{}",
            accepted["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(message["status"], "rejected");
    assert_eq!(message["events"][1]["reason"], "no_opt_in");
    api.dispatch().await;
    let (_, phone) = api.get("/v1/sim/phones/+33612345678/messages").await;
    assert!(phone["messages"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_scheduled_message_can_be_canceled_before_it_goes() {
    let api = api().await;
    let (_, accepted) = api
        .post(
            "/v1/messages",
            json!({"to": "+33612345678", "content": {"text": "Rappel"}, "send_at": "2026-11-21T12:00:00Z"}),
        )
        .await;
    assert_eq!(accepted["status"], "scheduled");
    let id = accepted["id"].as_str().unwrap();
    let (status, canceled) = api
        .call("POST", &format!("/v1/messages/{id}/cancel"), None, &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(canceled["status"], "canceled");
    api.clock.advance(SignedDuration::from_hours(3));
    api.dispatch().await;
    let (_, phone) = api.get("/v1/sim/phones/+33612345678/messages").await;
    assert!(phone["messages"].as_array().unwrap().is_empty());
    // A sent message cannot be canceled.
    let (_, sent) = api
        .post(
            "/v1/messages",
            json!({"to": "+33612345678", "content": {"text": "Now"}}),
        )
        .await;
    api.dispatch().await;
    let (status, problem) = api
        .call(
            "POST",
            &format!("/v1/messages/{}/cancel", sent["id"].as_str().unwrap()),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(problem["detail"].as_str().unwrap().contains("sent"));
}

#[tokio::test]
async fn a_batch_retried_with_its_idempotency_key_gets_the_first_answer_and_sends_nothing_twice() {
    let api = api().await;
    let batch = json!({"messages": [
        {"to": "+33612345601", "content": {"text": "Un"}},
        {"to": "not a number", "content": {"text": "Deux"}},
        {"to": "+33612345603", "content": {"text": "Trois"}},
    ]});
    let key = [("idempotency-key", "import-2026-11-21")];
    let (s1, first) = api
        .call("POST", "/v1/messages/batch", Some(batch.clone()), &key)
        .await;
    assert_eq!(s1, StatusCode::ACCEPTED, "{first}");
    let (s2, second) = api
        .call("POST", "/v1/messages/batch", Some(batch.clone()), &key)
        .await;
    assert_eq!(s2, StatusCode::ACCEPTED, "{second}");
    assert_eq!(
        first, second,
        "the retry gets the first answer, item for item"
    );
    assert_eq!(second["accepted"], 2);
    assert_eq!(second["results"][1]["error"]["pointer"], "/messages/1/to");

    let mut other = batch.clone();
    other["messages"][0]["content"]["text"] = json!("Un autre");
    let (s3, problem) = api
        .call("POST", "/v1/messages/batch", Some(other), &key)
        .await;
    assert_eq!(s3, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["type"], "https://relais.dev/problems/conflict");

    api.dispatch().await;
    for number in ["+33612345601", "+33612345603"] {
        let (_, phone) = api.get(&format!("/v1/sim/phones/{number}/messages")).await;
        assert_eq!(
            phone["messages"].as_array().unwrap().len(),
            1,
            "{number} got one message: {phone}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_that_arrive_together_are_stored_together_each_with_its_own_answer() {
    let api = Arc::new(api().await);
    let mut calls = Vec::new();
    for n in 0..40 {
        let api = api.clone();
        calls.push(tokio::spawn(async move {
            let body =
                json!({"to": format!("+336123456{n:02}"), "content": {"text": format!("n{n}")}});
            api.call("POST", "/v1/messages", Some(body), &[]).await
        }));
    }
    // Five retries of one request and one other request with the same key, at once.
    for n in 0..6 {
        let api = api.clone();
        calls.push(tokio::spawn(async move {
            let text = if n == 5 { "autre" } else { "commande" };
            let body = json!({"to": "+33699999999", "content": {"text": text}});
            api.call(
                "POST",
                "/v1/messages",
                Some(body),
                &[("idempotency-key", "k-77")],
            )
            .await
        }));
    }
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    for (status, body) in &answers[..40] {
        assert_eq!(*status, StatusCode::ACCEPTED, "{body}");
    }
    let ids: std::collections::HashSet<&str> = answers[..40]
        .iter()
        .map(|(_, b)| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 40, "forty messages");
    let keyed = &answers[40..];
    let statuses: Vec<StatusCode> = keyed.iter().map(|(s, _)| *s).collect();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    let accepted: std::collections::HashSet<&str> = keyed
        .iter()
        .filter(|(s, _)| *s == StatusCode::ACCEPTED)
        .map(|(_, b)| b["id"].as_str().unwrap())
        .collect();
    // Whichever of the two bodies came first owns the key: its copies share one message,
    // the other body is a conflict.
    assert_eq!(accepted.len(), 1, "{keyed:?}");
    assert!(conflicts == 1 || conflicts == 5, "{statuses:?}");
    api.dispatch().await;
    let (_, phone) = api.get("/v1/sim/phones/+33699999999/messages").await;
    assert_eq!(phone["messages"].as_array().unwrap().len(), 1, "{phone}");
    let (_, phone) = api.get("/v1/sim/phones/+33612345607/messages").await;
    assert_eq!(phone["messages"][0]["text"], "n7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_recipients_written_to_by_concurrent_requests_get_one_contact_each() {
    // Requests in different groups plan a contact for the same new number at once: one
    // plan is written, the others find that contact and their messages name it.
    let api = Arc::new(api().await);
    let numbers = ["+33655500001", "+33655500002", "+33655500003"];
    let mut calls = Vec::new();
    for n in 0..60 {
        let api = api.clone();
        let to = numbers[n % numbers.len()];
        calls.push(tokio::spawn(async move {
            let body = json!({"to": to, "content": {"text": format!("n{n}")}});
            (to, api.call("POST", "/v1/messages", Some(body), &[]).await)
        }));
    }
    let mut by_number: std::collections::HashMap<&str, Vec<String>> = Default::default();
    for call in calls {
        let (to, (status, body)) = call.await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        by_number
            .entry(to)
            .or_default()
            .push(body["id"].as_str().unwrap().to_owned());
    }
    let (_, all) = api.get("/v1/contacts").await;
    assert_eq!(
        all["data"].as_array().map(Vec::len),
        Some(numbers.len()),
        "one contact per number, none left over: {all}"
    );
    for number in numbers {
        let (status, found) = api
            .get(&format!(
                "/v1/contacts?identity={}",
                number.replace('+', "%2B")
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{found}");
        assert_eq!(found["data"].as_array().map(Vec::len), Some(1), "{found}");
        let contact = found["data"][0]["id"].as_str().unwrap();
        for id in &by_number[number] {
            let (_, message) = api.get(&format!("/v1/messages/{id}")).await;
            assert_eq!(
                message["contact_id"], contact,
                "each message names the contact that owns its number: {message}"
            );
        }
    }
}

#[tokio::test]
async fn a_batch_accepts_the_valid_items_and_reports_the_others() {
    let api = api().await;
    let (status, body) = api
        .post(
            "/v1/messages/batch",
            json!({"messages": [
                {"to": "+33612345678", "content": {"text": "Un"}},
                {"to": "not a number", "content": {"text": "Deux"}},
                {"to": "+33612345679", "template": "Trois {{ n }}", "variables": {"n": 3}},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["refused"], 1);
    assert_eq!(body["results"][1]["error"]["pointer"], "/messages/1/to");
    assert_eq!(body["results"][0]["status"], "queued");
    api.dispatch().await;
    let (_, phone) = api.get("/v1/sim/phones/+33612345679/messages").await;
    assert_eq!(phone["messages"][0]["text"], "Trois 3");
}

#[tokio::test]
async fn a_webhook_is_registered_with_a_secret_and_logs_its_deliveries() {
    let api = api().await;
    let (status, hook) = api
        .post("/v1/webhooks", json!({"url": "https://example.com/relais"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    assert!(hook["secret"].as_str().unwrap().starts_with("whsec_"));
    let (_, hooks) = api.get("/v1/webhooks").await;
    assert_eq!(hooks[0]["id"], hook["id"]);
    assert!(hooks[0].get("secret").is_none(), "the secret is shown once");
    let (status, problem) = api.post("/v1/webhooks", json!({"url": "not a url"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["pointer"], "/url");
    api.post(
        "/v1/messages",
        json!({"to": "+33612345678", "content": {"text": "Hi"}}),
    )
    .await;
    // This dispatcher has no HTTP poster: deliveries wait, logged as pending.
    api.dispatch().await;
    let (status, log) = api
        .get(&format!(
            "/v1/webhooks/{}/deliveries",
            hook["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let statuses: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["payload"]["data"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["sending", "sent"]);
    assert_eq!(log[0]["status"], "pending");
    let (status, _) = api.get("/v1/webhooks/nope/deliveries").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_tenant_sees_none_of_the_messages() {
    let api = api().await;
    let (status, tenant) = api.post("/v1/tenants", json!({"name": "globex"})).await;
    assert_eq!(status, StatusCode::CREATED, "{tenant}");
    let other = tenant["api_key"].as_str().unwrap().to_owned();
    let body = json!({"to": "+33612345678", "content": {"text": "Privé"}});
    let key = [("idempotency-key", "k-1")];
    let (_, mine) = api
        .call("POST", "/v1/messages", Some(body.clone()), &key)
        .await;
    let id = mine["id"].as_str().unwrap();
    let uri = format!("/v1/messages/{id}");
    let (status, _) = api.call_as(&other, "GET", &uri, None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let cancel = format!("/v1/messages/{id}/cancel");
    let (status, _) = api.call_as(&other, "POST", &cancel, None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The same Idempotency-Key in another tenant is another message.
    let (status, theirs) = api
        .call_as(&other, "POST", "/v1/messages", Some(body), &key)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_ne!(theirs["id"], mine["id"]);
    api.dispatch().await;
    let (_, phone) = api
        .call_as(
            &other,
            "GET",
            "/v1/sim/phones/+33612345678/messages",
            None,
            &[],
        )
        .await;
    assert_eq!(phone["messages"].as_array().unwrap().len(), 1);
    let (status, _) = api.get(&uri).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn sent_messages_are_listed_newest_first_and_searched() {
    let api = api().await;
    let mut ids = Vec::new();
    for (to, text) in [
        ("+33612345678", "one"),
        ("+33698765432", "two"),
        ("+33612345678", "three"),
    ] {
        let (status, accepted) = api
            .post(
                "/v1/messages",
                json!({"to": to, "channel": "sim", "content": {"text": text}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        ids.push(accepted["id"].as_str().unwrap().to_owned());
        api.clock.advance(jiff::SignedDuration::from_secs(60));
    }
    // A scheduled one stays behind when the others are delivered.
    let (_, later) = api
        .post(
            "/v1/messages",
            json!({"to": "+33612345678", "channel": "sim", "content": {"text": "later"},
                   "send_at": "2026-11-22T10:00:00Z"}),
        )
        .await;
    api.dispatch().await;

    let listed = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, all) = api.get("/v1/messages").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let later_id = later["id"].as_str().unwrap().to_owned();
    assert_eq!(
        listed(&all),
        [
            later_id.clone(),
            ids[2].clone(),
            ids[1].clone(),
            ids[0].clone()
        ]
    );
    assert_eq!(all["data"][1]["content"]["text"], "three");
    assert!(
        all["data"][1].get("events").is_none(),
        "lists carry no event log"
    );

    let (_, to_ana) = api.get("/v1/messages?to=%2B33612345678").await;
    assert_eq!(
        listed(&to_ana),
        [later_id.clone(), ids[2].clone(), ids[0].clone()]
    );
    let (_, scheduled) = api.get("/v1/messages?status=scheduled").await;
    assert_eq!(listed(&scheduled), [later_id.as_str()]);
    let (_, window) = api
        .get("/v1/messages?since=2026-11-21T10:01:00Z&until=2026-11-21T10:02:00Z&channel=sim")
        .await;
    assert_eq!(listed(&window), [ids[1].clone()]);

    // Pages of two, walked with the cursor.
    let (_, first) = api.get("/v1/messages?limit=2").await;
    assert_eq!(listed(&first).len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = api
        .get(&format!("/v1/messages?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(listed(&second), [ids[1].clone(), ids[0].clone()]);
    assert!(second["next_cursor"].is_null());

    for (uri, parameter) in [
        ("/v1/messages?status=lost", "status"),
        ("/v1/messages?since=yesterday", "since"),
        ("/v1/messages?limit=abc", "limit"),
        ("/v1/messages?cursor=nope", "cursor"),
    ] {
        let (status, problem) = api.get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(parameter),
            "{uri}: {problem}"
        );
    }
}

#[tokio::test]
async fn messages_are_listed_by_the_campaign_they_were_sent_in() {
    let api = api().await;
    let mut sent: Vec<(Option<&str>, String)> = Vec::new();
    for (campaign, to) in [
        (Some("soldes-2026"), "+33612345678"),
        (None, "+33612345679"),
        (Some("rappel_rdv.v2"), "+33612345680"),
        (Some("soldes-2026"), "+33612345681"),
    ] {
        let mut body = json!({"to": to, "channel": "sim", "content": {"text": "Bonjour"}});
        if let Some(campaign) = campaign {
            body["campaign"] = json!(campaign);
        }
        let (status, accepted) = api.post("/v1/messages", body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        sent.push((campaign, accepted["id"].as_str().unwrap().to_owned()));
        api.clock.advance(SignedDuration::from_secs(60));
    }
    // A batch item carries its own campaign.
    let (status, batch) = api
        .post(
            "/v1/messages/batch",
            json!({"messages": [
                {"to": "+33612345682", "channel": "sim", "content": {"text": "Un"}, "campaign": "rappel_rdv.v2"},
                {"to": "+33612345683", "channel": "sim", "content": {"text": "Deux"}},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{batch}");
    assert_eq!(batch["accepted"], 2, "{batch}");
    sent.push((
        Some("rappel_rdv.v2"),
        batch["results"][0]["id"].as_str().unwrap().to_owned(),
    ));
    sent.push((None, batch["results"][1]["id"].as_str().unwrap().to_owned()));
    api.dispatch().await;

    let listed = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let newest_first = |campaign: Option<&str>| -> Vec<String> {
        let mut ids: Vec<String> = sent
            .iter()
            .filter(|(c, _)| campaign.is_none() || *c == campaign)
            .map(|(_, id)| id.clone())
            .collect();
        ids.sort();
        ids.reverse();
        ids
    };
    let (status, soldes) = api.get("/v1/messages?campaign=soldes-2026").await;
    assert_eq!(status, StatusCode::OK, "{soldes}");
    assert_eq!(listed(&soldes), newest_first(Some("soldes-2026")));
    assert_eq!(listed(&soldes).len(), 2);
    assert!(
        soldes["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["campaign"] == "soldes-2026")
    );
    let (_, rappel) = api.get("/v1/messages?campaign=rappel_rdv.v2").await;
    assert_eq!(listed(&rappel), newest_first(Some("rappel_rdv.v2")));
    assert_eq!(listed(&rappel).len(), 2);
    let (_, all) = api.get("/v1/messages").await;
    assert_eq!(listed(&all), newest_first(None));
    assert_eq!(listed(&all).len(), 6);
    let (_, unknown) = api.get("/v1/messages?campaign=hiver").await;
    assert!(listed(&unknown).is_empty(), "{unknown}");
    // With the other filters, a page at a time.
    let status = soldes["data"][0]["status"].as_str().unwrap();
    let (_, first) = api
        .get(&format!(
            "/v1/messages?campaign=soldes-2026&status={status}&channel=sim&limit=1"
        ))
        .await;
    assert_eq!(
        listed(&first),
        newest_first(Some("soldes-2026"))[..1],
        "{first}"
    );
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = api
        .get(&format!(
            "/v1/messages?campaign=soldes-2026&status={status}&channel=sim&limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(
        listed(&second),
        newest_first(Some("soldes-2026"))[1..],
        "{second}"
    );
    assert!(second["next_cursor"].is_null(), "{second}");

    // The message shows its campaign; one sent without shows none.
    let (_, one) = api.get(&format!("/v1/messages/{}", sent[0].1)).await;
    assert_eq!(one["campaign"], "soldes-2026", "{one}");
    let (_, none) = api.get(&format!("/v1/messages/{}", sent[1].1)).await;
    assert!(none.get("campaign").is_none(), "{none}");

    // A bad filter is a problem naming the parameter.
    let (status, problem) = api.get("/v1/messages?campaign=soldes%202026").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("campaign"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_bad_campaign_label_is_refused_at_its_pointer_and_nothing_is_stored() {
    let api = api().await;
    let too_long = "x".repeat(65);
    for (campaign, says) in [
        (json!(""), "empty"),
        (json!("soldes 2026"), "` `"),
        (json!("été"), "`é`"),
        (json!(too_long), "at most 64"),
    ] {
        let (status, problem) = api
            .post(
                "/v1/messages",
                json!({"to": "+33612345678", "content": {"text": "x"}, "campaign": campaign}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["pointer"], "/campaign", "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(says),
            "{campaign}: {problem}"
        );
    }
    let (status, problem) = api
        .post(
            "/v1/messages",
            json!({"to": "+33612345678", "content": {"text": "x"}, "campaign": 42}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/campaign", "{problem}");

    // In a batch, the item is refused at its own pointer and the others go.
    let (status, batch) = api
        .post(
            "/v1/messages/batch",
            json!({"messages": [
                {"to": "+33612345678", "content": {"text": "Un"}, "campaign": "soldes/2026"},
                {"to": "+33612345679", "content": {"text": "Deux"}, "campaign": "soldes-2026"},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{batch}");
    assert_eq!(batch["refused"], 1, "{batch}");
    assert_eq!(
        batch["results"][0]["error"]["pointer"], "/messages/0/campaign",
        "{batch}"
    );

    let (_, all) = api.get("/v1/messages").await;
    let stored = all["data"].as_array().unwrap();
    assert_eq!(stored.len(), 1, "only the good batch item: {all}");
    assert_eq!(stored[0]["to"], "+33612345679");
    let (_, phone) = api.get("/v1/sim/phones/+33612345678/messages").await;
    assert!(
        phone["messages"].as_array().is_none_or(|m| m.is_empty()),
        "{phone}"
    );
}

#[tokio::test]
async fn the_campaign_is_part_of_what_an_idempotency_key_guards() {
    let api = api().await;
    let send = |campaign: &'static str| {
        api.call(
            "POST",
            "/v1/messages",
            Some(json!({"to": "+33612345678", "content": {"text": "Promo"}, "campaign": campaign})),
            &[("idempotency-key", "promo-1")],
        )
    };
    let (status, first) = send("soldes-2026").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (status, again) = send("soldes-2026").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["id"], first["id"]);
    let (status, other) = send("hiver-2026").await;
    assert_eq!(status, StatusCode::CONFLICT, "{other}");
    let (_, listed) = api.get("/v1/messages?campaign=hiver-2026").await;
    assert!(listed["data"].as_array().unwrap().is_empty(), "{listed}");
}
