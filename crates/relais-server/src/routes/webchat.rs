//! The web chat widget's side of a `webchat` channel: its look
//! (`GET /webchat/{channel}/config`), the visitor's WebSocket
//! (`GET /webchat/{channel}/socket`), and the visitor's images
//! (`POST /webchat/{channel}/uploads`, `GET /webchat/{channel}/media/{id}`), all only for
//! pages of the channel's allowed sites.
//!
//! The socket speaks JSON text frames (docs/webchat.md):
//! - the widget opens with `{"type": "hello", "visitor": <token or null>, "after": <the last
//!   message id it has, or null>}` and gets `{"type": "welcome", "visitor": <token>}`, then
//!   the history after `after` (`{"type": "message", …}`), then what is sent live;
//! - `{"type": "message", "client_id", "text", "payload"?, "media"?}` (`media`: the id of
//!   one of the visitor's own uploads on this channel) is answered
//!   `{"type": "ack", "client_id"}` once stored, or `{"type": "error", "client_id", "detail"}`;
//! - `{"type": "read", "id"}` marks the tenant's message read;
//! - `{"type": "typing"}` while the visitor types puts a `typing` event (`"who":
//!   "visitor"`) on the tenant's event stream, at most one every two seconds.

use crate::AppState;
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use relais_channels::webchat::{self, Hub, Visitor};
use relais_core::bucket::TokenBucket;
use relais_core::channel::ChannelKind;
use relais_core::media::{ImageError, ImageType, MAX_IMAGE_BYTES, MediaRef};
use relais_store::NewMedia;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webchat/{channel}/config", get(config))
        .route("/webchat/{channel}/socket", get(socket))
        .route(
            "/webchat/{channel}/uploads",
            post(upload).options(preflight),
        )
        .route(
            "/webchat/{channel}/media/{id}",
            get(visitor_media).options(preflight),
        )
}

/// The header a visitor proves who they are with outside the socket: their token.
pub const VISITOR_HEADER: &str = "x-relais-visitor";
/// A visitor uploads this many images in [`UPLOAD_WINDOW`] at most: a person shares a
/// few photos; a script that fills the store with megabytes gets 429s.
const UPLOADS_PER_WINDOW: u64 = 10;
const UPLOAD_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

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
/// The least time between two typing events of one connection: agents need to know the
/// visitor types, not each key.
const TYPING_EVERY: jiff::SignedDuration = jiff::SignedDuration::from_secs(2);

/// The channel's hub, if the page's origin may use it.
pub(crate) fn allowed_hub(channel: &str, headers: &HeaderMap) -> ApiResult<(Arc<Hub>, String)> {
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

/// `work`'s answer to a page of a site channel `channel` allows, with the CORS headers;
/// its refusals carry them too, so that the widget can read why.
pub(crate) async fn for_page<Work>(
    channel: &str,
    headers: &HeaderMap,
    work: impl FnOnce(Arc<Hub>) -> Work,
) -> ApiResult<Response>
where
    Work: std::future::Future<Output = ApiResult<Response>>,
{
    let (hub, origin) = allowed_hub(channel, headers)?;
    let answer = work(hub).await.unwrap_or_else(IntoResponse::into_response);
    Ok(cors(answer, &origin))
}

fn cors(mut response: Response, origin: &str) -> Response {
    if let Ok(origin) = HeaderValue::from_str(origin) {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        // So that the widget can say how long to wait after a 429.
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After"),
        );
    }
    response
}

/// The answer to a browser asking whether the page may send the visitor's token header,
/// an image type or JSON, or delete (none is allowed cross-origin without asking).
pub async fn preflight(
    Path(params): Path<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let channel = params
        .iter()
        .find(|(name, _)| name == "channel")
        .map(|(_, value)| value.as_str())
        .unwrap_or_default();
    let (_, origin) = allowed_hub(channel, &headers)?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, DELETE"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, x-relais-visitor"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    Ok(cors(response, &origin))
}

/// The visitor the request's token header names: refused when it is missing or
/// malformed, since a new visitor would own nothing.
pub(crate) fn known_visitor(hub: &Hub, headers: &HeaderMap) -> ApiResult<Visitor> {
    headers
        .get(VISITOR_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|token| hub.known_visitor(token))
        .ok_or_else(|| {
            ApiError::unauthorized(
                "send the visitor's token (the socket's welcome frame gives it) in X-Relais-Visitor",
            )
        })
}

fn image_refused(e: ImageError) -> ApiError {
    ApiError::unsupported_media_type(e.to_string())
}

/// A visitor's image, stored for a message to carry: the body is the raw image, its
/// `Content-Type` one of image/jpeg, image/png, image/gif, image/webp, proven by the
/// file's first bytes, 5 MiB at most. Answers 201 `{"id", "mime_type", "size"}`.
#[utoipa::path(post, path = "/webchat/{channel}/uploads", tag = "webchat",
    params(("channel" = String, Path, description = "The web chat channel's id"),
        ("X-Relais-Visitor" = String, Header, description = "The visitor's token")),
    request_body(content = Vec<u8>, content_type = "image/png", description = "The image's bytes"),
    responses(
        (status = 201, description = "Stored: `{\"id\", \"mime_type\", \"size\"}`"),
        (status = 401, body = crate::problem::Problem, description = "No valid visitor token"),
        (status = 403, body = crate::problem::Problem, description = "A page of a site the channel does not allow"),
        (status = 413, body = crate::problem::Problem, description = "Larger than 5 MiB"),
        (status = 415, body = crate::problem::Problem, description = "Not an image of a taken type, or not what its Content-Type says"),
        (status = 429, body = crate::problem::Problem, description = "Too many uploads: Retry-After says when to try again")),
    security(()))]
pub async fn upload(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let headers = &headers;
    for_page(&channel, headers, |hub| async move {
        take_upload(&state, &hub, headers, body).await
    })
    .await
}

async fn take_upload(
    state: &AppState,
    hub: &Hub,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let visitor = known_visitor(hub, headers)?;
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let kind = ImageType::from_mime(mime).map_err(image_refused)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_IMAGE_BYTES as u64) {
        return Err(too_large());
    }
    let tenant = &hub.identity().tenant_id;
    let now = state.clock.now();
    let recent = state
        .store
        .uploads_since(tenant, &visitor.address, now - UPLOAD_WINDOW)
        .await?;
    if recent.count >= UPLOADS_PER_WINDOW {
        // When the oldest upload of the window leaves it, one more is taken.
        let wait = recent
            .oldest
            .map(|oldest| (oldest + UPLOAD_WINDOW).duration_since(now).as_secs() + 1)
            .unwrap_or(1)
            .clamp(1, UPLOAD_WINDOW.as_secs());
        let mut answer = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-uploads",
            format!("at most {UPLOADS_PER_WINDOW} images a minute: try again in {wait} s"),
        )
        .into_response();
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return Ok(answer);
    }
    let bytes = match http_body_util::Limited::new(body, MAX_IMAGE_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(e) => {
            return Err(ApiError::bad_request(format!(
                "the body could not be read: {e}"
            )));
        }
    };
    let kind = ImageType::checked(kind.mime(), &bytes).map_err(image_refused)?;
    let media = state
        .store
        .insert_media(&NewMedia {
            id: relais_core::ids::new_id(),
            tenant_id: tenant.clone(),
            channel_id: hub.identity().id.clone(),
            owner_address: visitor.address,
            mime_type: kind.mime().to_owned(),
            bytes: bytes.to_vec(),
            created_at: now,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"id": media.id, "mime_type": media.mime_type, "size": media.size})),
    )
        .into_response())
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
        format!(
            "an image may be {} MiB at most",
            MAX_IMAGE_BYTES / (1024 * 1024)
        ),
    )
}

/// One of the visitor's own uploads, for their widget to show (after a reload, say).
#[utoipa::path(get, path = "/webchat/{channel}/media/{id}", tag = "webchat",
    params(("channel" = String, Path, description = "The web chat channel's id"),
        ("id" = String, Path, description = "The upload's id"),
        ("X-Relais-Visitor" = String, Header, description = "The visitor's token")),
    responses(
        (status = 200, description = "The image's bytes under its type"),
        (status = 401, body = crate::problem::Problem),
        (status = 403, body = crate::problem::Problem),
        (status = 404, body = crate::problem::Problem, description = "No such upload of this visitor")),
    security(()))]
pub async fn visitor_media(
    State(state): State<AppState>,
    Path((channel, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (hub, origin) = allowed_hub(&channel, &headers)?;
    let answer = async {
        let visitor = known_visitor(&hub, &headers)?;
        let media = state
            .store
            .media(&hub.identity().tenant_id, &id)
            .await?
            .filter(|m| m.channel_id == hub.identity().id && m.owner_address == visitor.address)
            .ok_or_else(|| ApiError::not_found(format!("upload `{id}`")))?;
        Ok::<_, ApiError>(crate::routes::media::media_response(media))
    }
    .await;
    Ok(cors(
        answer.unwrap_or_else(IntoResponse::into_response),
        &origin,
    ))
}

/// The upload a message frame names, if it is the visitor's own on this channel: `Err`
/// is the error frame's detail and whether trying again may help.
async fn visitor_upload(
    state: &AppState,
    hub: &Hub,
    visitor: &Visitor,
    id: &str,
) -> Result<MediaRef, (String, bool)> {
    match state.store.media(&hub.identity().tenant_id, id).await {
        Ok(Some(m)) if m.channel_id == hub.identity().id && m.owner_address == visitor.address => {
            Ok(m.reference())
        }
        Ok(_) => Err((
            format!("no upload `{id}` of yours: upload the image first"),
            false,
        )),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a visitor's upload");
            Err(("the image could not be read: send it again".into(), true))
        }
    }
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
    let mut typed_at: Option<jiff::Timestamp> = None;
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
                    if frame["type"] == "typing" {
                        let now = state.clock.now();
                        if typed_at.is_none_or(|at| now.duration_since(at) >= TYPING_EVERY) {
                            typed_at = Some(now);
                            tokio::spawn(visitor_typing(state.clone(), hub.clone(), visitor.address.clone()));
                        }
                        continue;
                    }
                    let allowed = frame["type"] != "message" || allowance.try_take(state.clock.now());
                    // Read here, before the frame goes on, so that messages keep their order.
                    let media = match &frame["media"] {
                        Value::String(id) if allowed && frame["type"] == "message" => {
                            visitor_upload(&state, &hub, &visitor, id).await.map(Some)
                        }
                        Value::Null | Value::String(_) => Ok(None),
                        _ => Err(("`media` must be the id of one of your uploads".to_owned(), false)),
                    };
                    on_frame(&hub, &visitor, frame, &stored_tx, allowed, media);
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
    media: Result<Option<MediaRef>, (String, bool)>,
) {
    match frame["type"].as_str() {
        Some("message") => {
            let client_id = frame["client_id"].as_str().unwrap_or_default().to_owned();
            if !allowed {
                let _ = answers.send(json!({"type": "error", "client_id": client_id,
                    "detail": "too many messages at once: wait a moment", "retry": true}));
                return;
            }
            let media = match media {
                Ok(media) => media,
                Err((detail, retry)) => {
                    let _ = answers.send(json!({"type": "error", "client_id": client_id,
                        "detail": detail, "retry": retry}));
                    return;
                }
            };
            let payload = frame["payload"].as_str().map(str::to_owned);
            match hub.receive(
                visitor,
                &client_id,
                frame["text"].as_str().unwrap_or_default(),
                payload,
                media,
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
                "detail": "unknown frame type; expected message, read or typing"}));
        }
    }
}

/// Tells the agents who may see the visitor's conversation that the visitor types. A
/// visitor who never wrote has no conversation yet: nobody is told.
async fn visitor_typing(state: AppState, hub: Arc<Hub>, address: String) {
    let tenant = &hub.identity().tenant_id;
    let conversation = match state
        .store
        .contact_by_identity(tenant, Some(ChannelKind::Webchat), &address)
        .await
    {
        Ok(Some(contact)) => {
            state
                .desk
                .conversation_of_contact(tenant, &contact.id)
                .await
        }
        Ok(None) => return,
        Err(e) => Err(e),
    };
    match conversation {
        Ok(Some(c)) => state.events.typing(
            tenant,
            &c.id,
            json!({"who": "visitor", "team": c.team, "assignee_id": c.assignee_id}),
        ),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot find a typing visitor's conversation"),
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
        let content = match &m.media {
            // The widget fetches it from /webchat/{channel}/media/{id} with the token.
            Some(media) => {
                let mut content = json!({"media": {"id": media.id, "mime_type": media.mime_type}});
                if !m.text.is_empty() {
                    content["text"] = json!(m.text);
                }
                content
            }
            None => json!({"text": m.text}),
        };
        entries.push((
            m.received_at,
            m.id.clone(),
            json!({"type": "message", "id": m.id, "direction": "in", "client_id": client_id,
                "content": content, "at": m.received_at}),
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
