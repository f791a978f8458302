//! The help desk as its agents and customers meet it: agents log in with roles, a bot hands
//! a customer to a team whose rule assigns them within each agent's capacity, the SLA
//! clock (an injected clock) reports a breach once, the queue puts the urgent, the angry
//! and the VIP first, agents see only their teams (over REST and on the live stream), take
//! over from the bot and give back, leave private notes, answer with canned replies, and a
//! resolved conversation asks for a rating that the customer's digit answers.

mod support;

use axum::http::{StatusCode, header};
use futures::StreamExt;
use jiff::SignedDuration;
use relais_core::clock::{Clock, ManualClock};
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_engine::webhooks::Destinations;
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const PASSWORD: &str = "correct horse battery";

struct Desk {
    addr: std::net::SocketAddr,
    state: AppState,
    key: String,
    tenant: String,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn desk() -> Desk {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let clock = Arc::new(ManualClock::new("2026-12-03T10:00:00Z".parse().unwrap()));
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let settings = HttpSettings {
        default_country: Some(phonenumber::country::Id::FR),
        webhook_destinations: Destinations::Any,
        ..Default::default()
    };
    let state = AppState::new(store.clone(), clock.clone(), settings, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(relais_server::serve(
        listener,
        state.clone(),
        std::future::pending::<()>(),
    ));
    let tenant = store.list_tenants().await.unwrap()[0].id.clone();
    Desk {
        addr,
        state,
        key: key.secret,
        tenant,
        store,
        clock,
        _dir: dir,
    }
}

impl Desk {
    async fn call(
        &self,
        token: &str,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        support::call(&router(self.state.clone()), token, method, uri, body).await
    }

    /// As the tenant's API key; the call must succeed.
    async fn admin(&self, method: &str, uri: &str, body: Value) -> Value {
        let body = (method != "GET").then_some(body);
        let (status, answer) = self.call(&self.key, method, uri, body).await;
        assert!(status.is_success(), "{method} {uri}: {status} {answer}");
        answer
    }

    async fn team(&self, name: &str, spec: Value) {
        self.admin("PUT", &format!("/v1/teams/{name}"), spec).await;
    }

    /// Creates an agent; their id.
    async fn agent(&self, email: &str, teams: &[&str], capacity: u32) -> String {
        let agent = self
            .admin(
                "POST",
                "/v1/agents",
                json!({"email": email, "name": email.split('@').next().unwrap(), "password": PASSWORD,
                       "teams": teams, "capacity": capacity}),
            )
            .await;
        agent["id"].as_str().unwrap().to_owned()
    }

    /// Logs in; the session token.
    async fn login(&self, email: &str) -> String {
        let (status, session) = self
            .call(
                "",
                "POST",
                "/v1/auth/login",
                Some(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{session}");
        session["token"].as_str().unwrap().to_owned()
    }

    /// A simulated phone writes `text`; the conversation it is in.
    async fn customer_writes(&self, number: &str, text: &str) -> String {
        let reply = self
            .admin(
                "POST",
                &format!("/v1/sim/phones/{number}/reply"),
                json!({ "text": text }),
            )
            .await;
        reply["inbound"]["conversation_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no conversation: {reply}"))
            .to_owned()
    }

    async fn conversation(&self, id: &str) -> Value {
        self.admin("GET", &format!("/v1/conversations/{id}"), Value::Null)
            .await
    }

    /// The texts sent to the customer in the conversation, in order.
    async fn sent(&self, id: &str) -> Vec<String> {
        self.conversation(id).await["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["direction"] == "out")
            .map(|m| m["content"]["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// A webhook on a closed port (nothing is delivered here; deliveries are only queued).
    async fn webhook(&self) -> String {
        let hook = self
            .admin(
                "POST",
                "/v1/webhooks",
                json!({"url": "http://127.0.0.1:9/hook"}),
            )
            .await;
        hook["id"].as_str().unwrap().to_owned()
    }

    /// The types of the webhook events queued, oldest first.
    async fn webhook_events(&self, webhook: &str) -> Vec<(String, Value)> {
        let mut deliveries = self
            .store
            .webhook_deliveries(&self.tenant, webhook)
            .await
            .unwrap();
        deliveries.reverse();
        deliveries
            .into_iter()
            .map(|d| (d.event_type, serde_json::from_str(&d.payload).unwrap()))
            .collect()
    }

    async fn stream(&self, token: &str) -> Client {
        let mut request = format!("ws://{}/v1/events/stream", self.addr)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        tokio_tungstenite::connect_async(request).await.unwrap().0
    }
}

/// The next stored event of the stream (pings and typing skipped).
async fn next_event(client: &mut Client) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(15), client.next())
            .await
            .expect("an event in time")
            .expect("the stream is open")
            .expect("a readable frame");
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(&text).unwrap();
            if frame["type"] != "typing" {
                return frame;
            }
        }
    }
}

/// A flow that greets every new conversation and hands it to `team`.
fn handoff_flow(team: &str) -> Value {
    json!({
        "entry": {"new_conversation": true},
        "start": "hello",
        "nodes": {
            "hello": {"type": "handoff", "team": team, "text": "Un conseiller arrive."}
        }
    })
}

#[tokio::test]
async fn agents_log_in_and_their_role_decides_what_they_may_do() {
    let desk = desk().await;
    desk.team("billing", json!({})).await;
    desk.agent("ana@example.com", &["billing"], 3).await;

    // Mistakes are refused at their field, and nothing is created.
    for (body, pointer) in [
        (
            json!({"email": "bob@example.com", "name": "Bob", "password": "short"}),
            "/password",
        ),
        (
            json!({"email": "not-an-email", "name": "Bob", "password": PASSWORD}),
            "/email",
        ),
        (
            json!({"email": "bob@example.com", "name": "Bob", "password": PASSWORD, "teams": ["nope"]}),
            "/teams/0",
        ),
    ] {
        let (status, problem) = desk.call(&desk.key, "POST", "/v1/agents", Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
    }
    let (status, problem) = desk
        .call(
            &desk.key,
            "POST",
            "/v1/agents",
            Some(json!({"email": "ANA@Example.com", "name": "Ana 2", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let (_, agents) = desk.call(&desk.key, "GET", "/v1/agents", None).await;
    assert_eq!(agents.as_array().unwrap().len(), 1, "{agents}");

    // A wrong password and an unknown e-mail answer alike.
    for (email, password) in [
        ("ana@example.com", "wrong password!"),
        ("nobody@example.com", PASSWORD),
    ] {
        let (status, problem) = desk
            .call(
                "",
                "POST",
                "/v1/auth/login",
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
        assert_eq!(problem["detail"], "the e-mail or the password is wrong");
    }

    let ana = desk.login("ANA@example.com").await;
    assert!(ana.starts_with("rls_sess_"));
    let (status, me) = desk.call(&ana, "GET", "/v1/agents/me", None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], "ana@example.com");
    assert_eq!(me["teams"], json!(["billing"]));
    assert!(me.get("password_hash").is_none() && !me.to_string().contains("argon2"));

    // An agent reads but does not administer.
    let (status, _) = desk.call(&ana, "GET", "/v1/teams", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, problem) = desk
        .call(&ana, "PUT", "/v1/teams/hackers", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let (status, _) = desk
        .call(&ana, "POST", "/v1/agents",
            Some(json!({"email": "eve@example.com", "name": "Eve", "password": PASSWORD, "role": "admin"})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = desk
        .call(
            &ana,
            "PATCH",
            "/v1/agents/me",
            Some(json!({"capacity": 100})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, me) = desk
        .call(
            &ana,
            "PATCH",
            "/v1/agents/me",
            Some(json!({"available": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["available"], false);

    // Logging out ends the session.
    let (status, _) = desk.call(&ana, "POST", "/v1/auth/logout", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, problem) = desk.call(&ana, "GET", "/v1/agents/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");

    // Sessions end after 12 hours.
    let ana = desk.login("ana@example.com").await;
    desk.clock.advance(SignedDuration::from_hours(12));
    let (status, _) = desk.call(&ana, "GET", "/v1/agents/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_handoff_assigns_in_turn_within_capacity_and_reports_an_sla_breach_once() {
    let desk = desk().await;
    let webhook = desk.webhook().await;
    desk.team(
        "billing",
        json!({"assignment": "round_robin", "first_response_minutes": 10, "next_response_minutes": 5}),
    )
    .await;
    let ana = desk.agent("ana@example.com", &["billing"], 1).await;
    let bob = desk.agent("bob@example.com", &["billing"], 1).await;
    desk.admin("PUT", "/v1/flows/triage", handoff_flow("billing"))
        .await;
    let mut admin_stream = desk.stream(&desk.key).await;

    let first = desk
        .customer_writes("0611111111", "Bonjour, ma facture est fausse")
        .await;
    let second = desk
        .customer_writes("0622222222", "Bonjour, un souci de facture")
        .await;
    let third = desk
        .customer_writes("0633333333", "Bonjour, facture en double")
        .await;

    // In turn, one each (capacity 1): the third waits in the queue.
    let c1 = desk.conversation(&first).await;
    let c2 = desk.conversation(&second).await;
    let c3 = desk.conversation(&third).await;
    assert_eq!(
        (c1["state"].as_str(), c1["assignee_id"].as_str()),
        (Some("open"), Some(ana.as_str())),
        "{c1}"
    );
    assert_eq!(
        (c2["state"].as_str(), c2["assignee_id"].as_str()),
        (Some("open"), Some(bob.as_str())),
        "{c2}"
    );
    assert_eq!(c3["state"], "pending", "{c3}");
    assert_eq!(c3["assignee_id"], Value::Null);
    assert_eq!(c3["team"], "billing");
    assert_eq!(c3["sla"]["target"], "first_response");
    assert_eq!(c3["sla"]["due_at"], "2026-12-03T10:10:00Z");
    assert_eq!(desk.sent(&first).await, ["Un conseiller arrive."]);

    // Ana and Bob answer theirs within the SLA; nobody answers the third.
    let ana_token = desk.login("ana@example.com").await;
    let bob_token = desk.login("bob@example.com").await;
    for (token, id) in [(&ana_token, &first), (&bob_token, &second)] {
        let (status, sent) = desk
            .call(
                token,
                "POST",
                &format!("/v1/conversations/{id}/messages"),
                Some(json!({"content": {"text": "Je regarde votre facture."}})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    }
    desk.clock.advance(SignedDuration::from_mins(11));
    assert_eq!(desk.state.desk.check_sla().await.unwrap(), 1);
    assert_eq!(
        desk.state.desk.check_sla().await.unwrap(),
        0,
        "a breach is reported once"
    );
    let c3 = desk.conversation(&third).await;
    assert_eq!(c3["sla"]["breached_at"], "2026-12-03T10:11:00Z", "{c3}");
    let c1 = desk.conversation(&first).await;
    assert!(
        c1.get("sla").is_none(),
        "an answered conversation has no running clock: {c1}"
    );
    assert_eq!(c1["first_response_at"], "2026-12-03T10:00:00Z");

    // The stream told it all: three received, two assignments, then the breach.
    let mut kinds = Vec::new();
    let breach = loop {
        let event = next_event(&mut admin_stream).await;
        kinds.push(event["type"].as_str().unwrap().to_owned());
        if event["type"] == "sla.breached" {
            break event;
        }
    };
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "conversation.assigned")
            .count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(breach["data"]["conversation_id"], third.as_str());
    assert_eq!(breach["data"]["target"], "first_response");
    assert_eq!(breach["data"]["due_at"], "2026-12-03T10:10:00Z");

    // The customer writes again to Ana: the next-response clock starts (5 minutes).
    desk.customer_writes("0611111111", "Alors ?").await;
    let c1 = desk.conversation(&first).await;
    assert_eq!(c1["sla"]["target"], "next_response", "{c1}");
    assert_eq!(c1["sla"]["due_at"], "2026-12-03T10:16:00Z");

    // Ana resolves hers: she has room, and the waiting one is hers.
    let (status, resolved) = desk
        .call(
            &ana_token,
            "PATCH",
            &format!("/v1/conversations/{first}"),
            Some(json!({"state": "resolved"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    let c3 = desk.conversation(&third).await;
    assert_eq!(
        (c3["state"].as_str(), c3["assignee_id"].as_str()),
        (Some("open"), Some(ana.as_str())),
        "{c3}"
    );

    // The CRM heard of it through the signed webhooks.
    let events = desk.webhook_events(&webhook).await;
    let count = |kind: &str| events.iter().filter(|(k, _)| k == kind).count();
    assert_eq!(count("conversation.opened"), 3, "{events:?}");
    assert_eq!(count("conversation.assigned"), 3);
    assert_eq!(count("conversation.sla_breached"), 1);
    assert_eq!(count("conversation.resolved"), 1);
    let (_, resolved) = events
        .iter()
        .find(|(k, _)| k == "conversation.resolved")
        .unwrap();
    assert_eq!(resolved["data"]["by"]["agent"], ana.as_str());
}

#[tokio::test]
async fn the_queue_puts_urgent_then_angry_then_vip_customers_first_and_least_busy_assigns() {
    let desk = desk().await;
    desk.team("support", json!({"assignment": "manual", "default": true}))
        .await;
    // A VIP contact, known before they write.
    desk.admin(
        "POST",
        "/v1/contacts",
        json!({"identities": [{"channel": "sim", "address": "+33644444444"}], "attributes": {"vip": true}}),
    )
    .await;
    let plain = desk
        .customer_writes("0611111111", "Bonjour, je voudrais changer mon adresse")
        .await;
    let vip = desk
        .customer_writes("0644444444", "Bonjour, je voudrais changer mon adresse")
        .await;
    let angry = desk
        .customer_writes(
            "0622222222",
            "C'est scandaleux, votre service est nul, je suis furieux",
        )
        .await;
    let urgent = desk
        .customer_writes(
            "0633333333",
            "URGENT : on m'a volé ma carte, bloquez-la immédiatement !",
        )
        .await;

    let (status, queue) = desk
        .call(
            &desk.key,
            "GET",
            "/v1/conversations?team=support&state=pending&order=priority",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    let order: Vec<&str> = queue["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            urgent.as_str(),
            angry.as_str(),
            vip.as_str(),
            plain.as_str()
        ],
        "{queue:#}"
    );
    assert_eq!(queue["data"][0]["priority_reasons"][0], "urgent");
    assert_eq!(queue["data"][2]["priority_reasons"], json!(["vip"]));

    // Paging through the queue keeps its order.
    let (_, page1) = desk
        .call(
            &desk.key,
            "GET",
            "/v1/conversations?team=support&order=priority&limit=3",
            None,
        )
        .await;
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (status, page2) = desk
        .call(
            &desk.key,
            "GET",
            &format!("/v1/conversations?team=support&order=priority&limit=3&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page2}");
    assert_eq!(page2["data"][0]["id"], plain.as_str());
    let (status, problem) = desk
        .call(&desk.key, "GET", "/v1/conversations?order=loudest", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["parameter"], "order");

    // Least busy: the rule now assigns, most urgent first, to whoever has fewer.
    let ana = desk.agent("ana@example.com", &["support"], 10).await;
    let bob = desk.agent("bob@example.com", &[], 10).await;
    // Manual: nobody was assigned when they joined.
    assert_eq!(desk.conversation(&urgent).await["assignee_id"], Value::Null);
    desk.admin(
        "PATCH",
        &format!("/v1/agents/{bob}"),
        json!({"teams": ["support"]}),
    )
    .await;
    desk.team(
        "support",
        json!({"assignment": "least_busy", "default": true}),
    )
    .await;
    let mut load = std::collections::HashMap::<String, usize>::new();
    for id in [&urgent, &angry, &vip, &plain] {
        let c = desk.conversation(id).await;
        assert_eq!(c["state"], "open", "{c}");
        *load
            .entry(c["assignee_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(load.get(&ana), Some(&2), "{load:?}");
    assert_eq!(load.get(&bob), Some(&2), "{load:?}");
}

#[tokio::test]
async fn an_agent_sees_only_the_conversations_of_their_teams() {
    let desk = desk().await;
    desk.team("billing", json!({"assignment": "manual"})).await;
    desk.team("sales", json!({"assignment": "manual"})).await;
    desk.agent("ana@example.com", &["billing"], 5).await;
    desk.agent("sam@example.com", &["sales"], 5).await;
    let ana = desk.login("ana@example.com").await;
    let sam = desk.login("sam@example.com").await;
    let mut ana_stream = desk.stream(&ana).await;
    let mut sam_stream = desk.stream(&sam).await;

    desk.admin("PUT", "/v1/flows/to-billing", handoff_flow("billing"))
        .await;
    let billing = desk.customer_writes("0611111111", "Ma facture").await;
    desk.admin("DELETE", "/v1/flows/to-billing", Value::Null)
        .await;
    desk.admin("PUT", "/v1/flows/to-sales", handoff_flow("sales"))
        .await;
    let sales = desk.customer_writes("0622222222", "Un devis").await;

    // REST: the other team's conversation is refused, and left out of lists.
    let (status, problem) = desk
        .call(&sam, "GET", &format!("/v1/conversations/{billing}"), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("team `billing`"),
        "{problem}"
    );
    let (status, _) = desk
        .call(
            &sam,
            "POST",
            &format!("/v1/conversations/{billing}/messages"),
            Some(json!({"content": {"text": "hi"}})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = desk
        .call(
            &sam,
            "POST",
            &format!("/v1/conversations/{billing}/assign"),
            Some(json!({"agent": "me"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, list) = desk.call(&sam, "GET", "/v1/conversations", None).await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [sales.as_str()], "{list}");
    let (_, list) = desk.call(&desk.key, "GET", "/v1/conversations", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2, "a key sees all");

    // The stream: each agent hears of their team's customer only.
    let event = next_event(&mut ana_stream).await;
    assert_eq!(event["conversation_id"], billing.as_str(), "{event}");
    let event = next_event(&mut sam_stream).await;
    assert_eq!(
        event["conversation_id"],
        sales.as_str(),
        "sam never sees billing's events: {event}"
    );
}

#[tokio::test]
async fn agents_take_over_from_the_bot_note_answer_with_canned_replies_give_back_and_get_rated() {
    let desk = desk().await;
    let webhook = desk.webhook().await;
    desk.team("care", json!({"assignment": "manual", "csat": true}))
        .await;
    let ana_id = desk.agent("ana@example.com", &["care"], 5).await;
    let ana = desk.login("ana@example.com").await;
    desk.admin(
        "PUT",
        "/v1/flows/echo",
        json!({
            "entry": {"new_conversation": true},
            "start": "ask",
            "nodes": {
                "ask": {"type": "ask", "text": "Votre prénom ?", "attribute": "first_name", "next": "thanks"},
                "thanks": {"type": "send", "text": "Merci {{ first_name }}.", "next": "ask"}
            }
        }),
    )
    .await;
    let id = desk.customer_writes("0611111111", "Bonjour").await;
    desk.customer_writes("0611111111", "Léa").await;
    assert_eq!(desk.conversation(&id).await["state"], "bot");

    // Ana takes over: the bot stays quiet while she has it.
    let (status, taken) = desk
        .call(
            &ana,
            "POST",
            &format!("/v1/conversations/{id}/assign"),
            Some(json!({"agent": "me", "team": "care"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{taken}");
    assert_eq!(
        (taken["state"].as_str(), taken["assignee_id"].as_str()),
        (Some("open"), Some(ana_id.as_str()))
    );
    let bot_lines = desk.sent(&id).await.len();
    desk.customer_writes("0611111111", "Je veux parler à quelqu'un")
        .await;
    assert_eq!(
        desk.sent(&id).await.len(),
        bot_lines,
        "the bot answered a conversation an agent has"
    );

    // A private note: on the conversation, never sent.
    let (status, note) = desk
        .call(
            &ana,
            "POST",
            &format!("/v1/conversations/{id}/notes"),
            Some(json!({"text": "Cliente fidèle, geste commercial ok"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    let thread = desk.conversation(&id).await;
    assert_eq!(
        thread["notes"][0]["text"],
        "Cliente fidèle, geste commercial ok"
    );
    assert_eq!(thread["notes"][0]["agent_id"], ana_id.as_str());
    assert!(!desk.sent(&id).await.iter().any(|t| t.contains("geste")));
    let (status, _) = desk
        .call(
            &ana,
            "POST",
            &format!("/v1/conversations/{id}/notes"),
            Some(json!({"text": "  "})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // A canned reply, with the contact, the agent and the request's variables.
    desk.admin(
        "PUT",
        "/v1/canned-replies/refund",
        json!({"text": "Bonjour {{ contact.first_name }}, c'est {{ agent.name }} : votre remboursement de {{ amount }} € part aujourd'hui."}),
    )
    .await;
    let (status, problem) = desk
        .call(
            &desk.key,
            "PUT",
            "/v1/canned-replies/broken",
            Some(json!({"text": "{{ oops"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, sent) = desk
        .call(
            &ana,
            "POST",
            &format!("/v1/conversations/{id}/messages"),
            Some(json!({"canned": "refund", "variables": {"amount": 42}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    assert_eq!(
        desk.sent(&id).await.last().unwrap(),
        "Bonjour Léa, c'est ana : votre remboursement de 42 € part aujourd'hui."
    );
    let (status, problem) = desk
        .call(
            &ana,
            "POST",
            &format!("/v1/conversations/{id}/messages"),
            Some(json!({"canned": "nope"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/canned");

    // Given back: the bot answers again, where it stopped.
    let (status, back) = desk
        .call(
            &ana,
            "PATCH",
            &format!("/v1/conversations/{id}"),
            Some(json!({"state": "bot"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!(back["assignee_id"], Value::Null);
    let before = desk.sent(&id).await.len();
    desk.customer_writes("0611111111", "Léa").await;
    assert!(
        desk.sent(&id).await.len() > before,
        "the bot answers after a give-back"
    );

    // Resolved: the team asks for a rating; the customer's digit is the rating, and the
    // conversation stays resolved.
    desk.admin(
        "POST",
        &format!("/v1/conversations/{id}/assign"),
        json!({"agent": ana_id}),
    )
    .await;
    let (status, _) = desk
        .call(
            &ana,
            "PATCH",
            &format!("/v1/conversations/{id}"),
            Some(json!({"state": "resolved"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let question = desk.sent(&id).await.last().unwrap().clone();
    assert!(question.contains("de 1 (mauvaise) à 5"), "{question}");
    desk.customer_writes("0611111111", "4").await;
    let rated = desk.conversation(&id).await;
    assert_eq!(rated["state"], "resolved", "{rated}");
    assert_eq!(rated["csat"]["score"], 4, "{rated}");
    assert_eq!(
        desk.sent(&id).await.last().unwrap(),
        "Merci pour votre note !"
    );
    assert_eq!(
        desk.webhook_events(&webhook)
            .await
            .iter()
            .filter(|(k, _)| k == "conversation.resolved")
            .count(),
        1
    );

    // A reply to a resolved conversation is refused, with what to do instead.
    let (status, problem) = desk
        .call(
            &ana,
            "POST",
            &format!("/v1/conversations/{id}/messages"),
            Some(json!({"content": {"text": "Autre chose ?"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("reopen it first")
    );
}

/// `POST /v1/auth/login` over a TCP connection of its own (the peer's address is what
/// failures are counted on): the status and the raw answer, headers included.
async fn login_over_tcp(addr: std::net::SocketAddr, email: &str, password: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = json!({"email": email, "password": password}).to_string();
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /v1/auth/login HTTP/1.1\r\nHost: relais\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[tokio::test]
async fn repeated_failed_logins_are_slowed_down_then_refused_unchecked() {
    let d = desk().await;
    d.agent("ana@example.com", &[], 5).await;
    // Five failures in a row: each waits longer than the one before it to be checked.
    for _ in 0..5 {
        let (status, answer) = login_over_tcp(d.addr, "ana@example.com", "not the password").await;
        assert_eq!(status, 401, "{answer}");
    }
    // Now guesses queue behind each other (1.6 s, then 3.2 s more…): those that would wait
    // more than 30 s are refused at once, without their password being checked.
    let mut guesses = tokio::task::JoinSet::new();
    for _ in 0..25 {
        guesses.spawn(login_over_tcp(d.addr, "ANA@example.com", "another guess"));
    }
    let refused = loop {
        let (status, answer) = guesses
            .join_next()
            .await
            .expect("a guess refused before all were checked")
            .unwrap();
        if status == 429 {
            break answer;
        }
        assert_eq!(status, 401, "{answer}");
    };
    guesses.abort_all();
    let head = refused.to_ascii_lowercase();
    assert!(head.contains("retry-after: 30"), "{refused}");
    assert!(head.contains("application/problem+json"), "{refused}");
    assert!(refused.contains("too many failed logins"), "{refused}");
}
