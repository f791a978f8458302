//! The web chat widget's side of a `webchat` channel: its look
//! (`GET /webchat/{channel}/config`) and the visitor's WebSocket
//! (`GET /webchat/{channel}/socket`), both only for pages of the channel's allowed sites.
//!
//! The socket speaks JSON text frames (docs/webchat.md):
//! - the widget opens with `{"type": "hello", "visitor": <token or null>, "after": <the last
//!   message id it has, or null>}` and gets `{"type": "welcome", "visitor": <token>}`, then
//!   the history after `after` (`{"type": "message", …}`), then what is sent live;
//! - `{"type": "message", "client_id", "text", "payload"?}` is answered
//!   `{"type": "ack", "client_id"}` once stored, or `{"type": "error", "client_id", "detail"}`;
//! - `{"type": "read", "id"}` marks the tenant's message read.

use crate::AppState;
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use relais_channels::webchat::{self, Hub, Visitor};
use relais_core::bucket::TokenBucket;
use relais_core::channel::ChannelKind;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webchat/{channel}/config", get(config))
        .route("/webchat/{channel}/socket", get(socket))
}

/// A visitor's frame is a short JSON text: 16 KiB is far above the longest message.
const MAX_INCOMING: usize = 16 * 1024;
/// Messages of the history sent on (re)connection at most.
const HISTORY: u32 = 100;
/// How long a visitor's message may take to be stored before the widget is told to send it
/// again.
const STORE_WAIT: Duration = Duration::from_secs(10);
/// Each connection's read buffer, allocated when it opens: tungstenite's default (128 KiB)
/// would cost gigabytes for tens of thousands of idle visitors; a frame larger than this
/// is read in several steps.
const READ_BUFFER: usize = 4 * 1024;
/// A visitor writes this many messages in a burst at most…
const BURST: f64 = 20.0;
/// …and this many a second after it: a person types far slower; a script that floods
/// the socket gets `retry` errors instead of filling the inbound pipeline.
const PER_SECOND: f64 = 5.0;
/// A ping keeps proxies from dropping an idle connection.
const HEARTBEAT: Duration = Duration::from_secs(25);

/// The channel's hub, if the page's origin may use it.
fn allowed_hub(channel: &str, headers: &HeaderMap) -> ApiResult<(Arc<Hub>, String)> {
    let hub = webchat::hub(channel)
        .ok_or_else(|| ApiError::not_found(format!("no web chat channel `{channel}`")))?;
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !hub.config().allows(&origin) {
        return Err(ApiError::forbidden(format!(
            "pages of `{origin}` may not open this chat: add the site to the channel's allowed_origins"
        )));
    }
    Ok((hub, origin))
}

fn cors(mut response: Response, origin: &str) -> Response {
    if let Ok(origin) = HeaderValue::from_str(origin) {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// The widget's look: `{"title", "color", "greeting", "language"}`.
pub async fn config(Path(channel): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    let (hub, origin) = allowed_hub(&channel, &headers)?;
    Ok(cors(
        axum::Json(hub.config().look()).into_response(),
        &origin,
    ))
}

/// The visitor's connection.
pub async fn socket(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let (hub, _) = allowed_hub(&channel, &headers)?;
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade-required",
            format!("this route is a WebSocket ({})", rejection.body_text()),
        )
    })?;
    Ok(upgrade
        .max_message_size(MAX_INCOMING)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| visitor_connection(socket, state, hub)))
}

fn text(frame: &Value) -> Message {
    Message::Text(frame.to_string().into())
}

async fn visitor_connection(mut socket: WebSocket, state: AppState, hub: Arc<Hub>) {
    // The first frame says who the visitor is.
    let hello = match tokio::time::timeout(STORE_WAIT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(raw)))) => serde_json::from_str::<Value>(&raw).ok(),
        _ => None,
    };
    let Some(hello) = hello.filter(|h| h["type"] == "hello") else {
        let _ = socket
            .send(text(&json!({"type": "error", "detail": "the first frame must be {\"type\": \"hello\", \"visitor\": …}"})))
            .await;
        return;
    };
    let visitor = hub.visitor(hello["visitor"].as_str());
    // Connected before the history is read, so nothing sent meanwhile is missed; the
    // widget drops what it already has by id.
    let (connection, mut pushed) = hub.connect(&visitor.address);
    let welcome = json!({"type": "welcome", "visitor": visitor.token, "look": hub.config().look()});
    if socket.send(text(&welcome)).await.is_err() {
        hub.disconnect(&visitor.address, connection);
        return;
    }
    match history(&state, &hub, &visitor, hello["after"].as_str()).await {
        Ok(frames) => {
            for frame in frames {
                if socket.send(text(&frame)).await.is_err() {
                    hub.disconnect(&visitor.address, connection);
                    return;
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read a visitor's history"),
    }
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.reset();
    let (stored_tx, mut stored) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let mut allowance = TokenBucket::with_burst(PER_SECOND, BURST, state.clock.now());
    loop {
        tokio::select! {
            frame = pushed.recv() => match frame {
                Some(frame) => if socket.send(text(&frame)).await.is_err() { break },
                None => break,
            },
            answer = stored.recv() => {
                if let Some(answer) = answer && socket.send(text(&answer)).await.is_err() {
                    break;
                }
            }
            _ = heartbeat.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() { break }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(raw))) => {
                    let Ok(frame) = serde_json::from_str::<Value>(&raw) else {
                        let _ = socket.send(text(&json!({"type": "error", "detail": "frames are JSON objects"}))).await;
                        continue;
                    };
                    let allowed = frame["type"] != "message" || allowance.try_take(state.clock.now());
                    on_frame(&hub, &visitor, frame, &stored_tx, allowed);
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    hub.disconnect(&visitor.address, connection);
}

fn on_frame(
    hub: &Hub,
    visitor: &Visitor,
    frame: Value,
    answers: &tokio::sync::mpsc::UnboundedSender<Value>,
    allowed: bool,
) {
    match frame["type"].as_str() {
        Some("message") => {
            let client_id = frame["client_id"].as_str().unwrap_or_default().to_owned();
            if !allowed {
                let _ = answers.send(json!({"type": "error", "client_id": client_id,
                    "detail": "too many messages at once: wait a moment", "retry": true}));
                return;
            }
            let payload = frame["payload"].as_str().map(str::to_owned);
            match hub.receive(
                visitor,
                &client_id,
                frame["text"].as_str().unwrap_or_default(),
                payload,
            ) {
                Ok(stored) => {
                    let answers = answers.clone();
                    tokio::spawn(async move {
                        let answer = match tokio::time::timeout(STORE_WAIT, stored).await {
                            Ok(Ok(())) => json!({"type": "ack", "client_id": client_id}),
                            _ => json!({"type": "error", "client_id": client_id,
                                "detail": "not stored yet: send it again", "retry": true}),
                        };
                        let _ = answers.send(answer);
                    });
                }
                Err(e) => {
                    let _ = answers.send(json!({"type": "error", "client_id": client_id,
                        "detail": e.to_string(), "retry": false}));
                }
            }
        }
        Some("read") => {
            if let Some(id) = frame["id"].as_str() {
                hub.read(id);
            }
        }
        _ => {
            let _ = answers.send(json!({"type": "error",
                "detail": "unknown frame type; expected message or read"}));
        }
    }
}

/// The visitor's messages on this channel, in and out, oldest first, after `after`.
///
/// Only those of the visitor's own address: a visitor who gave a known customer's address
/// in a flow was merged into that customer, whose other messages (SMS, WhatsApp, other
/// visitors') they must never see, and which must not crowd theirs out either.
async fn history(
    state: &AppState,
    hub: &Hub,
    visitor: &Visitor,
    after: Option<&str>,
) -> Result<Vec<Value>, relais_store::StoreError> {
    let tenant = &hub.identity().tenant_id;
    let channel_id = &hub.identity().id;
    let Some(contact) = state
        .store
        .contact_by_identity(tenant, Some(ChannelKind::Webchat), &visitor.address)
        .await?
    else {
        return Ok(Vec::new());
    };
    let mut entries: Vec<(jiff::Timestamp, String, Value)> = Vec::new();
    for m in state
        .store
        .inbound_from_address(tenant, &contact.id, channel_id, &visitor.address, HISTORY)
        .await?
    {
        let client_id = m.provider_id.as_deref().and_then(webchat::client_id_of);
        entries.push((
            m.received_at,
            m.id.clone(),
            json!({"type": "message", "id": m.id, "direction": "in", "client_id": client_id,
                "content": {"text": m.text}, "at": m.received_at}),
        ));
    }
    for m in state
        .store
        .messages_to_address(tenant, &contact.id, channel_id, &visitor.address, HISTORY)
        .await?
    {
        entries.push((
            m.created_at,
            m.id.clone(),
            json!({"type": "message", "id": m.id, "direction": "out", "content": m.content,
                "status": m.status.as_str(), "at": m.created_at}),
        ));
    }
    entries.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    if let Some(after) = after
        && let Some(at) = entries.iter().position(|(_, id, _)| id == after)
    {
        entries.drain(..=at);
    }
    Ok(entries.into_iter().map(|(_, _, frame)| frame).collect())
}
