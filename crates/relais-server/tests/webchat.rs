//! The web chat channel from the widget's side: its look and its socket are refused to
//! pages of other sites; a visitor's message is stored once however often the widget
//! sends it again; a visitor who comes back with their token gets their history, and
//! only theirs, also once an address they gave in a flow linked them to a known customer,
//! whose thread they then continue and whom an agent reaches on their phone.

mod support;

use axum::http::{StatusCode, header};
use futures::{SinkExt, StreamExt};
use relais_core::clock::{Clock, SystemClock};
use relais_engine::dispatch::{Dispatcher, DispatcherConfig};
use relais_engine::sim::SimConfig;
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

const SITE: &str = "https://shop.example";

struct App {
    addr: std::net::SocketAddr,
    router: axum::Router,
    key: String,
    channel: String,
    /// Sends what is queued for the simulated phones.
    dispatcher: Dispatcher,
    _dir: tempfile::TempDir,
}

async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let dispatcher = Dispatcher::new(
        store.clone(),
        clock.clone(),
        DispatcherConfig {
            lease_owner: "test".into(),
            ..Default::default()
        },
    )
    .with_adapter(Arc::new(relais_engine::sim::adapter(
        store.clone(),
        SimConfig::default(),
    )));
    let state = AppState::new(store, clock, HttpSettings::default(), None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(relais_server::serve(
        listener,
        state.clone(),
        std::future::pending(),
    ));
    let router = router(state);
    let (status, created) = support::call(
        &router,
        &key.secret,
        "POST",
        "/v1/channels",
        Some(json!({"kind": "webchat", "name": "site", "config": {
            "allowed_origins": [SITE], "title": "Boutique", "language": "fr"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    App {
        addr,
        router,
        key: key.secret,
        channel: created["id"].as_str().unwrap().to_owned(),
        dispatcher,
        _dir: dir,
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl App {
    fn socket_request(&self, origin: Option<&str>) -> tungstenite::handshake::client::Request {
        let url = format!("ws://{}/webchat/{}/socket", self.addr, self.channel);
        let mut request = url.into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert(header::ORIGIN, origin.parse().unwrap());
        }
        request
    }

    async fn open(&self, token: Option<&str>, after: Option<&str>) -> (Socket, String) {
        let (mut socket, _) = tokio_tungstenite::connect_async(self.socket_request(Some(SITE)))
            .await
            .unwrap();
        send(
            &mut socket,
            json!({"type": "hello", "visitor": token, "after": after}),
        )
        .await;
        let welcome = next(&mut socket).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        assert_eq!(welcome["look"]["title"], "Boutique");
        (socket, welcome["visitor"].as_str().unwrap().to_owned())
    }

    async fn inbound(&self) -> Vec<Value> {
        let (_, list) = support::call(&self.router, &self.key, "GET", "/v1/inbound", None).await;
        list["data"].as_array().cloned().unwrap_or_default()
    }

    /// An API call that must answer `expected`; its body.
    async fn api(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        expected: StatusCode,
    ) -> Value {
        let (status, answer) = support::call(&self.router, &self.key, method, uri, body).await;
        assert_eq!(status, expected, "{method} {uri}: {answer}");
        answer
    }

    /// Web visitors are asked their e-mail address, then handed to an agent.
    async fn put_signup_flow(&self) {
        self.api(
            "PUT",
            "/v1/flows/signup",
            Some(json!({
                "entry": {"new_conversation": true, "channels": ["webchat"]},
                "start": "email",
                "nodes": {
                    "email": {"type": "ask", "text": "Votre e-mail ?", "attribute": "email",
                              "validate": {"type": "email"}, "next": "thanks"},
                    "thanks": {"type": "handoff", "text": "Merci, un conseiller vous répond."}
                }
            })),
            StatusCode::OK,
        )
        .await;
    }

    /// Ana, a known customer: a simulated phone and an e-mail address.
    async fn ana(&self) -> String {
        let created = self
            .api(
                "POST",
                "/v1/contacts",
                Some(json!({
                    "attributes": {"first_name": "Ana"},
                    "identities": [{"channel": "sim", "address": "+33612345678"},
                                   {"channel": "email", "address": "ana@example.com"}]})),
                StatusCode::CREATED,
            )
            .await;
        created["id"].as_str().unwrap().to_owned()
    }

    /// The texts the simulated phone received from Relais.
    async fn phone_received(&self, number: &str) -> Vec<String> {
        self.dispatcher.run_until_idle(10).await.unwrap();
        let phone = self
            .api(
                "GET",
                &format!("/v1/sim/phones/{number}/messages"),
                None,
                StatusCode::OK,
            )
            .await;
        phone["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["direction"] == "received")
            .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// Sends the visitor's message `text` and waits for it to be stored (and so for the bot's
/// turn), skipping what is pushed meanwhile.
async fn write(socket: &mut Socket, client_id: &str, text: &str) {
    send(
        socket,
        json!({"type": "message", "client_id": client_id, "text": text}),
    )
    .await;
    loop {
        let frame = next(socket).await;
        if frame["type"] == "ack" && frame["client_id"] == client_id {
            return;
        }
        assert_ne!(frame["type"], "error", "{frame}");
    }
}

/// The frames sent until the socket is quiet for half a second: a (re)connection's history.
async fn history_of(socket: &mut Socket) -> Vec<Value> {
    let mut frames = Vec::new();
    while let Ok(Some(frame)) =
        tokio::time::timeout(std::time::Duration::from_millis(500), socket.next()).await
    {
        if let Message::Text(text) = frame.unwrap() {
            frames.push(serde_json::from_str(&text).unwrap());
        }
    }
    frames
}

/// The texts of history frames in `direction`.
fn texts(history: &[Value], direction: &str) -> Vec<String> {
    history
        .iter()
        .filter(|f| f["type"] == "message" && f["direction"] == direction)
        .map(|f| f["content"]["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

/// The next JSON frame, within 10 s.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test]
async fn only_the_channels_sites_may_open_the_chat() {
    let app = app().await;
    for (origin, expected) in [
        (Some(SITE), StatusCode::OK),
        (Some("https://evil.example"), StatusCode::FORBIDDEN),
        (None, StatusCode::FORBIDDEN),
    ] {
        let mut request =
            axum::http::Request::builder().uri(format!("/webchat/{}/config", app.channel));
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        let response = tower::ServiceExt::oneshot(
            app.router.clone(),
            request.body(axum::body::Body::empty()).unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), expected, "{origin:?}");
        if expected == StatusCode::OK {
            assert_eq!(
                response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
                SITE
            );
        }
    }
    match tokio_tungstenite::connect_async(app.socket_request(Some("https://evil.example"))).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::FORBIDDEN)
        }
        other => panic!(
            "a page of another site opened the socket: {:?}",
            other.map(|(_, r)| r.status())
        ),
    }
    let (status, problem) = support::call(
        &app.router,
        &app.key,
        "POST",
        "/v1/channels",
        Some(json!({"kind": "webchat", "name": "other", "config": {"allowed_origins": ["*"]}})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem.to_string().contains("/allowed_origins/0"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_visitors_message_is_stored_once_and_comes_back_in_their_history() {
    let app = app().await;
    let (mut socket, token) = app.open(None, None).await;
    assert_eq!(token.len(), 43, "{token}");
    for _ in 0..2 {
        // The widget sends it again after a lost answer: the same client id.
        send(
            &mut socket,
            json!({"type": "message", "client_id": "c1", "text": "Bonjour"}),
        )
        .await;
        let ack = next(&mut socket).await;
        assert_eq!(ack, json!({"type": "ack", "client_id": "c1"}));
    }
    let inbound = app.inbound().await;
    assert_eq!(inbound.len(), 1, "stored once: {inbound:?}");
    assert_eq!(inbound[0]["channel"], "webchat");
    let address = inbound[0]["from"].as_str().unwrap().to_owned();
    assert!(
        address.starts_with('v') && !address.contains(&token),
        "{address}"
    );

    send(
        &mut socket,
        json!({"type": "message", "client_id": "c2", "text": "   "}),
    )
    .await;
    let refused = next(&mut socket).await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["retry"], false);
    socket.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(next(&mut socket).await["type"], "error");
    assert_eq!(app.inbound().await.len(), 1, "nothing more was stored");
    drop(socket);

    // Back with the token: the same visitor, with their message in the history.
    let (mut again, same) = app.open(Some(&token), None).await;
    assert_eq!(same, token);
    let history = next(&mut again).await;
    assert_eq!(history["type"], "message");
    assert_eq!(history["direction"], "in");
    assert_eq!(history["client_id"], "c1");
    assert_eq!(history["content"]["text"], "Bonjour");
    // After that message, nothing is sent again.
    let (mut resumed, _) = app.open(Some(&token), history["id"].as_str()).await;
    send(
        &mut resumed,
        json!({"type": "message", "client_id": "c3", "text": "Toujours là ?"}),
    )
    .await;
    assert_eq!(
        next(&mut resumed).await,
        json!({"type": "ack", "client_id": "c3"})
    );
    // A forged token is another visitor, with no history.
    let (mut stranger, other) = app.open(Some("forged-token"), None).await;
    assert_ne!(other, token);
    send(&mut stranger, json!({"type": "read", "id": "nothing"})).await;
    send(
        &mut stranger,
        json!({"type": "message", "client_id": "s1", "text": "Salut"}),
    )
    .await;
    assert_eq!(
        next(&mut stranger).await,
        json!({"type": "ack", "client_id": "s1"})
    );
}

#[tokio::test]
async fn a_visitor_who_floods_the_socket_is_slowed_down_and_nothing_is_lost_of_what_was_taken() {
    let app = app().await;
    let (mut socket, _) = app.open(None, None).await;
    for i in 0..60 {
        send(
            &mut socket,
            json!({"type": "message", "client_id": format!("f{i}"), "text": format!("flood {i}")}),
        )
        .await;
    }
    let (mut acks, mut slowed) = (0, 0);
    for _ in 0..60 {
        let answer = next(&mut socket).await;
        match answer["type"].as_str() {
            Some("ack") => acks += 1,
            Some("error") => {
                assert_eq!(answer["retry"], true, "{answer}");
                slowed += 1;
            }
            _ => panic!("{answer}"),
        }
    }
    assert!(slowed >= 30, "{acks} taken, {slowed} slowed down");
    let stored = app.inbound().await.len();
    assert_eq!(
        stored, acks,
        "every message taken is stored, none of the others"
    );
}

#[tokio::test]
async fn a_visitor_who_gives_a_customers_email_continues_her_thread_and_an_agent_reaches_her_phone()
{
    let app = app().await;
    app.put_signup_flow().await;
    let ana = app.ana().await;
    let (mut socket, _) = app.open(None, None).await;
    write(&mut socket, "c1", "Bonjour").await;
    let conversations = app
        .api("GET", "/v1/conversations", None, StatusCode::OK)
        .await;
    let visitors = conversations["data"][0].clone();
    assert_ne!(visitors["contact"], ana.as_str());
    write(&mut socket, "c2", "Ana@Example.com").await;

    // One contact, Ana, whose thread the visitor's conversation now is.
    let contacts = app.api("GET", "/v1/contacts", None, StatusCode::OK).await;
    let contacts = contacts["data"].as_array().unwrap();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["id"], ana.as_str());
    assert_eq!(contacts[0]["attributes"]["first_name"], "Ana");
    let conversations = app
        .api("GET", "/v1/conversations", None, StatusCode::OK)
        .await;
    let conversations = conversations["data"].as_array().unwrap();
    assert_eq!(conversations.len(), 1, "{conversations:?}");
    let thread = &conversations[0];
    assert_eq!(thread["id"], visitors["id"]);
    assert_eq!(thread["contact"], ana.as_str());
    assert_eq!(thread["state"], "pending");

    // The merge is recorded with how it came about: the visitor's answer, a claim.
    let answer = app
        .inbound()
        .await
        .into_iter()
        .find(|m| m["text"] == "Ana@Example.com")
        .unwrap();
    let merges = app
        .api(
            "GET",
            &format!("/v1/contacts/{ana}/merges"),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(merges.as_array().unwrap().len(), 1, "{merges}");
    assert_eq!(
        merges[0]["cause"],
        json!({"type": "flow_answer", "identity": {"channel": "email", "address": "ana@example.com"},
               "flow": "signup", "node": "email", "message_id": answer["id"],
               "conversation_id": thread["id"]})
    );

    // An agent answers on her phone.
    let id = thread["id"].as_str().unwrap();
    app.api(
        "POST",
        &format!("/v1/conversations/{id}/messages"),
        Some(
            json!({"content": {"text": "Bonjour Ana, votre colis part demain."}, "channel": "sim"}),
        ),
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(
        app.phone_received("+33612345678").await,
        ["Bonjour Ana, votre colis part demain."]
    );
}

#[tokio::test]
async fn a_visitor_linked_to_a_customer_sees_only_their_own_web_chat_messages() {
    let app = app().await;
    app.put_signup_flow().await;
    let ana = app.ana().await;
    // Ana's own thread: she wrote from her phone, and was sent a code.
    app.api(
        "POST",
        "/v1/sim/phones/+33612345678/reply",
        Some(json!({"text": "Mon numéro client est 8812"})),
        StatusCode::CREATED,
    )
    .await;
    app.api(
        "POST",
        "/v1/messages",
        Some(json!({"to": "+33612345678", "channel": "sim", "content": {"text": "Votre code : 123456"}})),
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(
        app.phone_received("+33612345678").await,
        ["Votre code : 123456"]
    );

    // A visitor types her address.
    let (mut socket, token) = app.open(None, None).await;
    write(&mut socket, "c1", "Bonjour").await;
    write(&mut socket, "c2", "ana@example.com").await;
    let contacts = app.api("GET", "/v1/contacts", None, StatusCode::OK).await;
    assert_eq!(contacts["data"].as_array().unwrap().len(), 1);
    let conversation = app
        .api("GET", "/v1/conversations", None, StatusCode::OK)
        .await["data"][0]
        .clone();
    assert_eq!(conversation["contact"], ana.as_str());
    let id = conversation["id"].as_str().unwrap();
    app.api(
        "POST",
        &format!("/v1/conversations/{id}/messages"),
        Some(json!({"content": {"text": "Votre colis part demain, Ana."}, "channel": "sim"})),
        StatusCode::ACCEPTED,
    )
    .await;
    drop(socket);
    // Ana gets many more messages: they neither show in nor crowd out the visitor's history.
    let notices: Vec<Value> = (0..120)
        .map(|n| json!({"to": "+33612345678", "channel": "sim", "content": {"text": format!("Alerte {n}")}}))
        .collect();
    let batch = app
        .api(
            "POST",
            "/v1/messages/batch",
            Some(json!({"messages": notices})),
            StatusCode::ACCEPTED,
        )
        .await;
    assert_eq!(batch["accepted"], 120, "{batch}");

    // Back in the widget, the visitor gets what they wrote and what was sent to them, and
    // nothing of Ana's phone.
    let (mut again, _) = app.open(Some(&token), None).await;
    let history = history_of(&mut again).await;
    assert_eq!(texts(&history, "in"), ["Bonjour", "ana@example.com"]);
    let sent = texts(&history, "out");
    assert_eq!(
        sent.first().map(String::as_str),
        Some("Votre e-mail ?"),
        "{sent:?}"
    );
    for theirs in [
        "Mon numéro client est 8812",
        "Votre code : 123456",
        "Votre colis part demain, Ana.",
        "Alerte",
    ] {
        assert!(
            !Value::from(history.clone()).to_string().contains(theirs),
            "`{theirs}` reached the widget: {history:?}"
        );
    }

    // Another visitor who types the same address is linked too, and sees none of this.
    let (mut other, other_token) = app.open(None, None).await;
    write(&mut other, "o1", "Salut").await;
    write(&mut other, "o2", "ana@example.com").await;
    let contacts = app.api("GET", "/v1/contacts", None, StatusCode::OK).await;
    assert_eq!(contacts["data"].as_array().unwrap().len(), 1);
    drop(other);
    let (mut back, _) = app.open(Some(&other_token), None).await;
    let history = history_of(&mut back).await;
    assert_eq!(texts(&history, "in"), ["Salut", "ana@example.com"]);
    assert!(
        !history.iter().any(|f| f.to_string().contains("Bonjour")),
        "{history:?}"
    );
}
