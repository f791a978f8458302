//! The web chat channel from the widget's side: its look and its socket are refused to
//! pages of other sites; a visitor's message is stored once however often the widget
//! sends it again; a visitor who comes back with their token gets their history; agents
//! see the visitor typing.

mod support;

use axum::http::{StatusCode, header};
use futures::{SinkExt, StreamExt};
use relais_core::clock::{Clock, SystemClock};
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
    _dir: tempfile::TempDir,
}

async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let state = AppState::new(store.clone(), clock.clone(), HttpSettings::default(), None);
    // What flows and agents send goes out to the widget as `relais serve` sends it.
    let dispatcher = relais_engine::dispatch::Dispatcher::new(
        store,
        clock,
        relais_engine::dispatch::DispatcherConfig {
            lease_owner: "test".into(),
            ..Default::default()
        },
    )
    .with_registry(state.channels.registry());
    tokio::spawn(async move {
        loop {
            if let Err(e) = dispatcher.run_once().await {
                eprintln!("dispatch: {e}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
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

/// Frames of the tenant's event stream until `stop` holds for one (pings skipped); the
/// last one is the frame that stopped it.
async fn stream_until(stream: &mut Socket, stop: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = next(stream).await;
        let done = stop(&frame);
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

#[tokio::test]
async fn agents_see_a_visitor_typing_in_their_conversation_once_per_two_seconds() {
    let app = app().await;
    let mut request = format!("ws://{}/v1/events/stream", app.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {}", app.key).parse().unwrap(),
    );
    let (mut stream, _) = tokio_tungstenite::connect_async(request).await.unwrap();

    // A visitor who never wrote has no conversation: typing tells nobody anything.
    let (mut socket, _) = app.open(None, None).await;
    send(&mut socket, json!({"type": "typing"})).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    send(
        &mut socket,
        json!({"type": "message", "client_id": "c1", "text": "Bonjour"}),
    )
    .await;
    assert_eq!(next(&mut socket).await["type"], "ack");
    let before = stream_until(&mut stream, |f| {
        f["type"] == "message.received" && f["data"]["text"] == "Bonjour"
    })
    .await;
    assert!(
        before.iter().all(|f| f["type"] != "typing"),
        "typing before any conversation: {before:?}"
    );
    let conversation = before.last().unwrap()["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Typing now reaches the stream, with the conversation; a burst of keys is one event.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    for _ in 0..5 {
        send(&mut socket, json!({"type": "typing"})).await;
    }
    let first = stream_until(&mut stream, |f| f["type"] == "typing").await;
    let typing = first.last().unwrap();
    assert_eq!(typing["conversation_id"], conversation.as_str(), "{typing}");
    assert_eq!(typing["data"]["who"], "visitor", "{typing}");
    assert_eq!(typing["id"], Value::Null, "typing is not stored: {typing}");
    send(
        &mut socket,
        json!({"type": "message", "client_id": "c2", "text": "Vous êtes là ?"}),
    )
    .await;
    assert_eq!(next(&mut socket).await["type"], "ack");
    let after = stream_until(&mut stream, |f| {
        f["type"] == "message.received" && f["data"]["text"] == "Vous êtes là ?"
    })
    .await;
    assert!(
        after.iter().all(|f| f["type"] != "typing"),
        "five typing frames in two seconds made more than one event: {after:?}"
    );
}

#[tokio::test]
async fn a_visitor_fills_in_a_flows_form_and_its_values_are_kept_on_the_contact() {
    let app = app().await;
    let (status, flow) = support::call(
        &app.router,
        &app.key,
        "PUT",
        "/v1/flows/rdv",
        Some(json!({
            "entry": {"new_conversation": true, "channels": ["webchat"]},
            "start": "rdv",
            "nodes": {
                "rdv": {"type": "ask", "attribute": "rendez_vous", "validate": {"type": "form"},
                    "next": "merci", "content": {"form": {
                        "title": "Votre rendez-vous", "submit": "Confirmer", "fields": [
                            {"name": "date", "label": "Date", "kind": "date"},
                            {"name": "creneau", "label": "Créneau", "kind": "choice", "options": ["10:00", "14:00"]}]}}},
                "merci": {"type": "end", "text": "C'est noté."}
            }
        })),
    )
    .await;
    assert!(status.is_success(), "{status} {flow}");
    let (mut socket, _) = app.open(None, None).await;
    send(
        &mut socket,
        json!({"type": "message", "client_id": "c1", "text": "Bonjour"}),
    )
    .await;
    let mut form = None;
    while form.is_none() {
        let frame = next(&mut socket).await;
        if frame["type"] == "message" && frame["direction"] == "out" {
            form = Some(frame["content"]["form"].clone());
        }
    }
    let form = form.unwrap();
    assert_eq!(form["title"], "Votre rendez-vous");
    assert_eq!(form["fields"][1]["options"], json!(["10:00", "14:00"]));

    // Words are not the form's values: the flow asks again.
    send(
        &mut socket,
        json!({"type": "message", "client_id": "c2", "text": "mardi"}),
    )
    .await;
    let mut asked_again = false;
    while !asked_again {
        let frame = next(&mut socket).await;
        asked_again = frame["type"] == "message"
            && frame["direction"] == "out"
            && frame["content"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("formulaire") || t.contains("form"));
    }
    send(
        &mut socket,
        json!({"type": "message", "client_id": "c3", "text": "Date: 2026-12-24\nCréneau: 14:00",
            "payload": r#"{"date":"2026-12-24","creneau":"14:00"}"#}),
    )
    .await;
    let mut thanked = false;
    while !thanked {
        let frame = next(&mut socket).await;
        thanked = frame["type"] == "message" && frame["content"]["text"] == "C'est noté.";
    }
    let (_, contacts) = support::call(&app.router, &app.key, "GET", "/v1/contacts", None).await;
    let contact = &contacts["data"][0];
    assert_eq!(
        contact["attributes"]["rendez_vous"],
        json!({"date": "2026-12-24", "creneau": "14:00"}),
        "{contact}"
    );
}
