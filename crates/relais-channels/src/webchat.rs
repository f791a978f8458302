//! The web chat channel (`webchat`): visitors of a site talk to the tenant through the
//! widget (`/widget.js`) over a WebSocket that the server holds open.
//!
//! A configured channel owns a [`Hub`]: the visitors' live connections, by address. What
//! a visitor writes goes to the engine as an inbound event, confirmed to the visitor once
//! stored; what the tenant sends them is pushed on their connections, and reported
//! `delivered` when a connection took it. A visitor who is away finds it in their history
//! when they come back. A visitor is known by a secret token the widget keeps; their
//! address (`v…`) is a hash of it, so the token is never stored nor shown.

use crate::adapter::{ChannelAdapter, OutboundMessage, ProviderAck, SendError};
use crate::configured::{ChannelEvent, ChannelEvents, ChannelIdentity, ConfigError, Started};
use crate::event::{Confirm, MessageRef, NewInbound, StatusReport};
use async_trait::async_trait;
use jiff::SignedDuration;
use relais_core::channel::ChannelKind;
use relais_core::content::{Body, Button, Content};
use relais_core::fallback::{MAX_WITHIN, MIN_WITHIN};
use relais_core::media::MediaRef;
use relais_core::retry::{check_bounds, parse_duration};
use relais_core::status::MessageStatus;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use tokio::sync::{mpsc, oneshot};

/// The `kind` of a configured web chat channel.
pub const KIND: &str = "webchat";

/// The longest text a visitor may send, in characters.
pub const MAX_VISITOR_TEXT: usize = 4096;
/// Longest payload a visitor's message carries: a tapped button's, or a form's values.
pub const MAX_VISITOR_PAYLOAD_BYTES: usize = 4096;

/// Frames waiting for a slow connection at most; past it, what is pushed is left for the
/// visitor's history.
const CONNECTION_QUEUE: usize = 256;

/// How a tenant's widget looks and where it may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebchatConfig {
    /// The sites (`https://shop.example`) whose pages may open the widget.
    pub allowed_origins: Vec<String>,
    pub title: String,
    /// A CSS colour `#rrggbb`.
    pub color: String,
    pub greeting: Option<String>,
    /// `en` or `fr`: the widget's own words.
    pub language: String,
    /// How long a reply waits for the visitor's page to take it before it goes to their
    /// browser by Web Push instead (a visitor who opted in, on the tenant's `webpush`
    /// channel); `None` (`"off"`) never pushes.
    pub push_after: Option<SignedDuration>,
}

/// A visitor who left the page learns of a reply this long after it was written.
pub const DEFAULT_PUSH_AFTER: SignedDuration = SignedDuration::from_secs(60);

impl WebchatConfig {
    pub fn parse(config: &Value) -> Result<WebchatConfig, ConfigError> {
        let object = config
            .as_object()
            .ok_or_else(|| ConfigError::new("", "must be an object"))?;
        for key in object.keys() {
            if ![
                "allowed_origins",
                "title",
                "color",
                "greeting",
                "language",
                "push_after",
                "prefixes",
                "countries",
                "weight",
            ]
            .contains(&key.as_str())
            {
                return Err(ConfigError::new(
                    &format!("/{key}"),
                    "unknown key; expected allowed_origins, title, color, greeting, language or push_after",
                ));
            }
        }
        let origins = object
            .get("allowed_origins")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                ConfigError::new(
                    "/allowed_origins",
                    "required: the sites whose pages may open the widget, e.g. [\"https://shop.example\"]",
                )
            })?;
        if origins.is_empty() {
            return Err(ConfigError::new(
                "/allowed_origins",
                "must name at least one site",
            ));
        }
        let mut allowed_origins = Vec::with_capacity(origins.len());
        for (i, origin) in origins.iter().enumerate() {
            let origin = origin.as_str().unwrap_or_default();
            if !is_origin(origin) {
                return Err(ConfigError::new(
                    &format!("/allowed_origins/{i}"),
                    "must be an origin: a scheme http or https, a host and an optional port, with no path (`https://shop.example`)",
                ));
            }
            allowed_origins.push(origin.trim_end_matches('/').to_ascii_lowercase());
        }
        let text = |key: &str, default: &str, max: usize| -> Result<String, ConfigError> {
            match object.get(key) {
                None => Ok(default.to_owned()),
                Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= max => {
                    Ok(s.trim().to_owned())
                }
                Some(_) => Err(ConfigError::new(
                    &format!("/{key}"),
                    format!("must be a text of 1 to {max} characters"),
                )),
            }
        };
        let color = text("color", "#2257d6", 7)?;
        let hex_color = color.len() == 7
            && color.starts_with('#')
            && color[1..].chars().all(|c| c.is_ascii_hexdigit());
        if !hex_color {
            return Err(ConfigError::new("/color", "must be a colour `#rrggbb`"));
        }
        let language = text("language", "en", 2)?;
        if language != "en" && language != "fr" {
            return Err(ConfigError::new("/language", "must be `en` or `fr`"));
        }
        let greeting = match object.get("greeting") {
            None => None,
            Some(_) => Some(text("greeting", "", 500)?),
        };
        let push_after = match object.get("push_after") {
            None | Some(Value::Null) => Some(DEFAULT_PUSH_AFTER),
            Some(Value::String(off)) if off == "off" => None,
            Some(given) => {
                let raw = match given {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let bad = |why: String| {
                    ConfigError::new(
                        "/push_after",
                        format!(
                            "{why}; `push_after` is how long a reply waits for the visitor's page before it is pushed to their browser: \"1m\", \"30s\" (10 s to 7 days) or \"off\""
                        ),
                    )
                };
                let after = parse_duration("push_after", &raw).map_err(|e| bad(e.to_string()))?;
                check_bounds("push_after", after, MIN_WITHIN, MAX_WITHIN)
                    .map_err(|e| bad(e.to_string()))?;
                Some(after)
            }
        };
        Ok(WebchatConfig {
            allowed_origins,
            title: text("title", "Chat", 60)?,
            color,
            greeting,
            language,
            push_after,
        })
    }

    /// Whether a page of `origin` (the browser's `Origin` header) may open the widget.
    pub fn allows(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        self.allowed_origins.contains(&origin)
    }

    /// What the widget shows before anything is said.
    pub fn look(&self) -> Value {
        json!({"title": self.title, "color": self.color, "greeting": self.greeting,
            "language": self.language})
    }
}

fn is_origin(raw: &str) -> bool {
    let raw = raw.trim_end_matches('/');
    let Some((scheme, rest)) = raw.split_once("://") else {
        return false;
    };
    (scheme == "https" || scheme == "http")
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@', ' '])
}

/// The channels' hubs, for the server's WebSocket route to find by channel id.
fn hubs() -> &'static Mutex<HashMap<String, Weak<Hub>>> {
    static HUBS: OnceLock<Mutex<HashMap<String, Weak<Hub>>>> = OnceLock::new();
    HUBS.get_or_init(Default::default)
}

/// The hub of the running web chat channel `channel_id`.
pub fn hub(channel_id: &str) -> Option<Arc<Hub>> {
    hubs()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(channel_id)
        .and_then(Weak::upgrade)
}

/// One connection of a visitor.
struct Connection {
    id: u64,
    frames: mpsc::Sender<Value>,
}

/// A web chat channel's visitors and their live connections.
pub struct Hub {
    identity: ChannelIdentity,
    config: WebchatConfig,
    connections: Mutex<HashMap<String, Vec<Connection>>>,
    next_connection: AtomicU64,
    events: mpsc::UnboundedSender<ChannelEvent>,
}

/// A visitor as the widget identifies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visitor {
    /// The secret the widget keeps (in the browser's storage) and sends back.
    pub token: String,
    /// The visitor's address on the channel: a hash of the token.
    pub address: String,
}

impl Visitor {
    /// The visitor as a contact's identity.
    pub fn identity(&self) -> relais_core::contact::Identity {
        relais_core::contact::Identity {
            channel: ChannelKind::Webchat,
            address: self.address.clone(),
        }
    }
}

/// Why a visitor's message was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VisitorError {
    #[error("the message is empty")]
    Empty,
    #[error("the message is too long: {0} characters, at most {MAX_VISITOR_TEXT}")]
    TooLong(usize),
    #[error("`client_id` must be 1 to 64 letters, digits, `-` or `_`")]
    BadClientId,
    #[error("the channel stopped")]
    Stopped,
}

impl Hub {
    pub fn identity(&self) -> &ChannelIdentity {
        &self.identity
    }

    pub fn config(&self) -> &WebchatConfig {
        &self.config
    }

    /// The visitor `token` names, or a new visitor when it is missing or malformed.
    pub fn visitor(&self, token: Option<&str>) -> Visitor {
        token
            .and_then(|t| self.known_visitor(t))
            .unwrap_or_else(|| self.visitor_of(new_token()))
    }

    /// The visitor `token` names; `None` when it is malformed. For the routes beside the
    /// socket (uploads, media), where a visitor must prove who they are and a new one
    /// would own nothing.
    pub fn known_visitor(&self, token: &str) -> Option<Visitor> {
        let well_formed = token.len() == 43
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| self.visitor_of(token.to_owned()))
    }

    fn visitor_of(&self, token: String) -> Visitor {
        let digest = Sha256::digest(format!("{}:{token}", self.identity.id).as_bytes());
        let address = format!("v{}", &hex::encode(digest)[..31]);
        Visitor { token, address }
    }

    /// Opens a connection for `address`: what the tenant sends them arrives on the
    /// receiver until [`Hub::disconnect`].
    pub fn connect(&self, address: &str) -> (u64, mpsc::Receiver<Value>) {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(CONNECTION_QUEUE);
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(address.to_owned())
            .or_default()
            .push(Connection { id, frames: tx });
        (id, rx)
    }

    pub fn disconnect(&self, address: &str, id: u64) {
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = connections.get_mut(address) {
            list.retain(|c| c.id != id);
            if list.is_empty() {
                connections.remove(address);
            }
        }
    }

    /// Pushes `frame` to every connection of `address`; whether one took it.
    fn push(&self, address: &str, frame: &Value) -> bool {
        let connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let mut taken = false;
        for connection in connections.get(address).into_iter().flatten() {
            taken |= connection.frames.try_send(frame.clone()).is_ok();
        }
        taken
    }

    /// What a visitor wrote, handed to the engine: the receiver answers once it is stored
    /// (dropped unanswered when it could not be). `client_id` is the widget's id for the
    /// message: sent again after a lost connection, it is stored once. `media` is an
    /// upload the caller checked is the visitor's own.
    pub fn receive(
        &self,
        visitor: &Visitor,
        client_id: &str,
        text: &str,
        payload: Option<String>,
        media: Option<MediaRef>,
    ) -> Result<oneshot::Receiver<()>, VisitorError> {
        let text = text.trim();
        // An image says enough on its own.
        if text.is_empty() && media.is_none() {
            return Err(VisitorError::Empty);
        }
        let len = text.chars().count();
        if len > MAX_VISITOR_TEXT {
            return Err(VisitorError::TooLong(len));
        }
        if !is_client_id(client_id) {
            return Err(VisitorError::BadClientId);
        }
        let payload = payload.filter(|p| !p.is_empty() && p.len() <= MAX_VISITOR_PAYLOAD_BYTES);
        let (tx, rx) = oneshot::channel();
        let message = NewInbound {
            answers: Vec::new(),
            tenant_id: self.identity.tenant_id.clone(),
            channel: ChannelKind::Webchat,
            channel_id: Some(self.identity.id.clone()),
            from: visitor.address.clone(),
            to: self.identity.name.clone(),
            text: text.to_owned(),
            payload,
            media,
            provider_id: Some(provider_id(&visitor.address, client_id)),
        };
        let confirm = Confirm::new(move || {
            let _ = tx.send(());
        });
        self.events
            .send(ChannelEvent::Inbound(message, confirm))
            .map_err(|_| VisitorError::Stopped)?;
        Ok(rx)
    }

    /// Shows the visitor that someone of the tenant is typing.
    pub fn typing(&self, address: &str) {
        self.push(address, &json!({"type": "typing"}));
    }

    /// The visitor saw the tenant's message `message_id`.
    pub fn read(&self, message_id: &str) {
        self.report(message_id, MessageStatus::Read);
    }

    /// Tells the engine what became of the tenant's message `message_id`.
    fn report(&self, message_id: &str, status: MessageStatus) {
        let report = StatusReport {
            tenant_id: self.identity.tenant_id.clone(),
            channel_id: self.identity.id.clone(),
            message: MessageRef::Ours(message_id.to_owned()),
            status,
            at: None,
            detail: None,
            address_gone: false,
        };
        let _ = self
            .events
            .send(ChannelEvent::Status(report, Confirm::none()));
    }
}

/// The id an inbound message of `address` is stored under: the widget's id for it.
pub fn provider_id(address: &str, client_id: &str) -> String {
    format!("{address}:{client_id}")
}

/// The widget's id of a visitor's stored message, from its provider id.
pub fn client_id_of(provider_id: &str) -> Option<&str> {
    provider_id.split_once(':').map(|(_, id)| id)
}

fn is_client_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn new_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A message as the widget renders it: the API's content shape.
pub fn content_json(content: &Content) -> Value {
    let mut out = serde_json::Map::new();
    match &content.body {
        Body::Text(text) => {
            out.insert("text".into(), json!(text));
        }
        Body::Media(media) => {
            out.insert("media".into(), json!(media));
        }
        Body::Card(card) => {
            out.insert("card".into(), json!(card));
        }
        Body::Carousel(cards) => {
            out.insert("carousel".into(), json!(cards));
        }
        Body::Location(location) => {
            out.insert("location".into(), json!(location));
        }
        Body::Form(form) => {
            out.insert("form".into(), json!(form));
        }
        Body::Template(template) => {
            out.insert("template".into(), json!(template.name));
        }
    }
    if !content.buttons.is_empty() {
        let buttons: Vec<Value> = content.buttons.iter().map(button_json).collect();
        out.insert("buttons".into(), Value::Array(buttons));
    }
    if !content.quick_replies.is_empty() {
        let replies: Vec<Value> = content
            .quick_replies
            .iter()
            .map(|q| json!({"title": q.title, "payload": q.payload}))
            .collect();
        out.insert("quick_replies".into(), Value::Array(replies));
    }
    Value::Object(out)
}

fn button_json(button: &Button) -> Value {
    serde_json::to_value(button).unwrap_or(Value::Null)
}

/// The adapter the dispatcher sends through.
pub struct WebchatChannel {
    hub: Arc<Hub>,
}

#[async_trait]
impl ChannelAdapter for WebchatChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Webchat
    }

    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError> {
        let frame = json!({"type": "message", "id": message.message_id, "direction": "out",
            "content": content_json(&message.content), "at": message.now});
        if self.hub.push(&message.to, &frame) {
            self.hub
                .report(&message.message_id, MessageStatus::Delivered);
        }
        // A visitor who is away finds it in their history.
        Ok(ProviderAck {
            provider_id: message.message_id.clone(),
        })
    }

    fn close(&self) {
        let mut hubs = hubs().lock().unwrap_or_else(|p| p.into_inner());
        if hubs
            .get(&self.hub.identity.id)
            .and_then(Weak::upgrade)
            .is_some_and(|h| Arc::ptr_eq(&h, &self.hub))
        {
            hubs.remove(&self.hub.identity.id);
        }
    }
}

struct HubEvents {
    rx: mpsc::UnboundedReceiver<ChannelEvent>,
}

#[async_trait]
impl ChannelEvents for HubEvents {
    async fn next_burst(&mut self) -> Option<Vec<ChannelEvent>> {
        let first = self.rx.recv().await?;
        let mut burst = vec![first];
        while burst.len() < 256 {
            match self.rx.try_recv() {
                Ok(event) => burst.push(event),
                Err(_) => break,
            }
        }
        Some(burst)
    }
}

/// Starts a web chat channel: its hub, found by [`hub`] while the channel runs.
pub fn start(identity: ChannelIdentity, config: &Value) -> Result<Started, ConfigError> {
    let config = WebchatConfig::parse(config)?;
    let (events, rx) = mpsc::unbounded_channel();
    let hub = Arc::new(Hub {
        identity,
        config,
        connections: Mutex::new(HashMap::new()),
        next_connection: AtomicU64::new(1),
        events,
    });
    hubs()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(hub.identity.id.clone(), Arc::downgrade(&hub));
    Ok(Started {
        adapter: Arc::new(WebchatChannel { hub }),
        events: Some(Box::new(HubEvents { rx })),
        webhook: None,
        mailbox: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> ChannelIdentity {
        ChannelIdentity {
            id: "ch_web".into(),
            tenant_id: "t1".into(),
            name: "site".into(),
        }
    }

    #[test]
    fn a_config_names_its_sites_and_a_look_that_is_checked() {
        let config = WebchatConfig::parse(&json!({"allowed_origins": ["https://Shop.example/"],
            "title": "Boutique", "color": "#aa3300", "language": "fr", "greeting": "Bonjour !"}))
        .unwrap();
        assert!(config.allows("https://shop.example"));
        assert!(!config.allows("https://evil.example"));
        assert!(!config.allows("http://shop.example"));
        assert_eq!(config.push_after, Some(DEFAULT_PUSH_AFTER));
        let push_after = |value: Value| {
            WebchatConfig::parse(
                &json!({"allowed_origins": ["https://a.example"], "push_after": value}),
            )
            .map(|c| c.push_after)
        };
        assert_eq!(push_after(json!("off")).unwrap(), None);
        assert_eq!(
            push_after(json!("5m")).unwrap(),
            Some(SignedDuration::from_mins(5))
        );
        for bad in [json!("2s"), json!("soon"), json!("30d")] {
            let error = push_after(bad.clone()).unwrap_err();
            assert!(error.to_string().contains("push_after"), "{bad}: {error}");
        }
        for (bad, pointer) in [
            (json!({}), "/allowed_origins"),
            (json!({"allowed_origins": []}), "/allowed_origins"),
            (
                json!({"allowed_origins": ["shop.example"]}),
                "/allowed_origins/0",
            ),
            (
                json!({"allowed_origins": ["https://a.example/path"]}),
                "/allowed_origins/0",
            ),
            (
                json!({"allowed_origins": ["https://a.example"], "color": "red"}),
                "/color",
            ),
            (
                json!({"allowed_origins": ["https://a.example"], "language": "de"}),
                "/language",
            ),
            (
                json!({"allowed_origins": ["https://a.example"], "colour": "#000000"}),
                "/colour",
            ),
        ] {
            assert_eq!(
                WebchatConfig::parse(&bad).unwrap_err().pointer,
                pointer,
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn a_visitor_keeps_their_address_and_gets_what_is_sent_while_connected() {
        let mut started = start(
            identity(),
            &json!({"allowed_origins": ["https://shop.example"]}),
        )
        .unwrap();
        let hub = hub("ch_web").expect("the running channel's hub");
        let visitor = hub.visitor(None);
        assert_eq!(
            hub.visitor(Some(&visitor.token)),
            visitor,
            "the same token, the same visitor"
        );
        assert_ne!(hub.visitor(Some("forged")).address, visitor.address);
        assert_eq!(hub.known_visitor(&visitor.token), Some(visitor.clone()));
        assert_eq!(
            hub.known_visitor("forged"),
            None,
            "no new visitor from a bad token"
        );
        assert!(!visitor.address.contains(&visitor.token));

        let (id, mut frames) = hub.connect(&visitor.address);
        let message = OutboundMessage {
            purpose: relais_core::consent::Purpose::Transactional,
            message_id: "m1".into(),
            tenant_id: "t1".into(),
            channel: ChannelKind::Webchat,
            to: visitor.address.clone(),
            from: None,
            content: Content::text("Bonjour"),
            human_agent_since: None,
            attempt: 1,
            now: jiff::Timestamp::now(),
        };
        started.adapter.send(&message).await.unwrap();
        let frame = frames.recv().await.unwrap();
        assert_eq!(frame["id"], "m1");
        assert_eq!(frame["content"]["text"], "Bonjour");
        let mut events = started
            .events
            .take()
            .expect("a web chat tells its statuses");
        let statuses = |burst: Vec<ChannelEvent>| -> Vec<(MessageRef, MessageStatus)> {
            burst
                .into_iter()
                .filter_map(|event| match event {
                    ChannelEvent::Status(report, _) => Some((report.message, report.status)),
                    _ => None,
                })
                .collect()
        };
        let burst = events.next_burst().await.unwrap();
        assert_eq!(
            statuses(burst),
            [(MessageRef::Ours("m1".into()), MessageStatus::Delivered)]
        );

        hub.disconnect(&visitor.address, id);
        started.adapter.send(&message).await.unwrap();
        hub.read("m0");
        let burst = events.next_burst().await.unwrap();
        assert_eq!(
            statuses(burst),
            [(MessageRef::Ours("m0".into()), MessageStatus::Read)],
            "nobody connected: sent, not delivered"
        );
        assert_eq!(
            hub.receive(&visitor, "c1", "  ", None, None).unwrap_err(),
            VisitorError::Empty
        );
        assert_eq!(
            hub.receive(&visitor, "bad id!", "Bonjour", None, None)
                .unwrap_err(),
            VisitorError::BadClientId
        );
        started.adapter.close();
        assert!(super::hub("ch_web").is_none());
    }
}
