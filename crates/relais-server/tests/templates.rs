//! Stored templates (`/v1/templates`) as a client sees them, and what a send naming a
//! template becomes on each channel: the rendered variant on a sim phone, the approved
//! template on WhatsApp (a local fake of Meta's Graph API), the WhatsApp template registry
//! synchronised from the Graph API, and the 24-hour customer-service window, with the
//! dispatcher driven by a manual clock.

mod support;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Request, StatusCode, header};
use jiff::SignedDuration;
use relais_channels::whatsapp::signature::sign;
use relais_core::clock::{Clock, ManualClock};
use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
use relais_engine::sim::SimConfig;
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const PHONE_NUMBER_ID: &str = "106540352242922";
const WABA_ID: &str = "102290129340398";
const APP_SECRET: &str = "the-app-secret";
const ACCESS_TOKEN: &str = "EAAG-test-token";
const PHONE: &str = "+33612345678";

/// What the fake Graph API was sent, and the template pages it answers.
#[derive(Clone, Default)]
struct Graph {
    sent: Arc<Mutex<Vec<Value>>>,
    base_url: Arc<Mutex<String>>,
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {ACCESS_TOKEN}"))
}

fn oauth_error() -> (StatusCode, axum::Json<Value>) {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(
            json!({"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}}),
        ),
    )
}

async fn graph_messages(
    State(graph): State<Graph>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> (StatusCode, axum::Json<Value>) {
    if !authorized(&headers) {
        return oauth_error();
    }
    let mut sent = graph.sent.lock().unwrap();
    sent.push(body.clone());
    let wamid = format!("wamid.TEST{}", sent.len());
    (
        StatusCode::OK,
        axum::Json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": body["to"]}],
            "messages": [{"id": wamid}]
        })),
    )
}

/// Two pages, as Meta's Business Management API answers `GET /{waba_id}/message_templates`.
async fn graph_templates(
    State(graph): State<Graph>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, axum::Json<Value>) {
    if !authorized(&headers) {
        return oauth_error();
    }
    let base = graph.base_url.lock().unwrap().clone();
    let body = json!([{"type": "BODY", "text": "Bonjour {{1}}, votre commande {{2}} est partie."}]);
    let page = if query.get("after").map(String::as_str) == Some("QVFIUk") {
        json!({"data": [
            {"name": "welcome", "language": "en_US", "status": "REJECTED", "category": "MARKETING",
             "components": [{"type": "BODY", "text": "Welcome!"}], "id": "3"}
        ], "paging": {"cursors": {"before": "QVFIUk", "after": "QVFIUk"}}})
    } else {
        json!({"data": [
            {"name": "order_shipped", "language": "fr", "status": "APPROVED", "category": "UTILITY",
             "components": body, "id": "1"},
            {"name": "black_friday", "language": "fr", "status": "PENDING", "category": "MARKETING",
             "components": [{"type": "BODY", "text": "-50 %"}], "id": "2"}
        ], "paging": {"cursors": {"before": "QVFIUa", "after": "QVFIUk"},
            "next": format!("{base}/v23.0/{WABA_ID}/message_templates?fields=name,language,status,category,components&limit=100&after=QVFIUk")}})
    };
    (StatusCode::OK, axum::Json(page))
}

async fn fake_graph() -> (String, Graph) {
    let graph = Graph::default();
    let app = axum::Router::new()
        .route(
            &format!("/v23.0/{PHONE_NUMBER_ID}/messages"),
            axum::routing::post(graph_messages),
        )
        .route(
            &format!("/v23.0/{WABA_ID}/message_templates"),
            axum::routing::get(graph_templates),
        )
        .with_state(graph.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    *graph.base_url.lock().unwrap() = url.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, graph)
}

struct Api {
    app: axum::Router,
    key: String,
    clock: Arc<ManualClock>,
    dispatcher: Dispatcher,
    graph: Graph,
    channel_id: String,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let clock = Arc::new(ManualClock::new("2026-11-23T10:00:00Z".parse().unwrap()));
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let settings = HttpSettings {
        default_country: Some(phonenumber::country::Id::FR),
        ..Default::default()
    };
    let state = AppState::new(store.clone(), clock.clone(), settings, None);
    let config = DispatcherConfig {
        lease_owner: "test".into(),
        ..Default::default()
    };
    let dispatcher = Dispatcher::new(store.clone(), clock.clone(), config)
        .with_adapter(Arc::new(relais_engine::sim::adapter(
            store.clone(),
            SimConfig {
                delivered_after: None,
                read_after: None,
            },
        )))
        .with_registry(state.channels.registry());
    let (base_url, graph) = fake_graph().await;
    let mut api = Api {
        app: router(state),
        key: key.secret,
        clock,
        dispatcher,
        graph,
        channel_id: String::new(),
        _dir: dir,
    };
    let (status, created) = api
        .post(
            "/v1/channels",
            json!({"kind": "whatsapp", "name": "wa", "config": {
                "phone_number_id": PHONE_NUMBER_ID, "access_token": ACCESS_TOKEN,
                "app_secret": APP_SECRET, "verify_token": "the-verify-token",
                "waba_id": WABA_ID, "base_url": base_url, "api_version": "v23.0"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    api.channel_id = created["id"].as_str().unwrap().to_owned();
    let (status, contact) = api
        .post(
            "/v1/contacts",
            json!({"identities": [{"channel": "sms", "address": PHONE}], "locale": "fr-FR",
                "attributes": {"first_name": "Camille"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    api
}

impl Api {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        support::call(&self.app, &self.key, method, uri, body).await
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", uri, Some(body)).await
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call("GET", uri, None).await
    }

    async fn dispatch(&self) {
        self.dispatcher.run_until_idle(10).await.unwrap();
    }

    async fn phone(&self) -> Vec<String> {
        let (_, phone) = self.get(&format!("/v1/sim/phones/{PHONE}/messages")).await;
        phone["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn graph_sent(&self) -> Vec<Value> {
        self.graph.sent.lock().unwrap().clone()
    }

    /// The customer writes to the business number on WhatsApp (a signed Meta webhook).
    async fn customer_writes(&self, wamid: &str) {
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": WABA_ID,
            "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
                "contacts": [{"profile": {"name": "Camille"}, "wa_id": "33612345678"}],
                "messages": [{"from": "33612345678", "id": wamid, "timestamp": "1795428000",
                    "type": "text", "text": {"body": "Bonjour, où en est ma commande ?"}}]}}]}]})
        .to_string();
        let request = Request::builder()
            .method("POST")
            .uri(format!("/hooks/{}", self.channel_id))
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-hub-signature-256", sign(APP_SECRET, body.as_bytes()))
            .body(Body::from(body))
            .unwrap();
        let (status, answer, _) = support::respond(&self.app, request).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    async fn message(&self, id: &Value) -> Value {
        self.get(&format!("/v1/messages/{}", id.as_str().unwrap()))
            .await
            .1
    }
}

fn order_shipped() -> Value {
    json!({"name": "order_shipped", "variants": [
        {"language": "en", "content": {"text": "Hello {{ first_name }}, order {{ order }} has shipped."}},
        {"language": "fr", "content": {"text": "Bonjour {{ first_name }}, votre commande {{ order }} est partie."},
         "whatsapp": {"name": "order_shipped", "language": "fr", "parameters": ["first_name", "order"]}}
    ]})
}

fn detail(problem: &Value) -> String {
    let mut text = problem["detail"].as_str().unwrap_or_default().to_owned();
    for e in problem["errors"].as_array().into_iter().flatten() {
        text.push_str(&format!(" | {} {}", e["pointer"], e["detail"]));
    }
    text
}

#[tokio::test]
async fn templates_are_created_read_listed_replaced_and_deleted() {
    let api = api().await;
    let (status, created) = api.post("/v1/templates", order_shipped()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "order_shipped");
    assert_eq!(created["variants"][1]["whatsapp"]["name"], "order_shipped");
    assert_eq!(
        created["variants"][0]["content"]["text"],
        "Hello {{ first_name }}, order {{ order }} has shipped."
    );
    let (status, problem) = api.post("/v1/templates", order_shipped()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        detail(&problem).contains("PUT /v1/templates/order_shipped"),
        "{problem}"
    );

    let (status, read) = api.get("/v1/templates/order_shipped").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, created);
    let (status, replaced) = api
        .call(
            "PUT",
            "/v1/templates/order_shipped",
            Some(json!({"variants": [{"language": "fr", "content": {"text": "Commande {{ order }} partie"}}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["variants"].as_array().unwrap().len(), 1);
    let (status, _) = api
        .call(
            "PUT",
            "/v1/templates/rdv",
            Some(json!({"variants": [{"language": "fr", "content": {"text": "RDV demain"}}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, list) = api.get("/v1/templates").await;
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["order_shipped", "rdv"]);

    let (status, _) = api.call("DELETE", "/v1/templates/rdv", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, problem) = api.call("DELETE", "/v1/templates/rdv", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    let (status, _) = api.get("/v1/templates/rdv").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_template_with_mistakes_is_refused_at_each_pointer_and_nothing_is_stored() {
    let api = api().await;
    let (status, problem) = api
        .post(
            "/v1/templates",
            json!({"name": "promo!", "variants": [
                {"language": "fr", "content": {"text": "Bonjour {{ first_name"}},
                {"language": "fr", "content": {"text": "x"}, "whatsapp": {"name": "promo"}},
                {"content": {"template": "other"}}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        problem["type"].as_str().map(|t| t.ends_with("validation")),
        Some(true),
        "{problem}"
    );
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    for expected in [
        "/name",
        "/variants/0/content",
        "/variants/1/language",
        "/variants/1/whatsapp",
        "/variants/2/language",
        "/variants/2/content/template",
    ] {
        assert!(pointers.contains(&expected), "{expected}: {problem}");
    }
    let (status, problem) = api
        .call(
            "PUT",
            "/v1/templates/promo",
            Some(json!({"name": "other", "variants": []})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (_, list) = api.get("/v1/templates").await;
    assert_eq!(list["data"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn a_stored_template_reaches_the_phone_rendered_in_the_contacts_language() {
    let api = api().await;
    let (status, _) = api.post("/v1/templates", order_shipped()).await;
    assert_eq!(status, StatusCode::CREATED);
    // The contact's locale (fr-FR) picks the French variant.
    let (status, accepted) = api
        .post(
            "/v1/messages",
            json!({"to": PHONE, "channel": "sim",
                "content": {"template": "order_shipped", "variables": {"order": "A-42"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    // The request's language wins.
    let (status, _) = api
        .post(
            "/v1/messages",
            json!({"to": PHONE, "channel": "sim", "variables": {"order": "A-43"},
                "content": {"template": "order_shipped", "language": "en"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    api.dispatch().await;
    assert_eq!(
        api.phone().await,
        [
            "Bonjour Camille, votre commande A-42 est partie.",
            "Hello Camille, order A-43 has shipped."
        ]
    );
    // A variable the template needs and nobody gave is refused before anything is stored.
    let (status, problem) = api
        .post(
            "/v1/messages",
            json!({"to": PHONE, "channel": "sim", "content": {"template": "order_shipped"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(detail(&problem).contains("order"), "{problem}");
}

#[tokio::test]
async fn a_template_that_is_neither_stored_nor_a_provider_template_there_is_refused() {
    let api = api().await;
    let (status, problem) = api
        .post(
            "/v1/messages",
            json!({"to": PHONE, "channel": "sim", "content": {"template": "order_shipped"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let text = detail(&problem);
    assert!(
        text.contains("`order_shipped`") && text.contains("not stored"),
        "{problem}"
    );
    // A chain whose SMS step could not send it is refused too, naming that step.
    let (status, problem) = api
        .post(
            "/v1/messages",
            json!({"to": PHONE, "channels": ["wa", "sim"],
                "content": {"template": "order_shipped", "language": "fr"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/channels/1", "{problem}");
    api.dispatch().await;
    assert!(
        api.phone().await.is_empty(),
        "no `[template] …` on the phone"
    );
    // On WhatsApp alone, an unstored name is Meta's approved template, sent by name.
    let (status, accepted) = api
        .post(
            "/v1/messages",
            json!({"to": PHONE, "channel": "wa",
                "content": {"template": "order_shipped", "language": "fr", "variables": {"1": "Camille"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    api.dispatch().await;
    let sent = api.graph_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["type"], "template");
    assert_eq!(sent[0]["template"]["name"], "order_shipped");
}

#[tokio::test]
async fn each_step_of_a_chain_gets_its_form_of_a_mapped_template() {
    let api = api().await;
    let (status, _) = api.post("/v1/templates", order_shipped()).await;
    assert_eq!(status, StatusCode::CREATED);
    // WhatsApp first (no delivery comes from the fake), then the sim phone after 5 minutes.
    let (status, accepted) = api
        .post(
            "/v1/messages",
            json!({"to": PHONE, "channels": ["wa", {"channel": "sim", "after": "not_delivered", "within": "5m"}],
                "content": {"template": "order_shipped", "variables": {"order": "A-42"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    api.dispatch().await;
    let sent = api.graph_sent();
    assert_eq!(sent.len(), 1, "WhatsApp gets the approved template");
    assert_eq!(
        sent[0]["template"],
        json!({"name": "order_shipped", "language": {"code": "fr"},
            "components": [{"type": "body", "parameters": [
                {"type": "text", "text": "Camille"}, {"type": "text", "text": "A-42"}]}]})
    );
    assert!(api.phone().await.is_empty());
    api.clock.advance(SignedDuration::from_mins(5));
    api.dispatch().await;
    assert_eq!(
        api.phone().await,
        ["Bonjour Camille, votre commande A-42 est partie."],
        "the sim phone gets the rendered variant, never `[template] …`"
    );
    let message = api.message(&accepted["id"]).await;
    assert_eq!(message["channel"], "sim", "{message}");
}

#[tokio::test]
async fn the_whatsapp_registry_is_synchronised_page_by_page_and_an_unapproved_template_is_refused()
{
    let api = api().await;
    let uri = format!("/v1/channels/{}/templates/sync", api.channel_id);
    let (status, synced) = api.post(&uri, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{synced}");
    let (status, list) = api
        .get(&format!("/v1/channels/{}/templates", api.channel_id))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, synced);
    let rows: Vec<(String, String, String, String)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let s = |k: &str| t[k].as_str().unwrap().to_owned();
            (s("name"), s("language"), s("category"), s("status"))
        })
        .collect();
    let row = |a: &str, b: &str, c: &str, d: &str| (a.into(), b.into(), c.into(), d.into());
    assert_eq!(
        rows,
        [
            row("black_friday", "fr", "MARKETING", "PENDING"),
            row("order_shipped", "fr", "UTILITY", "APPROVED"),
            row("welcome", "en_US", "MARKETING", "REJECTED"),
        ],
        "both pages: {list}"
    );
    assert_eq!(list["data"][1]["components"][0]["type"], "BODY");

    let (status, problem) = api
        .post(
            "/v1/messages",
            json!({"to": PHONE, "channel": "wa", "content": {"template": "black_friday", "language": "fr"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(detail(&problem).contains("PENDING"), "{problem}");
    let (status, accepted) = api
        .post(
            "/v1/messages",
            json!({"to": PHONE, "channel": "wa",
                "content": {"template": "order_shipped", "language": "fr", "variables": {"1": "Camille", "2": "A-42"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    api.dispatch().await;
    assert_eq!(
        api.graph_sent().len(),
        1,
        "only the approved template went out"
    );

    // A stored template mapped to a template Meta has not approved is refused too.
    let (status, _) = api
        .post(
            "/v1/templates",
            json!({"name": "promo", "variants": [{"language": "fr", "content": {"text": "-50 %"},
                "whatsapp": {"name": "black_friday", "language": "fr"}}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, problem) = api
        .post(
            "/v1/messages",
            json!({"to": PHONE, "channel": "wa", "content": {"template": "promo"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        detail(&problem).contains("black_friday") && detail(&problem).contains("PENDING"),
        "{problem}"
    );
    assert_eq!(api.graph_sent().len(), 1);
}

#[tokio::test]
async fn a_synchronisation_that_cannot_be_done_says_why_and_changes_nothing() {
    let api = api().await;
    let base_url = api.graph.base_url.lock().unwrap().clone();
    let channel = |name: &str, token: &str, waba: Option<&str>| {
        let mut config = json!({"phone_number_id": PHONE_NUMBER_ID, "access_token": token,
            "app_secret": APP_SECRET, "verify_token": "v", "base_url": base_url, "api_version": "v23.0"});
        if let Some(waba) = waba {
            config["waba_id"] = json!(waba);
        }
        json!({"kind": "whatsapp", "name": name, "config": config})
    };
    // No WhatsApp Business Account id: nothing to read.
    let (status, created) = api
        .post("/v1/channels", channel("no-waba", ACCESS_TOKEN, None))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, problem) = api
        .post(&format!("/v1/channels/{id}/templates/sync"), json!({}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        problem["errors"][0]["pointer"], "/config/waba_id",
        "{problem}"
    );
    // Meta refuses the token: the fault is upstream, and nothing is stored.
    let (status, created) = api
        .post(
            "/v1/channels",
            channel("bad-token", "EAAG-expired", Some(WABA_ID)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, problem) = api
        .post(&format!("/v1/channels/{id}/templates/sync"), json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{problem}");
    assert!(detail(&problem).contains("Graph API"), "{problem}");
    let (status, list) = api.get(&format!("/v1/channels/{id}/templates")).await;
    assert_eq!((status, list), (StatusCode::OK, json!({"data": []})));
    // Messenger keeps no templates to read.
    let (status, created) = api
        .post(
            "/v1/channels",
            json!({"kind": "messenger", "name": "page", "config": {"page_id": "1234567890",
                "access_token": "EAAB-page-token", "app_secret": APP_SECRET, "verify_token": "v",
                "base_url": base_url}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, problem) = api
        .post(&format!("/v1/channels/{id}/templates/sync"), json!({}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        detail(&problem).contains("no provider templates"),
        "{problem}"
    );
    // Unknown channels are not found.
    let (status, problem) = api
        .post("/v1/channels/nope/templates/sync", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    let (status, _) = api.get("/v1/channels/nope/templates").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn both_names_of_the_business_account_are_one_key() {
    let config = |extra: Value| {
        let mut c = json!({"phone_number_id": "1", "access_token": "t", "app_secret": "s", "verify_token": "v"});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        relais_channels::whatsapp::WhatsAppConfig::parse(&c)
    };
    let waba = config(json!({"waba_id": "42"})).unwrap();
    assert_eq!(waba.business_account_id(), Some("42"));
    let older = config(json!({"business_account_id": "42"})).unwrap();
    assert_eq!(older.business_account_id(), Some("42"));
    let both = config(json!({"waba_id": "42", "business_account_id": "43"})).unwrap_err();
    assert_eq!(both.pointer, "/waba_id");
}

#[tokio::test]
async fn free_form_whatsapp_is_refused_outside_the_window_and_a_chain_skips_to_the_next_step() {
    let api = api().await;
    let text = |channel: Value| json!({"to": PHONE, "channel": channel, "content": {"text": "Votre colis arrive"}});
    // The customer never wrote on WhatsApp.
    let (status, problem) = api.post("/v1/messages", text(json!("wa"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let said = detail(&problem);
    assert!(
        said.contains("window") && said.contains("template"),
        "{problem}"
    );
    assert_eq!(problem["errors"][0]["pointer"], "/channel", "{problem}");

    // They write: for 24 hours, free-form messages go.
    api.customer_writes("wamid.IN1").await;
    let (status, accepted) = api.post("/v1/messages", text(json!("wa"))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    api.dispatch().await;
    assert_eq!(api.graph_sent().len(), 1);
    assert_eq!(api.graph_sent()[0]["text"]["body"], "Votre colis arrive");

    api.clock.advance(SignedDuration::from_hours(24));
    let (status, problem) = api.post("/v1/messages", text(json!("wa"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(detail(&problem).contains("closed"), "{problem}");

    // A chain skips the closed WhatsApp step, says so, and sends on the next one.
    let (status, accepted) = api
        .post(
            "/v1/messages",
            json!({"to": PHONE, "channels": ["wa", "sim"], "content": {"text": "Votre colis arrive"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    api.dispatch().await;
    assert_eq!(api.graph_sent().len(), 1, "nothing more to WhatsApp");
    assert_eq!(api.phone().await, ["Votre colis arrive"]);
    let message = api.message(&accepted["id"]).await;
    assert_eq!(message["channel"], "sim", "{message}");
    let skipped = message["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reason"] == "window_closed")
        .cloned()
        .unwrap_or_default();
    assert_eq!(skipped["channel"], "whatsapp", "{message}");
    assert!(
        skipped["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("window"),
        "{message}"
    );

    // A template still goes to WhatsApp outside the window.
    let (status, accepted) = api
        .post(
            "/v1/messages",
            json!({"to": PHONE, "channel": "wa",
                "content": {"template": "order_shipped", "language": "fr", "variables": {"1": "Camille"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    api.dispatch().await;
    assert_eq!(api.graph_sent().len(), 2);
    assert_eq!(api.graph_sent()[1]["type"], "template");
}
