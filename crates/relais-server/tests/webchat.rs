//! The web chat channel from the widget's side: its look and its socket are refused to
//! pages of other sites; a visitor's message is stored once however often the widget
//! sends it again; a visitor who comes back with their token gets their history, and
//! only theirs, also once an address they gave in a flow linked them to a known customer,
//! whose thread they then continue and whom an agent reaches on their phone; agents see
//! the visitor typing; a visitor fills in a flow's form and sends their own images; a
//! reply the visitor's page did not take within the channel's `push_after` goes to their
//! browser by Web Push when they opted in.

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
    _dir: tempfile::TempDir,
}

async fn app() -> App {
    app_on(Arc::new(SystemClock)).await
}

async fn app_on(clock: Arc<dyn Clock>) -> App {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let Bootstrap::Created(key) = bootstrap(&*store, None, clock.now()).await.unwrap() else {
        panic!("first start")
    };
    let state = AppState::new(store.clone(), clock.clone(), HttpSettings::default(), None);
    // What flows and agents send goes out to the widget and the simulated phones as
    // `relais serve` sends it.
    let dispatcher = Dispatcher::new(
        store.clone(),
        clock,
        DispatcherConfig {
            lease_owner: "test".into(),
            ..Default::default()
        },
    )
    .with_registry(state.channels.registry())
    .with_adapter(Arc::new(relais_engine::sim::adapter(
        store,
        SimConfig::default(),
    )));
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

    /// The texts the simulated phone received from Relais, once it received any (the
    /// dispatcher sends in the background).
    async fn phone_received(&self, number: &str) -> Vec<String> {
        for _ in 0..500 {
            let phone = self
                .api(
                    "GET",
                    &format!("/v1/sim/phones/{number}/messages"),
                    None,
                    StatusCode::OK,
                )
                .await;
            let received: Vec<String> = phone["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["direction"] == "received")
                .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
                .collect();
            if !received.is_empty() {
                return received;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the phone {number} received nothing in 10 s")
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
    // A slot the form does not offer, sent around the widget: the flow names the field.
    send(
        &mut socket,
        json!({"type": "message", "client_id": "c2b", "text": "Date: 2026-12-24\nCréneau: 18:00",
            "payload": r#"{"date":"2026-12-24","creneau":"18:00"}"#}),
    )
    .await;
    let mut named = false;
    while !named {
        let frame = next(&mut socket).await;
        named = frame["type"] == "message"
            && frame["direction"] == "out"
            && frame["content"]["text"].as_str().is_some_and(|t| {
                t == "Merci de vérifier « Créneau »."
                    || t == "Please check “Créneau”: not one of the choices."
            });
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

/// A valid 1×1 PNG.
fn png() -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
        .unwrap()
}

/// An answer read whole: status, headers, body.
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl App {
    async fn request(&self, request: axum::http::Request<axum::body::Body>) -> Answer {
        use http_body_util::BodyExt;
        let response = tower::ServiceExt::oneshot(self.router.clone(), request)
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn upload(
        &self,
        origin: &str,
        token: Option<&str>,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Answer {
        let mut request = axum::http::Request::builder()
            .method("POST")
            .uri(format!("/webchat/{}/uploads", self.channel))
            .header(header::ORIGIN, origin)
            .header(header::CONTENT_TYPE, content_type);
        if let Some(token) = token {
            request = request.header("x-relais-visitor", token);
        }
        self.request(request.body(axum::body::Body::from(bytes)).unwrap())
            .await
    }

    async fn visitor_media(&self, token: &str, id: &str) -> Answer {
        let request = axum::http::Request::builder()
            .uri(format!("/webchat/{}/media/{id}", self.channel))
            .header(header::ORIGIN, SITE)
            .header("x-relais-visitor", token)
            .body(axum::body::Body::empty())
            .unwrap();
        self.request(request).await
    }

    async fn api_media(&self, key: &str, id: &str) -> Answer {
        let request = axum::http::Request::builder()
            .uri(format!("/v1/media/{id}"))
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(axum::body::Body::empty())
            .unwrap();
        self.request(request).await
    }
}

#[tokio::test]
async fn an_upload_is_refused_unless_it_is_a_visitors_image_from_the_channels_site() {
    let app = app().await;
    let (_socket, token) = app.open(None, None).await;
    let foreign = app
        .upload("https://evil.example", Some(&token), "image/png", png())
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    assert!(
        foreign
            .headers
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );
    for token in [None, Some("forged"), Some("")] {
        let refused = app.upload(SITE, token, "image/png", png()).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(
            refused.headers[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(refused.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], SITE);
    }
    let text = app
        .upload(SITE, Some(&token), "image/png", b"hello, world".to_vec())
        .await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        text.headers[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let svg = app
        .upload(SITE, Some(&token), "image/svg+xml", b"<svg/>".to_vec())
        .await;
    assert_eq!(svg.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let mut huge = png();
    huge.resize(5 * 1024 * 1024 + 1, 0);
    let too_large = app.upload(SITE, Some(&token), "image/png", huge).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        too_large.headers[header::CONTENT_TYPE],
        "application/problem+json"
    );

    // The preflight a browser sends for the token header.
    let preflight = app
        .request(
            axum::http::Request::builder()
                .method("OPTIONS")
                .uri(format!("/webchat/{}/uploads", app.channel))
                .header(header::ORIGIN, SITE)
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert_eq!(preflight.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], SITE);
    assert!(
        preflight.headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap()
            .contains("x-relais-visitor")
    );

    let mut largest = png();
    largest.resize(5 * 1024 * 1024, 0);
    let taken = app.upload(SITE, Some(&token), "image/png", largest).await;
    assert_eq!(taken.status, StatusCode::CREATED, "5 MiB exactly is taken");
    let created = app.upload(SITE, Some(&token), "image/png", png()).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let body = created.json();
    assert_eq!(body["mime_type"], "image/png");
    assert_eq!(body["size"], png().len());
    assert_eq!(body["id"].as_str().unwrap().len(), 36, "a UUID: {body}");
    assert_eq!(created.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], SITE);

    // Ten a minute: the next waits, told how long. The refusals above were not stored, or
    // they would count among the ten.
    for _ in 2..10 {
        let answer = app.upload(SITE, Some(&token), "image/png", png()).await;
        assert_eq!(answer.status, StatusCode::CREATED);
    }
    let limited = app.upload(SITE, Some(&token), "image/png", png()).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = limited.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Another visitor is not held back by it.
    let (_other, other) = app.open(None, None).await;
    let theirs = app.upload(SITE, Some(&other), "image/png", png()).await;
    assert_eq!(theirs.status, StatusCode::CREATED);

    let spec = app
        .request(
            axum::http::Request::builder()
                .uri("/openapi.json")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .json();
    assert!(spec["paths"]["/webchat/{channel}/uploads"]["post"].is_object());
    assert!(spec["paths"]["/webchat/{channel}/media/{id}"]["get"].is_object());
    assert!(spec["paths"]["/v1/media/{id}"]["get"].is_object());
}

#[tokio::test]
async fn a_visitor_sends_their_own_image_and_everyone_allowed_sees_it() {
    let app = app().await;
    let (mut socket, token) = app.open(None, None).await;
    let (_thief_socket, thief) = app.open(None, None).await;
    let uploaded = app.upload(SITE, Some(&token), "image/png", png()).await;
    assert_eq!(uploaded.status, StatusCode::CREATED);
    let media_id = uploaded.json()["id"].as_str().unwrap().to_owned();
    let theirs = app.upload(SITE, Some(&thief), "image/png", png()).await;
    let their_id = theirs.json()["id"].as_str().unwrap().to_owned();

    // Another visitor's upload, none at all, or no id: refused for good, nothing stored.
    for (client_id, id) in [
        ("x1", json!(their_id)),
        ("x2", json!("0193-nothing")),
        ("x3", json!(42)),
    ] {
        send(
            &mut socket,
            json!({"type": "message", "client_id": client_id, "media": id}),
        )
        .await;
        let refused = next(&mut socket).await;
        assert_eq!(refused["type"], "error", "{refused}");
        assert_eq!(refused["client_id"], client_id);
        assert_eq!(refused["retry"], false);
    }
    assert!(app.inbound().await.is_empty(), "nothing stored");
    // Nor may the other visitor read it.
    assert_eq!(
        app.visitor_media(&thief, &media_id).await.status,
        StatusCode::NOT_FOUND
    );

    // Their own, without text; sent twice as after a reconnection.
    for _ in 0..2 {
        send(
            &mut socket,
            json!({"type": "message", "client_id": "img1", "text": "", "media": media_id}),
        )
        .await;
        assert_eq!(
            next(&mut socket).await,
            json!({"type": "ack", "client_id": "img1"})
        );
    }
    let inbound = app.inbound().await;
    assert_eq!(inbound.len(), 1, "{inbound:?}");
    assert_eq!(
        inbound[0]["media"],
        json!({"id": media_id, "mime_type": "image/png", "size": png().len()})
    );

    // The thread shows it, once the pipeline placed it in a conversation.
    let mut thread = Value::Null;
    for _ in 0..100 {
        let (_, list) =
            support::call(&app.router, &app.key, "GET", "/v1/conversations", None).await;
        if let Some(id) = list["data"][0]["id"].as_str() {
            let (status, detail) = support::call(
                &app.router,
                &app.key,
                "GET",
                &format!("/v1/conversations/{id}"),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            thread = detail;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let message = &thread["messages"][0];
    assert_eq!(message["direction"], "in", "{thread}");
    assert_eq!(
        message["content"]["media"],
        json!({"url": format!("/v1/media/{media_id}"), "mime_type": "image/png"})
    );

    // The tenant reads the exact bytes, shown only as an image.
    let read = app.api_media(&app.key, &media_id).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, png());
    assert_eq!(read.headers[header::CONTENT_TYPE], "image/png");
    assert_eq!(read.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(read.headers[header::CONTENT_DISPOSITION], "inline");
    assert_eq!(read.headers[header::CONTENT_SECURITY_POLICY], "sandbox");
    assert_eq!(
        app.api_media(&app.key, "no-such-media").await.status,
        StatusCode::NOT_FOUND
    );
    // Another tenant does not find it.
    let (status, other) = support::call(
        &app.router,
        &app.key,
        "POST",
        "/v1/tenants",
        Some(json!({"name": "globex"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let other_key = other["api_key"].as_str().unwrap();
    let foreign = app.api_media(other_key, &media_id).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert!(foreign.body != png());

    // The visitor reads their own back.
    let own = app.visitor_media(&token, &media_id).await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.body, png());
    assert_eq!(own.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], SITE);
    assert_eq!(own.headers[header::CONTENT_SECURITY_POLICY], "sandbox");

    // Back after a reload: the image is in the history, once.
    drop(socket);
    let (mut again, _) = app.open(Some(&token), None).await;
    let history = next(&mut again).await;
    assert_eq!(history["client_id"], "img1", "{history}");
    assert_eq!(
        history["content"],
        json!({"media": {"id": media_id, "mime_type": "image/png"}})
    );
    send(&mut again, json!({"type": "read", "id": "nothing"})).await;
    send(
        &mut again,
        json!({"type": "message", "client_id": "t1", "text": "Voilà", "media": media_id}),
    )
    .await;
    assert_eq!(
        next(&mut again).await,
        json!({"type": "ack", "client_id": "t1"}),
        "with text, nothing else came first: the history held one message"
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

impl App {
    async fn message(&self, id: &str) -> Value {
        self.api("GET", &format!("/v1/messages/{id}"), None, StatusCode::OK)
            .await
    }
}

#[tokio::test]
async fn a_reply_the_visitors_page_did_not_take_within_a_minute_is_pushed_to_their_browser() {
    let clock = Arc::new(relais_core::clock::ManualClock::new(jiff::Timestamp::now()));
    let app = app_on(clock.clone()).await;
    let (push_base, pushes) = support::counting_push_service().await;
    app.api(
        "POST",
        "/v1/channels",
        Some(json!({"kind": "webpush", "name": "push", "config": {
            "vapid_private_key": support::VAPID_PRIVATE,
            "vapid_subject": "mailto:ops@example.com", "allow_http_endpoints": true}})),
        StatusCode::CREATED,
    )
    .await;

    // Ana writes, opts in to notifications, and leaves the page.
    let (mut socket, token) = app.open(None, None).await;
    write(&mut socket, "c1", "Bonjour, ma commande ?").await;
    let subscription = json!({"endpoint": format!("{push_base}/push/ana"),
        "keys": {"p256dh": support::P256DH, "auth": support::AUTH}});
    let request = axum::http::Request::post(format!("/webchat/{}/push", app.channel))
        .header(header::ORIGIN, SITE)
        .header("x-relais-visitor", token.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(subscription.to_string()))
        .unwrap();
    let (status, answer, _) = support::respond(&app.router, request).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    drop(socket);

    let conversations = app
        .api("GET", "/v1/conversations", None, StatusCode::OK)
        .await;
    let conversation = conversations["data"][0]["id"].as_str().unwrap().to_owned();
    let reply = app
        .api(
            "POST",
            &format!("/v1/conversations/{conversation}/messages"),
            Some(json!({"content": {"text": "Elle part demain."}})),
            StatusCode::ACCEPTED,
        )
        .await;
    let id = reply["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        pushes.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the page may still take it"
    );

    clock.advance(jiff::SignedDuration::from_secs(60));
    for _ in 0..250 {
        if pushes.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        pushes.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "pushed once"
    );
    let pushed = app.message(&id).await;
    assert!(
        pushed["to"].as_str().unwrap().contains("/push/ana"),
        "{pushed}"
    );

    // Back on the page: the next reply is taken there, and nothing more is pushed.
    let (mut socket, _) = app.open(Some(&token), None).await;
    history_of(&mut socket).await;
    let reply = app
        .api(
            "POST",
            &format!("/v1/conversations/{conversation}/messages"),
            Some(json!({"content": {"text": "Autre chose ?"}})),
            StatusCode::ACCEPTED,
        )
        .await;
    let id = reply["id"].as_str().unwrap().to_owned();
    let frames = stream_until(&mut socket, |f| {
        f["type"] == "message" && f["content"]["text"] == "Autre chose ?"
    })
    .await;
    assert!(!frames.is_empty());
    for _ in 0..100 {
        if app.message(&id).await["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let taken = app.message(&id).await;
    assert_eq!(taken["status"], "delivered", "{taken}");
    clock.advance(jiff::SignedDuration::from_secs(120));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(pushes.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(app.message(&id).await["status"], "delivered");
}
