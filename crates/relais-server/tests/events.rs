//! The live event stream as a client sees it: `GET /v1/events/stream` over a real socket
//! carries what happens in the tenant (a customer's message, a state change, a reply), a
//! client that reconnects with its last event id gets exactly what it missed, another
//! tenant's events never show, one resuming from before the retention is told what it
//! lost, bad requests are refused before the upgrade, and a client that stops reading
//! holds up no one.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures::{SinkExt, StreamExt};
use relais_core::clock::{Clock, ManualClock};
use relais_engine::events::EventKind;
use relais_engine::tenants::{Bootstrap, bootstrap, create_tenant};
use relais_server::{AppState, HttpSettings, StreamSettings, router};
use relais_store::{SqliteStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Longest wait for anything the stream should deliver.
const WAIT: Duration = Duration::from_secs(15);

struct App {
    addr: std::net::SocketAddr,
    state: AppState,
    key: String,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn app_with(stream: StreamSettings) -> App {
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
    let state =
        AppState::new(store.clone(), clock.clone(), settings, None).with_event_stream(stream);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(relais_server::serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    App {
        addr,
        state,
        key: key.secret,
        store,
        clock,
        stop: Some(stop),
        server,
        _dir: dir,
    }
}

async fn app() -> App {
    app_with(StreamSettings::default()).await
}

impl App {
    /// A REST call as `key`, through the same state as the socket's server.
    async fn call(
        &self,
        key: &str,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(key, method, uri, body, &[]).await
    }

    /// [`App::call`] with more headers.
    async fn call_with(
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
            Some(json) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let (status, value, _) =
            support::respond(&router(self.state.clone()), req.body(body).unwrap()).await;
        (status, value)
    }

    /// A simulated phone writes `text` to the tenant of `key`; the inbound message.
    async fn phone_writes(&self, key: &str, number: &str, text: &str) -> Value {
        let (status, reply) = self
            .call(
                key,
                "POST",
                &format!("/v1/sim/phones/{number}/reply"),
                Some(json!({ "text": text })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{reply}");
        reply["inbound"].clone()
    }

    fn url(&self, query: &str) -> String {
        format!("ws://{}/v1/events/stream{query}", self.addr)
    }

    /// A client of the tenant of `key` (sent in the Authorization header).
    async fn connect(&self, key: &str, query: &str) -> Client {
        let mut request = self.url(query).into_client_request().unwrap();
        request.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Bearer {key}").parse().unwrap(),
        );
        let (client, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        client
    }

    /// What a refused connection answers: status, Content-Type and body.
    async fn refused(
        &self,
        request: impl IntoClientRequest + Unpin,
    ) -> (StatusCode, String, Value) {
        match tokio_tungstenite::connect_async(request).await {
            Err(tungstenite::Error::Http(response)) => {
                let content_type = response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let body = response.body().clone().unwrap_or_default();
                (
                    response.status(),
                    content_type,
                    serde_json::from_slice(&body).unwrap_or(Value::Null),
                )
            }
            Err(e) => panic!("expected an HTTP refusal, got {e}"),
            Ok(_) => panic!("expected an HTTP refusal, the connection was upgraded"),
        }
    }
}

/// The next event frame (pings skipped), as JSON.
async fn next_frame(client: &mut Client) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("a frame in time")
            .expect("the stream is open")
            .expect("a readable frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Frames until one of type `kind`, which is returned.
async fn frame_of(client: &mut Client, kind: &str) -> Value {
    loop {
        let frame = next_frame(client).await;
        if frame["type"] == kind {
            return frame;
        }
    }
}

/// Publishes a marker event: a client that receives it next received nothing in between.
async fn marker(app: &App, tenant: &str) -> i64 {
    app.state
        .events
        .publish(
            tenant,
            EventKind::SlaBreached,
            None,
            json!({ "marker": true }),
        )
        .await
        .unwrap()
        .seq
}

async fn default_tenant(app: &App) -> String {
    app.store
        .tenant_by_name("default")
        .await
        .unwrap()
        .unwrap()
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hears_of_a_customer_message_a_state_change_and_a_reply() {
    let app = app().await;
    let mut client = app.connect(&app.key, "").await;

    let inbound = app
        .phone_writes(&app.key, "0612345678", "où est mon colis ?")
        .await;
    let conversation = inbound["conversation_id"].as_str().unwrap().to_owned();
    let received = frame_of(&mut client, "message.received").await;
    assert_eq!(received["conversation_id"], conversation.as_str());
    assert_eq!(received["data"]["id"], inbound["id"]);
    assert_eq!(received["data"]["text"], "où est mon colis ?");
    assert_eq!(received["data"]["from"], "+33612345678");
    assert!(received["id"].as_i64().unwrap() >= 1, "{received}");
    assert!(received["at"].is_string(), "{received}");

    let (status, body) = app
        .call(
            &app.key,
            "PATCH",
            &format!("/v1/conversations/{conversation}"),
            Some(json!({ "state": "open" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let changed = next_frame(&mut client).await;
    assert_eq!(changed["type"], "conversation.state_changed");
    assert_eq!(changed["conversation_id"], conversation.as_str());
    assert_eq!(changed["data"]["state"], "open");
    assert_eq!(changed["data"]["previous_state"], "pending");
    assert_eq!(changed["id"], received["id"].as_i64().unwrap() + 1);

    let reply_uri = format!("/v1/conversations/{conversation}/messages");
    let reply = || {
        app.call_with(
            &app.key,
            "POST",
            &reply_uri,
            Some(json!({ "content": { "text": "Il arrive demain." } })),
            &[("idempotency-key", "reply-1")],
        )
    };
    let (status, body) = reply().await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let sent = next_frame(&mut client).await;
    assert_eq!(sent["type"], "message.sent");
    assert_eq!(sent["conversation_id"], conversation.as_str());
    assert_eq!(sent["data"]["id"], body["id"]);
    assert_eq!(sent["data"]["content"]["text"], "Il arrive demain.");

    // The same request again (a client's retry) is the same message: no second event.
    let (status, again) = reply().await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["id"], body["id"]);
    let end = marker(&app, &default_tenant(&app).await).await;
    assert_eq!(next_frame(&mut client).await["id"], end);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reconnects_with_its_last_id_gets_what_it_missed_once_and_in_order() {
    let app = app().await;
    let tenant = default_tenant(&app).await;
    let mut client = app.connect(&app.key, "").await;
    app.phone_writes(&app.key, "0612345678", "bonjour").await;
    let last = frame_of(&mut client, "message.received").await["id"]
        .as_i64()
        .unwrap();
    client.close(None).await.unwrap();

    for text in ["un", "deux", "trois"] {
        app.phone_writes(&app.key, "0612345678", text).await;
    }
    let end = marker(&app, &tenant).await;

    for resumed in [
        app.connect(&app.key, &format!("?last_event_id={last}"))
            .await,
        // The header of Server-Sent Events works too.
        {
            let mut request = app.url("").into_client_request().unwrap();
            let headers = request.headers_mut();
            headers.insert(
                header::AUTHORIZATION,
                format!("Bearer {}", app.key).parse().unwrap(),
            );
            headers.insert("last-event-id", last.to_string().parse().unwrap());
            tokio_tungstenite::connect_async(request).await.unwrap().0
        },
    ] {
        let mut resumed = resumed;
        let mut got = Vec::new();
        loop {
            let frame = next_frame(&mut resumed).await;
            if frame["id"] == end {
                break;
            }
            got.push((frame["id"].as_i64().unwrap(), frame["data"]["text"].clone()));
        }
        assert_eq!(
            got,
            [
                (last + 1, json!("un")),
                (last + 2, json!("deux")),
                (last + 3, json!("trois")),
            ],
            "exactly the three missed, in order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resuming_from_before_the_retention_is_told_and_goes_on() {
    let app = app().await;
    let tenant = default_tenant(&app).await;
    for _ in 0..3 {
        marker(&app, &tenant).await;
    }
    app.clock.advance(jiff::SignedDuration::from_hours(8 * 24));
    let kept = marker(&app, &tenant).await;
    let pruned = app
        .state
        .events
        .prune_once(relais_engine::events::DEFAULT_RETENTION)
        .await
        .unwrap();
    assert_eq!(pruned, 3);

    let mut client = app.connect(&app.key, "?last_event_id=1").await;
    let reset = next_frame(&mut client).await;
    assert_eq!(reset["type"], "stream.reset", "{reset}");
    assert_eq!(reset["id"], 3, "where the stream goes on");
    assert_eq!(reset["data"]["reason"], "pruned");
    assert_eq!(reset["data"]["missed_after"], 1);
    assert_eq!(next_frame(&mut client).await["id"], kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_events_never_reach_a_client() {
    let app = app().await;
    let now = "2026-11-21T10:00:00Z".parse().unwrap();
    let (globex, globex_key) = create_tenant(&*app.store, "globex", now).await.unwrap();
    // The browser's way: the key in the query string.
    let (mut theirs, _) =
        tokio_tungstenite::connect_async(app.url(&format!("?access_token={}", globex_key.secret)))
            .await
            .unwrap();
    let mut ours = app.connect(&app.key, "").await;

    let inbound = app.phone_writes(&app.key, "0612345678", "bonjour").await;
    let received = frame_of(&mut ours, "message.received").await;
    assert_eq!(received["data"]["id"], inbound["id"]);
    let theirs_inbound = app
        .phone_writes(&globex_key.secret, "0698765432", "hello")
        .await;
    let first = next_frame(&mut theirs).await;
    assert_eq!(first["type"], "message.received");
    assert_eq!(
        first["data"]["id"], theirs_inbound["id"],
        "only its own tenant's"
    );
    assert_eq!(first["id"], 1, "each tenant numbers its own events");
    let end = marker(&app, &globex.id).await;
    assert_eq!(next_frame(&mut theirs).await["id"], end);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_before_the_upgrade_as_problems() {
    let app = app().await;
    let (status, content_type, problem) = app.refused(app.url("")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        content_type.starts_with("application/problem+json"),
        "{content_type}"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("access_token"),
        "{problem}"
    );

    let (status, _, _) = app.refused(app.url("?access_token=rl_wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, content_type, problem) = app
        .refused(app.url(&format!("?access_token={}&last_event_id=abc", app.key)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        content_type.starts_with("application/problem+json"),
        "{content_type}"
    );
    assert_eq!(problem["parameter"], "last_event_id", "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("`abc`"),
        "{problem}"
    );

    let (status, _, problem) = app
        .refused(app.url(&format!("?access_token={}&last_event_id=-1", app.key)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");

    let (status, _, problem) = app
        .refused(app.url(&format!(
            "?access_token={}&types=message.received,nope",
            app.key
        )))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["parameter"], "types", "{problem}");

    // A plain GET (no upgrade) is told what the route is.
    let (status, problem) = app.call(&app.key, "GET", "/v1/events/stream", None).await;
    assert_eq!(status, StatusCode::UPGRADE_REQUIRED, "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_filter_passes_only_those_types() {
    let app = app().await;
    let tenant = default_tenant(&app).await;
    let mut client = app
        .connect(&app.key, "?types=conversation.state_changed,sla.breached")
        .await;
    let inbound = app.phone_writes(&app.key, "0612345678", "bonjour").await;
    let conversation = inbound["conversation_id"].as_str().unwrap();
    let (status, body) = app
        .call(
            &app.key,
            "PATCH",
            &format!("/v1/conversations/{conversation}"),
            Some(json!({ "state": "resolved" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let end = marker(&app, &tenant).await;
    let first = next_frame(&mut client).await;
    assert_eq!(first["type"], "conversation.state_changed", "{first}");
    assert_eq!(next_frame(&mut client).await["id"], end);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_server_tells_its_clients_to_reconnect() {
    let mut app = app().await;
    let mut client = app.connect(&app.key, "").await;
    if let Some(stop) = app.stop.take() {
        stop.send(()).unwrap();
    }
    let message = tokio::time::timeout(WAIT, client.next())
        .await
        .expect("a frame in time")
        .unwrap()
        .unwrap();
    let Message::Close(Some(frame)) = message else {
        panic!("expected a close frame, got {message:?}")
    };
    assert_eq!(u16::from(frame.code), 1001, "going away");
    assert!(frame.reason.contains("reconnect"), "{}", frame.reason);
    tokio::time::timeout(WAIT, &mut app.server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_stream_is_kept_alive_with_pings() {
    let app = app_with(StreamSettings {
        heartbeat: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let mut client = app.connect(&app.key, "").await;
    let message = tokio::time::timeout(WAIT, client.next())
        .await
        .expect("a ping in time")
        .unwrap()
        .unwrap();
    assert!(matches!(message, Message::Ping(_)), "{message:?}");
}

/// One client never reads while thousands of events are published: the publisher and a
/// reading client go at full speed, the stalled client is closed after the send timeout,
/// and, reconnecting with the last id it got, it loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_delays_no_one_and_loses_nothing_by_reconnecting() {
    const EVENTS: i64 = 3000;
    let app = app_with(StreamSettings {
        send_timeout: Duration::from_millis(500),
        ..Default::default()
    })
    .await;
    let tenant = default_tenant(&app).await;
    let mut stalled = app.connect(&app.key, "").await;
    let reader = app.connect(&app.key, "").await;
    let reading = tokio::spawn(async move {
        let mut reader = reader;
        let mut ids = Vec::new();
        while ids.len() < EVENTS as usize {
            ids.push(next_frame(&mut reader).await["id"].as_i64().unwrap());
        }
        ids
    });
    // 16 KiB per event, 48 MiB in all: far more than the socket buffers (a few MiB on
    // loopback) between the server and a client that does not read.
    let padding = "x".repeat(16 * 1024);
    let publishing = tokio::time::timeout(WAIT, async {
        for n in 0..EVENTS {
            app.state
                .events
                .publish(
                    &tenant,
                    EventKind::MessageReceived,
                    None,
                    json!({ "n": n, "padding": padding }),
                )
                .await
                .unwrap();
        }
    });
    publishing
        .await
        .expect("publishing is not held up by a client that does not read");
    let ids = tokio::time::timeout(WAIT, reading)
        .await
        .expect("the reading client gets every event in time")
        .unwrap();
    assert_eq!(ids, (1..=EVENTS).collect::<Vec<_>>());
    // An inbound message goes through the pipeline meanwhile too.
    tokio::time::timeout(WAIT, app.phone_writes(&app.key, "0612345678", "bonjour"))
        .await
        .expect("the pipeline is not held up");

    // The stalled client now reads what its buffers held, then learns it was closed.
    let mut last = 0;
    let mut close_reason = None;
    loop {
        match tokio::time::timeout(WAIT, stalled.next())
            .await
            .expect("the stream ends")
        {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                let id = frame["id"].as_i64().unwrap();
                assert_eq!(id, last + 1, "in order, nothing skipped");
                last = id;
            }
            Some(Ok(Message::Close(frame))) => {
                close_reason = frame.map(|f| f.reason.to_string());
                break;
            }
            Some(Ok(_)) => {}
            // Its buffers were too full for the close frame to get through.
            Some(Err(_)) | None => break,
        }
    }
    assert!(
        last < EVENTS,
        "the stalled client was closed before it got everything"
    );
    if let Some(reason) = close_reason {
        assert!(reason.contains("too slow"), "{reason}");
    }
    let mut resumed = app
        .connect(&app.key, &format!("?last_event_id={last}"))
        .await;
    for expected in last + 1..=EVENTS {
        assert_eq!(next_frame(&mut resumed).await["id"], expected);
    }
    // And then the pipeline's message.
    assert_eq!(next_frame(&mut resumed).await["type"], "message.received");
    resumed.send(Message::Close(None)).await.ok();
}
