//! Inbound messages over HTTP as a tenant sees them: a simulated phone's reply becomes a
//! stored message annotated with language, intent, sentiment and urgency, listed under
//! `/v1/inbound`, stored once per provider id, and invisible to other tenants.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use relais_core::clock::{Clock, ManualClock};
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;

struct Api {
    app: axum::Router,
    key: String,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let clock = Arc::new(ManualClock::new("2026-11-21T10:00:00Z".parse().unwrap()));
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let settings = HttpSettings {
        default_country: Some(phonenumber::country::Id::FR),
        ..Default::default()
    };
    let state = AppState::new(store.clone(), clock.clone(), settings, None);
    Api {
        app: router(state),
        key: key.secret,
        store,
        clock,
        _dir: dir,
    }
}

impl Api {
    async fn call(
        &self,
        key: &str,
        method: &str,
        uri: &str,
        body: Option<(&str, String)>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"));
        let body = match body {
            Some((content_type, text)) => {
                req = req.header(header::CONTENT_TYPE, content_type);
                Body::from(text)
            }
            None => Body::empty(),
        };
        let (status, value, _) = support::respond(&self.app, req.body(body).unwrap()).await;
        (status, value)
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            &self.key,
            "POST",
            uri,
            Some(("application/json", body.to_string())),
        )
        .await
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(&self.key, "GET", uri, None).await
    }

    async fn send(&self, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            &self.key,
            method,
            uri,
            Some(("application/json", body.to_string())),
        )
        .await
    }

    /// A simulated phone writes `text`; the inbound message as stored.
    async fn phone_writes(&self, number: &str, text: &str) -> Value {
        let (status, reply) = self
            .post(
                &format!("/v1/sim/phones/{number}/reply"),
                json!({ "text": text }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{reply}");
        reply["inbound"].clone()
    }

    async fn thread(&self, conversation: &str) -> Value {
        let (status, thread) = self.get(&format!("/v1/conversations/{conversation}")).await;
        assert_eq!(status, StatusCode::OK, "{thread}");
        thread
    }
}

const TRAVEL_CSV: &str = "text,intent
I still have not received my ticket,ticket_issue
where is my boarding pass,ticket_issue
no ticket in my mailbox for my flight,ticket_issue
my e-ticket never arrived,ticket_issue
je n'ai toujours pas reçu mon billet,ticket_issue
où est ma carte d'embarquement,ticket_issue
I want a refund for my trip,refund
please give me my money back,refund
can I get reimbursed for the cancelled flight,refund
je veux être remboursé,refund
remboursez-moi svp,refund
my suitcase is lost,baggage
my luggage did not arrive,baggage
where is my bag,baggage
ma valise a été perdue,baggage
mes bagages ne sont pas arrivés,baggage
";

async fn trained() -> Api {
    let api = api().await;
    let (status, model) = api
        .call(
            &api.key,
            "POST",
            "/v1/nlu/train",
            Some(("text/csv", TRAVEL_CSV.to_owned())),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{model}");
    api
}

#[tokio::test]
async fn a_phone_reply_is_listed_with_its_annotations() {
    let api = trained().await;
    // Known by her SMS number; the simulated phone stands in for that phone.
    let (status, contact) = api
        .post(
            "/v1/contacts",
            json!({"identities": [{"channel": "sms", "address": "+33612345678"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");

    let (status, reply) = api
        .post(
            "/v1/sim/phones/0612345678/reply",
            json!({"text": "URGENT my flight leaves today and I still have no ticket!!"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["duplicate"], false);
    let id = reply["inbound"]["id"].as_str().unwrap().to_owned();

    let (status, page) = api.get("/v1/inbound").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed = &page["data"][0];
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(listed["channel"], "sim");
    assert_eq!(listed["from"], "+33612345678");
    assert_eq!(listed["contact_id"], contact["id"]);
    let a = &listed["annotations"];
    assert_eq!(a["language"], "en", "{a}");
    assert_eq!(a["model_version"], 1);
    assert_eq!(a["intent"]["best_guess"], "ticket_issue", "{a}");
    assert!(a["intent"]["confidence"].as_f64().unwrap() > 0.0);
    assert_eq!(a["sentiment"]["label"], "negative", "{a}");
    assert!(a["sentiment"]["emotions"].is_object());
    assert!(a["urgency"]["score"].as_f64().unwrap() > 0.5, "{a}");
    assert_eq!(a["urgency"]["urgent"], true);
    let cues = a["urgency"]["cues"].as_array().unwrap();
    assert!(cues.contains(&json!("keyword:urgent")), "{cues:?}");

    let (status, one) = api.get(&format!("/v1/inbound/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&one, listed);

    // A French answer from another phone, unknown to the tenant.
    let (status, reply) = api
        .post(
            "/v1/sim/phones/+33698765432/reply",
            json!({"text": "Bonjour, je n'ai toujours pas reçu mon billet, merci de m'aider"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["inbound"]["annotations"]["language"], "fr");
    // The pipeline made the unknown sender a contact of their own.
    assert!(reply["inbound"]["contact_id"].is_string(), "{reply}");
    assert_ne!(reply["inbound"]["contact_id"], contact["id"]);

    // Filtered by contact, only the first one.
    let contact_id = contact["id"].as_str().unwrap();
    let (_, mine) = api
        .get(&format!("/v1/inbound?contact_id={contact_id}"))
        .await;
    let ids: Vec<&str> = mine["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);

    // The phone still shows its replies.
    let (_, phone) = api.get("/v1/sim/phones/0612345678/messages").await;
    assert_eq!(phone["messages"][0]["direction"], "sent");
}

#[tokio::test]
async fn a_redelivered_reply_is_stored_once() {
    let api = trained().await;
    let body = json!({"text": "where is my bag", "provider_id": "mo-77"});
    let (status, first) = api
        .post("/v1/sim/phones/0612345678/reply", body.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = api.post("/v1/sim/phones/0612345678/reply", body).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["inbound"]["id"], first["inbound"]["id"]);
    let (_, page) = api.get("/v1/inbound").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["data"][0]["provider_id"], "mo-77");
}

#[tokio::test]
async fn pages_walk_every_inbound_message_once() {
    let api = api().await;
    for i in 0..5 {
        let (status, _) = api
            .post(
                "/v1/sim/phones/0612345678/reply",
                json!({"text": format!("message {i}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut texts = Vec::new();
    let mut uri = "/v1/inbound?limit=2".to_owned();
    loop {
        let (status, page) = api.get(&uri).await;
        assert_eq!(status, StatusCode::OK);
        for m in page["data"].as_array().unwrap() {
            texts.push(m["text"].as_str().unwrap().to_owned());
            // Without a trained model the rest is still read.
            assert!(m["annotations"]["intent"].is_null());
            assert!(m["annotations"]["language"].is_string());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/v1/inbound?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        texts,
        [
            "message 0",
            "message 1",
            "message 2",
            "message 3",
            "message 4"
        ]
    );
}

#[tokio::test]
async fn another_tenant_cannot_see_inbound_messages() {
    let api = trained().await;
    let (_, reply) = api
        .post(
            "/v1/sim/phones/0612345678/reply",
            json!({"text": "my suitcase is lost"}),
        )
        .await;
    let id = reply["inbound"]["id"].as_str().unwrap();
    let (status, globex) = api.post("/v1/tenants", json!({"name": "globex"})).await;
    assert_eq!(status, StatusCode::CREATED, "{globex}");
    let other = globex["api_key"].as_str().unwrap();

    let (status, page) = api.call(other, "GET", "/v1/inbound", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["data"], json!([]));
    let (status, problem) = api
        .call(other, "GET", &format!("/v1/inbound/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    let (status, _) = api.get(&format!("/v1/inbound/{id}")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn inbound_routes_need_a_key_and_are_documented() {
    let api = api().await;
    let (status, _) = api.call("wrong", "GET", "/v1/inbound", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let doc = relais_server::openapi_json();
    assert!(
        doc.contains("/v1/inbound/{id}"),
        "inbound is in the OpenAPI description"
    );
}

#[tokio::test]
async fn classify_answers_one_message_as_inbound_messages_are_annotated() {
    let api = trained().await;
    let text = "URGENT my flight leaves today and I still have no ticket!!";
    let (status, classified) = api.post("/v1/nlu/classify", json!({"text": text})).await;
    assert_eq!(status, StatusCode::OK, "{classified}");
    assert_eq!(classified["model_version"], 1);
    assert_eq!(classified["language"], "en");
    assert_eq!(classified["intent"]["best_guess"], "ticket_issue");
    assert!(classified["intent"]["confidence"].as_f64().unwrap() > 0.0);
    assert!(classified["intent"]["out_of_scope"].is_boolean());
    assert_eq!(classified["sentiment"]["label"], "negative");
    assert!(classified["sentiment"]["emotions"].is_object());
    assert!(classified["urgency"]["score"].as_f64().unwrap() > 0.5);

    // The same text arriving from a phone is annotated with exactly that answer.
    let (status, reply) = api
        .post("/v1/sim/phones/+33611112222/reply", json!({"text": text}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let stored = &reply["inbound"]["annotations"];
    assert!(
        same_up_to_float_widening(stored, &classified),
        "{stored} vs {classified}"
    );

    let (status, problem) = api.post("/v1/nlu/classify", json!({"txt": text})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
}

/// JSON equality where numbers may differ by the widening of an `f32` to an `f64` (the
/// stored annotations went through a `serde_json::Value`).
fn same_up_to_float_widening(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-6
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(x, y)| same_up_to_float_widening(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_up_to_float_widening(v, w)))
        }
        _ => a == b,
    }
}

fn directions(thread: &Value) -> Vec<String> {
    thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["direction"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_customer_writes_in_and_is_answered_in_one_conversation() {
    let api = api().await;
    let inbound = api
        .phone_writes("0612345678", "Bonjour, où est mon colis ?")
        .await;
    let conversation = inbound["conversation_id"].as_str().unwrap().to_owned();
    let contact = inbound["contact_id"]
        .as_str()
        .expect("a contact is created")
        .to_owned();

    let (status, page) = api.get("/v1/conversations").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed = &page["data"][0];
    assert_eq!(listed["id"], conversation.as_str());
    assert_eq!(listed["contact"], contact.as_str());
    assert_eq!(listed["state"], "pending");
    assert_eq!(listed["channel"], "sim");
    assert_eq!(listed["address"], "+33612345678");
    assert_eq!(
        listed["last_message"]["text"],
        "Bonjour, où est mon colis ?"
    );

    // The reply goes where the customer wrote.
    let (status, sent) = api
        .post(
            &format!("/v1/conversations/{conversation}/messages"),
            json!({"content": {"text": "Il arrive demain."}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let thread = api.thread(&conversation).await;
    assert_eq!(directions(&thread), ["in", "out"]);
    assert_eq!(
        thread["messages"][1]["content"]["text"],
        "Il arrive demain."
    );
    assert_eq!(thread["messages"][1]["id"], sent["id"]);
    assert_eq!(thread["last_message"]["direction"], "out");
    let (_, message) = api
        .get(&format!("/v1/messages/{}", sent["id"].as_str().unwrap()))
        .await;
    assert_eq!(message["channel"], "sim");

    // Resolved; a STOP does not reopen it but is answered once; a message does.
    let (status, resolved) = api
        .send(
            "PATCH",
            &format!("/v1/conversations/{conversation}"),
            json!({"state": "resolved"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["state"], "resolved");
    let stop = api.phone_writes("0612345678", "STOP").await;
    assert_eq!(stop["conversation_id"], conversation.as_str());
    let thread = api.thread(&conversation).await;
    assert_eq!(thread["state"], "resolved");
    assert_eq!(directions(&thread), ["in", "out", "in", "out"]);
    let (_, consents) = api.get(&format!("/v1/contacts/{contact}/consents")).await;
    assert_eq!(
        consents["history"].as_array().map(Vec::len),
        Some(1),
        "{consents}"
    );
    assert_eq!(consents["history"][0]["status"], "opted_out");
    assert_eq!(consents["history"][0]["source"], "keyword");
    let (_, listed) = api.get("/v1/conversations?state=resolved").await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));

    api.phone_writes("0612345678", "Merci, et pour le retour ?")
        .await;
    let thread = api.thread(&conversation).await;
    assert_eq!(thread["state"], "pending");
    let (_, listed) = api.get("/v1/conversations?state=resolved").await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn conversation_routes_refuse_bad_input_with_problems() {
    let api = api().await;
    let inbound = api.phone_writes("0612345678", "Hello").await;
    let conversation = inbound["conversation_id"].as_str().unwrap().to_owned();
    for (method, uri, body, expected) in [
        (
            "PATCH",
            format!("/v1/conversations/{conversation}"),
            json!({"state": "closed"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "PATCH",
            "/v1/conversations/nope".to_owned(),
            json!({"state": "open"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            "/v1/conversations/nope/messages".to_owned(),
            json!({"content": {"text": "hi"}}),
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            format!("/v1/conversations/{conversation}/messages"),
            json!({"content": {"nope": 1}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            format!("/v1/conversations/{conversation}/messages"),
            json!({"text": "hi"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (status, problem) = api.send(method, &uri, body.clone()).await;
        assert_eq!(status, expected, "{method} {uri} {body}: {problem}");
        assert!(problem["detail"].is_string(), "{problem}");
    }
    for uri in [
        "/v1/conversations?state=closed",
        "/v1/conversations?cursor=garbage",
        "/v1/conversations?limit=abc",
    ] {
        let (status, problem) = api.get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {problem}");
        assert!(problem["detail"].is_string(), "{problem}");
    }
    let (status, _) = api.get("/v1/conversations/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Nothing was sent by the refused replies.
    let thread = api.thread(&conversation).await;
    assert_eq!(directions(&thread), ["in"]);
}

#[tokio::test]
async fn a_reply_after_the_customer_service_window_is_refused_with_its_end() {
    let api = api().await;
    let (status, contact) = api
        .post(
            "/v1/contacts",
            json!({"identities": [{"channel": "whatsapp", "address": "+33612345678"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    let tenant = api
        .store
        .tenant_by_name("default")
        .await
        .unwrap()
        .expect("bootstrapped")
        .id;
    // What a WhatsApp message (channels to come) leaves: the conversation's last inbound.
    let last = json!({"direction": "in", "text": "hello"});
    let written_at = api.clock.now();
    let conversation = api
        .store
        .place_inbound(&relais_store::InboundPlacement {
            tenant_id: &tenant,
            contact_id: contact["id"].as_str().unwrap(),
            message_id: "wa-1",
            channel: relais_core::channel::ChannelKind::Whatsapp,
            channel_id: None,
            address: "+33612345678",
            last_message: &last,
            at: written_at,
            state: relais_core::conversation::ConversationState::Pending,
            reopens: true,
        })
        .await
        .unwrap();
    // And the message itself, which the accept path measures the window from.
    api.store
        .insert_inbound(&relais_store::NewInboundMessage {
            id: relais_core::ids::new_id(),
            tenant_id: tenant.clone(),
            channel: relais_core::channel::ChannelKind::Whatsapp,
            channel_id: None,
            from_address: "+33612345678".into(),
            to_address: "15550783881".into(),
            contact_id: contact["id"].as_str().map(str::to_owned),
            text: "hello".into(),
            payload: None,
            media: None,
            provider_id: Some("wa-1".into()),
            received_at: written_at,
        })
        .await
        .unwrap();
    let uri = format!("/v1/conversations/{}/messages", conversation.id);
    let thread = api.thread(&conversation.id).await;
    assert_eq!(thread["window_closes_at"], "2026-11-22T10:00:00Z");

    // A WhatsApp channel to reply on (a send to a kind with none is refused at once); its
    // provider is never called here.
    let (status, created) = api
        .post(
            "/v1/channels",
            json!({"kind": "whatsapp", "name": "wa", "config": {"phone_number_id": "106540352242922",
                "access_token": "t", "app_secret": "s", "verify_token": "v",
                "base_url": "http://127.0.0.1:9"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    // Inside the window the reply is not refused.
    api.clock.advance(jiff::SignedDuration::from_hours(23));
    let (_, inside) = api.post(&uri, json!({"content": {"text": "hi"}})).await;
    assert!(
        !inside["type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("window-closed"),
        "{inside}"
    );

    api.clock.advance(jiff::SignedDuration::from_hours(2));
    let (status, problem) = api.post(&uri, json!({"content": {"text": "hi"}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["type"].as_str().unwrap().ends_with("window-closed"),
        "{problem}"
    );
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("2026-11-22T10:00:00Z") && detail.contains("template"),
        "{detail}"
    );
    // A template is what the window still allows: not refused for it.
    let (_, template) = api
        .post(
            &uri,
            json!({"content": {"template": "order_shipped", "language": "fr"}}),
        )
        .await;
    assert!(
        !template["type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("window-closed"),
        "{template}"
    );
    assert_eq!(template["status"], "queued", "{template}");
    let thread = api.thread(&conversation.id).await;
    let sent = directions(&thread).iter().filter(|d| *d == "out").count();
    assert_eq!(
        sent, 2,
        "the reply inside the window and the template: {thread}"
    );
}

#[tokio::test]
async fn keywords_are_read_replaced_and_refused_with_a_pointer() {
    let api = api().await;
    let (status, defaults) = api.get("/v1/keywords").await;
    assert_eq!(status, StatusCode::OK, "{defaults}");
    assert!(
        defaults["stop"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == "ARRÊT")
    );
    assert_eq!(defaults["language"], "en");

    // A word two actions share could not work.
    let mut broken = defaults.clone();
    broken["start"].as_array_mut().unwrap().push(json!("stop"));
    let (status, problem) = api.send("PUT", "/v1/keywords", broken).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["errors"][0]["pointer"]
            .as_str()
            .unwrap()
            .starts_with("/start/"),
        "{problem}"
    );
    let (status, _) = api
        .send("PUT", "/v1/keywords", json!({"stop": ["STOP"]}))
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a partial document is refused"
    );

    let mut custom = defaults.clone();
    custom["stop"].as_array_mut().unwrap().push(json!("BASTA"));
    custom["language"] = json!("fr");
    let (status, saved) = api.send("PUT", "/v1/keywords", custom.clone()).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let (_, read) = api.get("/v1/keywords").await;
    assert_eq!(read, custom);

    let inbound = api.phone_writes("0612345678", "Basta !").await;
    let contact = inbound["contact_id"].as_str().unwrap();
    let (_, consents) = api.get(&format!("/v1/contacts/{contact}/consents")).await;
    assert_eq!(consents["history"][0]["status"], "opted_out", "{consents}");
    let thread = api
        .thread(inbound["conversation_id"].as_str().unwrap())
        .await;
    // The tenant's language now, for a keyword that tells none.
    assert!(
        thread["messages"][1]["content"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Vous ne recevrez plus"),
        "{thread}"
    );
}
