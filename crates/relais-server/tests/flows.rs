//! Bot flows as a tenant and its customers meet them: a flow uploaded (JSON or YAML, its
//! mistakes reported at their pointers), whole conversations through the simulated phones
//! (questions, answers stored on the contact, a wrong answer asked again, branches on
//! intent and sentiment, a CRM that answers or times out, handoffs), a redelivered message
//! answered once, and simulations that send nothing (and show the address an answer
//! would link to the contact).

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use relais_core::clock::{Clock, ManualClock};
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_engine::webhooks::Destinations;
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;

struct Api {
    app: axum::Router,
    key: String,
    _store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let clock = Arc::new(ManualClock::new("2026-12-03T10:00:00Z".parse().unwrap()));
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let settings = HttpSettings {
        default_country: Some(phonenumber::country::Id::FR),
        // The fake CRM listens on the loopback.
        webhook_destinations: Destinations::Any,
        ..Default::default()
    };
    let state = AppState::new(store.clone(), clock, settings, None);
    Api {
        app: router(state),
        key: key.secret,
        _store: store,
        _dir: dir,
    }
}

impl Api {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<(&str, String)>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key));
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

    async fn json(&self, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(method, uri, Some(("application/json", body.to_string())))
            .await
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call("GET", uri, None).await
    }

    async fn put_flow(&self, name: &str, flow: Value) {
        let (status, stored) = self.json("PUT", &format!("/v1/flows/{name}"), flow).await;
        assert_eq!(status, StatusCode::OK, "{stored}");
    }

    /// A simulated phone writes `text`; the inbound message as stored.
    async fn phone_writes(&self, number: &str, text: &str) -> Value {
        let (status, reply) = self
            .json(
                "POST",
                &format!("/v1/sim/phones/{number}/reply"),
                json!({ "text": text }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{reply}");
        reply["inbound"].clone()
    }

    async fn conversation(&self, id: &str) -> Value {
        let (status, thread) = self.get(&format!("/v1/conversations/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{thread}");
        thread
    }

    /// What the bot said in the conversation, in order.
    async fn bot_said(&self, conversation: &str) -> Vec<String> {
        self.conversation(conversation).await["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["direction"] == "out")
            .map(|m| m["content"]["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// A CRM on the loopback: `/bags/lookup` answers a bag's status, `/slow` answers after
/// three seconds, `/broken` answers 500.
async fn fake_crm() -> String {
    use axum::routing::post;
    let app = axum::Router::new()
        .route(
            "/bags/lookup",
            post(|axum::Json(body): axum::Json<Value>| async move {
                axum::Json(json!({
                    "tag": format!("AF{}", body["booking_ref"].as_str().unwrap_or("?")),
                    "status": "en route vers votre adresse",
                    "eta": "demain 14h",
                }))
            }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                axum::Json(json!({"status": "too late"}))
            }),
        )
        .route(
            "/broken",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

/// The airline flow of `docs/flows.md`, pointed at `crm`.
fn bag_flow(crm: &str, lookup_path: &str) -> Value {
    let text = include_str!("../../../docs/examples/flows/where-is-my-bag.json");
    let mut flow: Value = serde_json::from_str(text).unwrap();
    flow["nodes"]["lookup"]["url"] = json!(format!("{crm}{lookup_path}"));
    flow
}

const TRAVEL_CSV: &str = "text,intent
my suitcase is lost,lost_bag
my luggage did not arrive,lost_bag
where is my bag,lost_bag
ma valise a été perdue,lost_bag
mes bagages ne sont pas arrivés,lost_bag
où est ma valise,lost_bag
I want a refund for my trip,refund
please give me my money back,refund
can I get reimbursed for the cancelled flight,refund
je veux être remboursé,refund
remboursez-moi svp,refund
rembourser mon billet,refund
what time does the flight leave,schedule
when is my departure,schedule
à quelle heure part le vol,schedule
quel est l'horaire de mon vol,schedule
";

async fn trained() -> Api {
    let api = api().await;
    let (status, model) = api
        .call(
            "POST",
            "/v1/nlu/train",
            Some(("text/csv", TRAVEL_CSV.to_owned())),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{model}");
    api
}

#[tokio::test]
async fn a_flow_stores_two_answers_and_asks_again_after_a_wrong_one() {
    let api = api().await;
    api.put_flow(
        "rdv",
        json!({
            "entry": {"new_conversation": true},
            "start": "name",
            "nodes": {
                "name": {"type": "ask", "text": "Bonjour ! Votre prénom ?", "attribute": "first_name", "next": "day"},
                "day": {"type": "ask", "text": "Quel jour vous convient, {{ first_name }} ?", "attribute": "visit_day",
                        "validate": {"type": "date"}, "attempts": 3, "next": "done"},
                "done": {"type": "end", "text": "C'est noté : {{ first_name }}, le {{ visit_day }}."}
            }
        }),
    )
    .await;
    let first = api.phone_writes("0612345678", "Bonjour").await;
    let conversation = first["conversation_id"].as_str().unwrap().to_owned();
    let contact = first["contact_id"].as_str().unwrap().to_owned();
    assert_eq!(api.conversation(&conversation).await["state"], "bot");
    assert_eq!(
        api.bot_said(&conversation).await,
        ["Bonjour ! Votre prénom ?"]
    );

    api.phone_writes("0612345678", "Ana").await;
    api.phone_writes("0612345678", "bientôt").await;
    let said = api.bot_said(&conversation).await;
    assert_eq!(said.len(), 3, "{said:?}");
    assert_eq!(said[1], "Quel jour vous convient, Ana ?");
    // The wrong answer is asked again, saying what is expected.
    assert!(said[2].contains("date"), "{said:?}");

    api.phone_writes("0612345678", "24/12/2026").await;
    let said = api.bot_said(&conversation).await;
    assert_eq!(said.last().unwrap(), "C'est noté : Ana, le 2026-12-24.");
    let thread = api.conversation(&conversation).await;
    assert_eq!(thread["state"], "resolved", "{thread}");

    // The answers are the contact's, with where and when they were given.
    let (_, ana) = api.get(&format!("/v1/contacts/{contact}")).await;
    assert_eq!(ana["attributes"]["first_name"], "Ana");
    assert_eq!(ana["attributes"]["visit_day"], "2026-12-24");
    let answers = ana["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 2, "{ana}");
    assert_eq!(answers[0]["attribute"], "first_name");
    assert_eq!(answers[0]["flow"], "rdv");
    assert_eq!(answers[0]["node"], "name");
    assert_eq!(answers[0]["channel"], "sim");
    assert_eq!(answers[0]["conversation_id"], conversation.as_str());
    assert!(answers[1]["message_id"].is_string());
}

#[tokio::test]
async fn a_redelivered_message_gets_one_bot_reply() {
    let api = api().await;
    api.put_flow(
        "hello",
        json!({
            "entry": {"new_conversation": true},
            "start": "q",
            "nodes": {"q": {"type": "ask", "text": "Votre numéro de commande ?", "validate": {"type": "number"}, "next": "bye"},
                      "bye": {"type": "end", "text": "Merci"}}
        }),
    )
    .await;
    let body = json!({"text": "Bonjour", "provider_id": "mo-1"});
    let (status, first) = api
        .json("POST", "/v1/sim/phones/0612345678/reply", body.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = api
        .json("POST", "/v1/sim/phones/0612345678/reply", body)
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["duplicate"], true);
    let conversation = first["inbound"]["conversation_id"].as_str().unwrap();
    assert_eq!(
        api.bot_said(conversation).await,
        ["Votre numéro de commande ?"]
    );
    let (_, inbound) = api.get("/v1/inbound").await;
    assert_eq!(inbound["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_airline_flow_branches_on_sentiment_and_intent_and_calls_the_crm() {
    let api = trained().await;
    let crm = fake_crm().await;
    api.put_flow("bags", bag_flow(&crm, "/bags/lookup")).await;

    // An angry customer goes straight to the baggage team.
    let angry = api
        .phone_writes(
            "0611111111",
            "Ma valise a été perdue, c'est inadmissible, je suis furieux !",
        )
        .await;
    let conversation = angry["conversation_id"].as_str().unwrap();
    let thread = api.conversation(conversation).await;
    assert_eq!(thread["state"], "pending", "{thread}");
    assert_eq!(thread["team"], "baggage", "{thread}");
    assert_eq!(
        api.bot_said(conversation).await,
        ["Je vous passe un conseiller bagages, il vous répond au plus vite."]
    );

    // A calm one, recognised by intent, is asked the booking and answered from the CRM.
    let calm = api.phone_writes("0622222222", "where is my bag").await;
    let conversation = calm["conversation_id"].as_str().unwrap();
    assert_eq!(calm["annotations"]["intent"]["name"], "lost_bag", "{calm}");
    api.phone_writes("0622222222", "not sure").await;
    api.phone_writes("0622222222", "k7q2zd").await;
    let said = api.bot_said(conversation).await;
    assert_eq!(said.len(), 4, "{said:?}");
    assert!(said[0].starts_with("Je m'occupe de votre bagage"));
    assert_eq!(
        said[1],
        "Une référence a 6 lettres ou chiffres, par exemple K7Q2ZD."
    );
    assert_eq!(
        said[2],
        "Votre bagage AFk7q2zd : en route vers votre adresse, livraison prévue demain 14h."
    );
    assert_eq!(said[3], "Cela répond-il à votre question ?");
    api.phone_writes("0622222222", "Oui !").await;
    let thread = api.conversation(conversation).await;
    assert_eq!(thread["state"], "resolved");
    assert_eq!(
        api.bot_said(conversation).await.last().unwrap(),
        "Merci, et bon voyage !"
    );

    // A keyword never reaches a flow: "bagage" starts it, "STOP" does not.
    let stop = api.phone_writes("0633333333", "STOP").await;
    let thread = api
        .conversation(stop["conversation_id"].as_str().unwrap())
        .await;
    assert_ne!(thread["state"], "bot");
}

#[tokio::test]
async fn a_crm_that_times_out_takes_the_failure_branch() {
    let api = api().await;
    let crm = fake_crm().await;
    let mut flow = bag_flow(&crm, "/slow");
    flow["nodes"]["lookup"]["timeout_ms"] = json!(300);
    api.put_flow("bags", flow).await;
    let first = api.phone_writes("0644444444", "bagage").await;
    let conversation = first["conversation_id"].as_str().unwrap();
    let started = std::time::Instant::now();
    api.phone_writes("0644444444", "K7Q2ZD").await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "the timeout holds"
    );
    let thread = api.conversation(conversation).await;
    assert_eq!(thread["state"], "pending");
    assert_eq!(thread["team"], "baggage");
    assert_eq!(
        api.bot_said(conversation).await.last().unwrap(),
        "Notre système de suivi ne répond pas ; un conseiller bagages prend le relais."
    );
    // A CRM that answers 500 does the same.
    let mut flow = bag_flow(&crm, "/broken");
    flow["entry"] = json!({"keywords": ["valise"]});
    api.put_flow("broken", flow).await;
    let first = api.phone_writes("0655555555", "valise").await;
    api.phone_writes("0655555555", "ABCDEF").await;
    let thread = api
        .conversation(first["conversation_id"].as_str().unwrap())
        .await;
    assert_eq!(thread["state"], "pending");
}

#[tokio::test]
async fn a_crm_slow_to_answer_one_customer_holds_up_no_other() {
    let api = api().await;
    let crm = fake_crm().await;
    let mut flow = bag_flow(&crm, "/slow");
    flow["nodes"]["lookup"]["timeout_ms"] = json!(4000);
    api.put_flow("bags", flow).await;
    api.phone_writes("0644444444", "bagage").await;
    // The first customer's turn waits on the CRM for 4 s; another customer who writes
    // meanwhile is answered at once.
    let waiting = api.phone_writes("0644444444", "K7Q2ZD");
    let other = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        let first = api.phone_writes("0655555555", "bagage").await;
        (first, started.elapsed())
    };
    let (_, (other, took)) = tokio::join!(waiting, other);
    assert!(
        took < std::time::Duration::from_secs(2),
        "the other customer waited {took:?}"
    );
    let said = api
        .bot_said(other["conversation_id"].as_str().unwrap())
        .await;
    assert!(
        said[0].starts_with("Je m'occupe de votre bagage"),
        "{said:?}"
    );
}

#[tokio::test]
async fn a_loop_is_stopped_and_handed_to_a_human() {
    let api = api().await;
    api.put_flow(
        "loop",
        json!({
            "entry": {"new_conversation": true},
            "start": "a",
            "nodes": {
                "a": {"type": "set", "var": "n", "value": 1, "next": "b"},
                "b": {"type": "branch", "cases": [{"when": {"var": "n", "exists": true}, "next": "a"}], "default": "a"}
            }
        }),
    )
    .await;
    let first = api.phone_writes("0666666666", "Bonjour").await;
    let conversation = first["conversation_id"].as_str().unwrap();
    let thread = api.conversation(conversation).await;
    assert_eq!(thread["state"], "pending");
    let said = api.bot_said(conversation).await;
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains("conseiller") || said[0].contains("agent"),
        "{said:?}"
    );
    // Other customers are answered as before.
    api.put_flow(
        "loop",
        json!({"entry": {"new_conversation": true}, "start": "hi", "nodes": {"hi": {"type": "end", "text": "Bonjour !"}}}),
    )
    .await;
    let other = api.phone_writes("0677777777", "Salut").await;
    assert_eq!(
        api.bot_said(other["conversation_id"].as_str().unwrap())
            .await,
        ["Bonjour !"]
    );
}

#[tokio::test]
async fn a_simulation_shows_the_transcript_and_sends_nothing() {
    let api = trained().await;
    api.put_flow("bags", bag_flow("http://127.0.0.1:9", "/bags/lookup"))
        .await;
    let (status, run) = api
        .json(
            "POST",
            "/v1/flows/bags/simulate",
            json!({
                "inputs": ["where is my bag", "K7Q2ZD", "non"],
                "mocks": {"lookup": {"tag": "AF123", "status": "livré", "eta": "hier"}}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let lines = run["transcript"].as_array().unwrap();
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        [
            "customer", "bot", "customer", "answer", "http", "bot", "bot", "customer", "bot"
        ],
        "{run}"
    );
    assert_eq!(lines[4]["request"]["body"]["booking_ref"], "K7Q2ZD");
    assert_eq!(lines[4]["mocked"], true);
    assert_eq!(
        lines[5]["content"]["text"],
        "Votre bagage AF123 : livré, livraison prévue hier."
    );
    assert_eq!(run["ending"]["type"], "handed_off");
    assert_eq!(run["ending"]["team"], "baggage");
    assert_eq!(run["attributes"]["booking_ref"], "K7Q2ZD");

    // The CRM failing (a mock, or a dead address) takes the failure branch.
    let (_, failed) = api
        .json(
            "POST",
            "/v1/flows/bags/simulate",
            json!({"inputs": ["where is my bag", "K7Q2ZD"], "mocks": {"lookup": {"fail": "timeout"}}}),
        )
        .await;
    assert_eq!(
        failed["visited"].as_array().unwrap().last().unwrap(),
        "crm_down",
        "{failed}"
    );
    let (_, dead) = api
        .json(
            "POST",
            "/v1/flows/bags/simulate",
            json!({"inputs": ["where is my bag", "K7Q2ZD"]}),
        )
        .await;
    assert_eq!(
        dead["visited"].as_array().unwrap().last().unwrap(),
        "crm_down",
        "{dead}"
    );
    assert_eq!(dead["transcript"][4]["mocked"], false);

    // Nothing was sent, no conversation opened, no contact created.
    let (_, messages) = api.get("/v1/messages").await;
    assert_eq!(messages["data"].as_array().unwrap().len(), 0, "{messages}");
    let (_, conversations) = api.get("/v1/conversations").await;
    assert_eq!(conversations["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_simulation_shows_the_address_an_answer_would_link_and_links_nothing() {
    let api = api().await;
    api.put_flow(
        "signup",
        json!({
            "entry": {"new_conversation": true},
            "start": "phone",
            "nodes": {
                "phone": {"type": "ask", "text": "Votre mobile ?", "attribute": "mobile",
                          "validate": {"type": "phone"}, "next": "friend"},
                "friend": {"type": "ask", "text": "L'e-mail d'un ami ?", "attribute": "referral",
                           "validate": {"type": "email"}, "link": false, "next": "bye"},
                "bye": {"type": "end", "text": "Merci."}
            }
        }),
    )
    .await;
    let (status, run) = api
        .json(
            "POST",
            "/v1/flows/signup/simulate",
            json!({"inputs": ["Bonjour", "06 12 34 56 78", "Zoe@Example.org"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let answers: Vec<&Value> = run["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["event"] == "answer")
        .collect();
    assert_eq!(answers.len(), 2, "{run}");
    assert_eq!(
        answers[0]["identity"],
        json!({"channel": "sms", "address": "+33612345678"})
    );
    assert!(answers[1].get("identity").is_none(), "{run}");
    let (_, contacts) = api.get("/v1/contacts").await;
    assert_eq!(contacts["data"].as_array().unwrap().len(), 0);

    // `link` where no address can be claimed is a mistake, shown at its field.
    let (status, problem) = api
        .json(
            "PUT",
            "/v1/flows/bad",
            json!({"start": "city", "nodes": {"city": {"type": "ask", "text": "Ville ?",
                   "attribute": "city", "link": true}}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem.to_string().contains("/nodes/city/link"),
        "{problem}"
    );
}

#[tokio::test]
async fn flows_are_read_as_json_or_yaml_and_mistakes_point_at_their_field() {
    let api = api().await;
    let yaml = "
entry:
  keywords: [menu]
start: hello
nodes:
  hello:
    type: send
    text: Bonjour !
    quick_replies: [Horaires, Bagages]
";
    let (status, stored) = api
        .call(
            "PUT",
            "/v1/flows/menu",
            Some(("application/yaml", yaml.to_owned())),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["revision"], 1);
    assert_eq!(
        stored["definition"]["nodes"]["hello"]["quick_replies"][1],
        "Bagages"
    );
    let (_, again) = api
        .call(
            "PUT",
            "/v1/flows/menu",
            Some(("application/yaml", yaml.to_owned())),
        )
        .await;
    assert_eq!(again["revision"], 2);
    let (status, list) = api.get("/v1/flows").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"][0]["name"], "menu");

    // Every mistake, each at its pointer; the flow in force stays.
    let (status, problem) = api
        .json(
            "PUT",
            "/v1/flows/menu",
            json!({"start": "hello", "nodes": {
                "hello": {"type": "send", "text": "Bonjour", "next": "nowhere"},
                "ask": {"type": "ask", "text": "Date ?", "validate": {"type": "date"}, "attempts": 99}
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        ["/nodes/ask/attempts", "/nodes/hello/next"],
        "{problem}"
    );
    let (_, kept) = api.get("/v1/flows/menu").await;
    assert_eq!(kept["revision"], 2);

    let (status, problem) = api
        .call(
            "PUT",
            "/v1/flows/menu",
            Some(("application/yaml", "start: [".into())),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("YAML"));
    // A YAML alias bomb is refused, not expanded.
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n";
    let (status, _) = api
        .call(
            "PUT",
            "/v1/flows/bomb",
            Some(("application/yaml", bomb.into())),
        )
        .await;
    assert!(status.is_client_error(), "{status}");
    let (status, _) = api
        .call(
            "PUT",
            "/v1/flows/menu",
            Some(("text/plain", "hello".into())),
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = api
        .call(
            "PUT",
            "/v1/flows/menu",
            Some(("application/json", "{\"start\":".into())),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api.json("PUT", "/v1/flows/a%2Fb", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api
        .json("POST", "/v1/flows/nope/simulate", json!({"inputs": ["x"]}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .json("POST", "/v1/flows/menu/simulate", json!({"inputs": "x"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, _) = api.call("DELETE", "/v1/flows/menu", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.call("DELETE", "/v1/flows/menu", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
