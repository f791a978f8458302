//! `GET /v1/events/stream`: a tenant's live events over a WebSocket, resumable after the
//! last event a client received (`?last_event_id=` or the `Last-Event-ID` header).
//!
//! Everything that can be refused is refused before the upgrade, as problem+json: a
//! missing or unknown key (401), a resume point or type filter that does not parse (400).
//! Once upgraded, the connection task reads the tenant's log at the client's pace
//! (`relais_engine::events::Subscription`): a client that stops reading holds up no one,
//! and after [`StreamSettings::send_timeout`] without taking a frame it is closed with a
//! close frame saying why; reconnecting with its last event id loses nothing.

use crate::AppState;
use crate::extract::{ApiQuery, Caller};
use crate::problem::{ApiError, ApiResult};
use axum::Router;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use relais_core::tenant::Scope;
use relais_engine::events::{Delivery, EventKind, Subscription};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::IntoParams;

pub fn router() -> Router<AppState> {
    Router::new().route("/events/stream", get(stream))
}

/// How a stream's connections treat their clients.
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    /// How long a frame may wait for the client to take it before the connection is
    /// closed: 10 s is far beyond a slow mobile link's hiccup, and short enough that a
    /// frozen tab does not keep a task and a socket buffer for long.
    pub send_timeout: Duration,
    /// How often a ping goes out: 20 s keeps the connection alive through proxies and
    /// load balancers that drop idle ones after 30 to 60 s.
    pub heartbeat: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            send_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(20),
        }
    }
}

/// The type of the frame that tells a client events were skipped.
pub const STREAM_RESET: &str = "stream.reset";

/// Close code of a client that took no frame within the send timeout (policy violation).
const CLOSE_TOO_SLOW: u16 = 1008;
/// Close code when the event log cannot be read (internal error).
const CLOSE_STORE_FAILED: u16 = 1011;
/// Close code when the server stops (going away).
const CLOSE_SHUTDOWN: u16 = 1001;

/// Incoming frames are not read for content (pongs, a client's close): none needs to be big.
const MAX_INCOMING: usize = 64 * 1024;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// The API key, for clients that cannot set the `Authorization` header (a browser's
    /// WebSocket); the header is preferred (a URL may end up in logs).
    pub access_token: Option<String>,
    /// Resume after this event (the `id` of the last event received); without it (or the
    /// `Last-Event-ID` header), the stream starts now.
    pub last_event_id: Option<String>,
    /// Only these event types, comma-separated (`message.received,typing`).
    pub types: Option<String>,
}

/// A frame as the client receives it (JSON text).
#[derive(Debug, Serialize)]
struct Frame<'a> {
    /// The event's number, to resume after; `null` for typing indicators (not stored).
    id: Option<i64>,
    #[serde(rename = "type")]
    kind: &'a str,
    conversation_id: Option<&'a str>,
    data: serde_json::Value,
    at: jiff::Timestamp,
}

/// The tenant's live events over a WebSocket (JSON text frames `{"id", "type",
/// "conversation_id", "data", "at"}`); see docs/events.md.
#[utoipa::path(get, path = "/v1/events/stream", tag = "events", params(StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (the query parameter wins)")),
    responses((status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, body = crate::problem::Problem), (status = 401, body = crate::problem::Problem),
        (status = 426, body = crate::problem::Problem)))]
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    from_header: Result<Caller, ApiError>,
    ApiQuery(q): ApiQuery<StreamQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let has_header = headers.contains_key(header::AUTHORIZATION);
    let caller = match (from_header, q.access_token.as_deref()) {
        (Ok(caller), _) => caller,
        (Err(e), _) if has_header => return Err(e),
        (Err(_), Some(token)) => Caller::from_token(&state, token.trim()).await?,
        (Err(_), None) => {
            return Err(ApiError::unauthorized(
                "send the API key as `Authorization: Bearer <api key>`, or as `?access_token=<api key>` where headers cannot be set",
            ));
        }
    };
    caller.require(Scope::Read)?;
    let after = resume_point(&q, &headers)?;
    let only = q.types.as_deref().map(parse_types).transpose()?;
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade-required",
            format!(
                "this route is a WebSocket: connect with ws:// or wss:// ({})",
                rejection.body_text()
            ),
        )
    })?;
    let mut subscription = state.events.subscribe(&caller.tenant_id, after).await?;
    if let Some(only) = only {
        subscription = subscription.only(only);
    }
    // An agent (not an admin) hears only of the conversations they may see.
    if let Some(agent) = &caller.agent
        && agent.role == relais_core::agent::Role::Agent
    {
        subscription = subscription.visible_to(relais_engine::events::Viewer {
            agent_id: agent.id.clone(),
            teams: agent.teams.clone(),
        });
    }
    let settings = state.event_stream;
    Ok(upgrade
        .max_message_size(MAX_INCOMING)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "event stream upgrade failed"))
        .on_upgrade(move |socket| connection(socket, subscription, settings))
        .into_response())
}

/// Where the client resumes: `?last_event_id=`, else the `Last-Event-ID` header.
fn resume_point(q: &StreamQuery, headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let parse = |given: &str| {
        given
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                format!(
                    "must be the `id` of an event this stream sent (a whole number, 0 or more), not `{}`",
                    given.chars().take(100).collect::<String>()
                )
            })
    };
    if let Some(given) = &q.last_event_id {
        return parse(given)
            .map(Some)
            .map_err(|e| ApiError::bad_parameter("last_event_id", e));
    }
    match headers.get("last-event-id") {
        None => Ok(None),
        Some(value) => {
            let given = value.to_str().map_err(|_| {
                ApiError::bad_request("header `Last-Event-ID` is not text".to_owned())
            })?;
            parse(given)
                .map(Some)
                .map_err(|e| ApiError::bad_request(format!("header `Last-Event-ID`: {e}")))
        }
    }
}

fn parse_types(list: &str) -> ApiResult<Vec<EventKind>> {
    list.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            EventKind::parse(t).ok_or_else(|| {
                let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                ApiError::bad_parameter(
                    "types",
                    format!(
                        "`{}` is not an event type; the types are {}",
                        t.chars().take(100).collect::<String>(),
                        known.join(", ")
                    ),
                )
            })
        })
        .collect()
}

/// One client's connection: frames as fast as the client takes them, a ping every
/// heartbeat, until the client leaves or stops taking frames.
async fn connection(
    mut socket: WebSocket,
    mut subscription: Subscription,
    settings: StreamSettings,
) {
    metrics::gauge!("relais_event_stream_clients").increment(1.0);
    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + settings.heartbeat,
        settings.heartbeat,
    );
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The last event number the client was sent, for the log.
    let mut sent = subscription.after();
    let mut closing = std::pin::pin!(subscription.closing());
    loop {
        let (outgoing, id) = tokio::select! {
            delivery = subscription.next() => match delivery {
                Ok(delivery) => frame(&delivery),
                Err(e) => {
                    tracing::warn!(error = %e, "an event stream cannot read the event log; closing it");
                    let reason = "the event log cannot be read now; reconnect with your last event id".to_owned();
                    close(&mut socket, CLOSE_STORE_FAILED, reason, settings.send_timeout).await;
                    break;
                }
            },
            _ = heartbeat.tick() => (Message::Ping(axum::body::Bytes::new()), None),
            _ = &mut closing => {
                let reason = "the server is stopping; reconnect with your last event id".to_owned();
                close(&mut socket, CLOSE_SHUTDOWN, reason, Duration::from_secs(1)).await;
                break;
            }
            incoming = socket.recv() => match incoming {
                // What a client says (pongs included) asks nothing of the stream.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => continue,
            },
        };
        match tokio::time::timeout(settings.send_timeout, socket.send(outgoing)).await {
            Ok(Ok(())) => {
                if let Some(id) = id {
                    sent = id;
                }
            }
            // The client is gone.
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::info!(
                    last_sent = sent,
                    "an event stream client took no frame within the send timeout; closing it"
                );
                // No number in the reason: the frame cut short may still reach the client
                // with the close frame, and its own last id is the one to resume after.
                let reason = format!(
                    "too slow: no frame taken in {} s; reconnect with your last event id",
                    settings.send_timeout.as_secs_f64()
                );
                // Its buffers are full: the close frame may not get through either.
                close(&mut socket, CLOSE_TOO_SLOW, reason, Duration::from_secs(1)).await;
                break;
            }
        }
    }
    metrics::gauge!("relais_event_stream_clients").decrement(1.0);
}

async fn close(socket: &mut WebSocket, code: u16, reason: String, within: Duration) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(within, socket.send(Message::Close(Some(frame)))).await;
}

/// The text frame of a delivery, and the event number it carries.
fn frame(delivery: &Delivery) -> (Message, Option<i64>) {
    let (frame, id) = match delivery {
        Delivery::Event(event) => (
            Frame {
                id: Some(event.seq),
                kind: &event.kind,
                conversation_id: event.conversation_id.as_deref(),
                data: event.data.clone(),
                at: event.at,
            },
            Some(event.seq),
        ),
        Delivery::Reset(reset) => (
            Frame {
                id: Some(reset.resumes_after),
                kind: STREAM_RESET,
                conversation_id: None,
                data: serde_json::json!({
                    "reason": reset.reason,
                    "missed_after": reset.missed_after,
                    "resumes_after": reset.resumes_after,
                    "detail": match reset.reason {
                        relais_engine::events::ResetReason::Pruned => "events after your last one were pruned (older than the retention); the stream goes on after `resumes_after`: reload the state you show from the REST API",
                        relais_engine::events::ResetReason::UnknownId => "your last event id is not in this stream; the stream goes on after `resumes_after`: reload the state you show from the REST API",
                    },
                }),
                at: reset.at,
            },
            Some(reset.resumes_after),
        ),
        Delivery::Typing(typing) => (
            Frame {
                id: None,
                kind: EventKind::Typing.as_str(),
                conversation_id: Some(&typing.conversation_id),
                data: typing.data.clone(),
                at: typing.at,
            },
            None,
        ),
    };
    let text = serde_json::to_string(&frame).unwrap_or_else(|e| {
        // Plain strings, numbers and JSON values: only a bug gets here.
        tracing::error!(error = %e, "an event frame could not be serialised");
        String::from("{}")
    });
    (Message::Text(text.into()), id)
}
