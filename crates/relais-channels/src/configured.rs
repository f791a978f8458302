//! Channels an operator configures (`POST /v1/channels` with a `kind` and a `config`):
//! which kinds exist, how a config is checked, and how a channel is started. The engine
//! runs every configured channel the same way through [`start`], whatever its kind.

use crate::adapter::ChannelAdapter;
use crate::event::{Confirm, ConsentReport, NewInbound, StatusReport};
use crate::messenger::{MessengerChannel, MessengerConfig, Platform};
use crate::rcs::{RcsChannel, RcsConfig};
use crate::telegram::{BotApi, TelegramChannel, TelegramConfig};
use crate::viber::{ViberApi, ViberChannel, ViberConfig};
use crate::whatsapp::{WhatsAppChannel, WhatsAppConfig};
use async_trait::async_trait;
use relais_core::channel::ChannelKind;
use relais_core::content::ChannelCapabilities;
use relais_core::route::RouteRules;
use std::sync::Arc;

/// The kinds of channel an operator can configure.
pub const KINDS: &[&str] = &[
    crate::smpp::KIND,
    WHATSAPP,
    MESSENGER,
    INSTAGRAM,
    RCS,
    TELEGRAM,
    crate::webchat::KIND,
    VIBER,
    EMAIL,
    crate::webpush::KIND,
    crate::fcm::KIND,
    crate::apns::KIND,
];

/// The `kind` of a configured e-mail channel (one SMTP account).
pub const EMAIL: &str = crate::email::KIND;

/// The `kind` of a configured RCS Business Messaging agent.
pub const RCS: &str = "rcs";

/// The `kind` of a configured Telegram bot.
pub const TELEGRAM: &str = crate::telegram::KIND;

/// The `kind` of a configured Viber bot.
pub const VIBER: &str = crate::viber::KIND;

/// The `kind` of a configured WhatsApp Cloud API channel.
pub const WHATSAPP: &str = "whatsapp";

/// The `kind` of a configured Messenger channel (one Facebook Page).
pub const MESSENGER: &str = "messenger";

/// The `kind` of a configured Instagram channel (one professional account).
pub const INSTAGRAM: &str = "instagram";

/// The Meta Send API platform of a configured kind, when it is one.
fn platform(kind: &str) -> Option<Platform> {
    match kind {
        MESSENGER => Some(Platform::Messenger),
        INSTAGRAM => Some(Platform::Instagram),
        _ => None,
    }
}

/// A bad `config` of a channel (or a kind that does not exist).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pointer}: {detail}")]
pub struct ConfigError {
    /// JSON pointer into the channel's `config`, e.g. `/password` (empty for the whole).
    pub pointer: String,
    pub detail: String,
}

impl ConfigError {
    pub fn new(pointer: &str, detail: impl Into<String>) -> Self {
        ConfigError {
            pointer: pointer.to_owned(),
            detail: detail.into(),
        }
    }
}

/// A configured channel as the engine knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelIdentity {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
}

/// What a channel's provider told it, for the engine to store.
#[derive(Debug)]
pub enum ChannelEvent {
    /// A customer wrote in.
    Inbound(NewInbound, Confirm),
    /// The provider reported on a message the channel sent.
    Status(StatusReport, Confirm),
    /// A person changed their consent on the channel.
    Consent(ConsentReport, Confirm),
}

/// The events of a running channel, read by the engine.
#[async_trait]
pub trait ChannelEvents: Send {
    /// The events that arrived together (at least one), in their order; `None` once the
    /// channel has stopped.
    async fn next_burst(&mut self) -> Option<Vec<ChannelEvent>>;
}

/// A started channel: the adapter the dispatcher sends through, and the events its
/// provider sends (for channels whose provider talks to us on the connection; a channel
/// told by webhooks has none here).
pub struct Started {
    pub adapter: Arc<dyn ChannelAdapter>,
    pub events: Option<Box<dyn ChannelEvents>>,
    /// How the provider's calls to `/hooks/{channel}` are read, for a channel told by
    /// webhooks.
    pub webhook: Option<WebhookReader>,
    /// The addresses a channel that takes mail receives at, and how a raw mail for them
    /// is read, for the SMTP listener.
    pub mailbox: Option<Mailbox>,
}

/// The addresses a channel receives mail at (in lower case), and how one raw mail that
/// arrived for them is read: the same reading as a relay's post to `/hooks/{channel}`.
#[derive(Clone)]
pub struct Mailbox {
    pub addresses: Vec<String>,
    pub read: MailReader,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("addresses", &self.addresses)
            .finish_non_exhaustive()
    }
}

/// Reads one raw mail that arrived for a channel.
pub type MailReader =
    Arc<dyn Fn(&[u8]) -> Result<Vec<ChannelEvent>, crate::email::MailError> + Send + Sync>;

/// Reads a provider's call to one channel's `/hooks/{channel}` address.
pub type WebhookReader =
    Arc<dyn Fn(&WebhookRequest<'_>) -> Result<WebhookAnswer, WebhookError> + Send + Sync>;

fn unknown_kind(kind: &str) -> ConfigError {
    ConfigError::new(
        "",
        format!("unknown channel kind `{kind}`; known: {}", KINDS.join(", ")),
    )
}

/// The kind of messages a configured channel carries (`smpp` carries `sms`).
pub fn kind_of(kind: &str) -> Option<ChannelKind> {
    match kind {
        crate::smpp::KIND => Some(ChannelKind::Sms),
        WHATSAPP => Some(ChannelKind::Whatsapp),
        RCS => Some(ChannelKind::Rcs),
        TELEGRAM => Some(ChannelKind::Telegram),
        crate::webchat::KIND => Some(ChannelKind::Webchat),
        VIBER => Some(ChannelKind::Viber),
        EMAIL => Some(ChannelKind::Email),
        crate::webpush::KIND => Some(ChannelKind::Webpush),
        crate::fcm::KIND => Some(ChannelKind::Fcm),
        crate::apns::KIND => Some(ChannelKind::Apns),
        other => platform(other).map(Platform::kind),
    }
}

/// What a configured channel can do: its kind's capabilities, narrowed by its config. A
/// Messenger or Instagram channel whose `human_agent_tag` is off gives human agents no
/// window past the 24 hours. `None` for a kind that does not exist.
pub fn capabilities(kind: &str, config: &serde_json::Value) -> Option<ChannelCapabilities> {
    let mut capabilities = *ChannelCapabilities::for_kind(kind_of(kind)?);
    if platform(kind).is_some() && !crate::messenger::config::human_agent_tag_of(config) {
        capabilities.human_agent_window_hours = None;
    }
    if kind == crate::webpush::KIND {
        // Read without the secrets, which this config may hold sealed.
        let reports = config
            .get("public_url")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|url| !url.trim().is_empty());
        capabilities = crate::webpush::capabilities(reports);
    }
    Some(capabilities)
}

/// Where a reply on a channel goes when the customer does not take it in time: the
/// channel kind to fall back to (on the customer's own address there) and the wait. The
/// web chat's visitor who left the page gets it by Web Push (its `push_after`); other
/// channels have none.
pub fn reply_fallback(
    kind: &str,
    config: &serde_json::Value,
) -> Option<(ChannelKind, jiff::SignedDuration)> {
    match kind {
        crate::webchat::KIND => crate::webchat::WebchatConfig::parse(config)
            .ok()?
            .push_after
            .map(|after| (ChannelKind::Webpush, after)),
        _ => None,
    }
}

/// Checks a channel's config without starting it: its kind's keys, then the routing keys
/// every kind shares ([`routing_rules`]).
pub fn check_config(kind: &str, config: &serde_json::Value) -> Result<(), ConfigError> {
    check_kind_config(kind, config)?;
    routing_rules(config).map(|_| ())
}

/// Which destinations a configured channel takes among the tenant's channels of its kind,
/// and its weight: the `prefixes`, `countries` and `weight` keys of its config, read the
/// same way whatever its kind (docs/channels.md, "Routing between accounts").
pub fn routing_rules(config: &serde_json::Value) -> Result<RouteRules, ConfigError> {
    crate::config_keys::routing(config)
}

fn check_kind_config(kind: &str, config: &serde_json::Value) -> Result<(), ConfigError> {
    match kind {
        crate::smpp::KIND => crate::smpp::parse_config(config).map(|_| ()),
        WHATSAPP => WhatsAppConfig::parse(config).map(|_| ()),
        RCS => RcsConfig::parse(config).map(|_| ()),
        TELEGRAM => TelegramConfig::parse(config).map(|_| ()),
        crate::webchat::KIND => crate::webchat::WebchatConfig::parse(config).map(|_| ()),
        VIBER => ViberConfig::parse(config).map(|_| ()),
        EMAIL => crate::email::EmailConfig::parse(config).map(|_| ()),
        crate::webpush::KIND => crate::webpush::WebpushConfig::parse(config).map(|_| ()),
        crate::fcm::KIND => crate::fcm::FcmConfig::parse(config).map(|_| ()),
        crate::apns::KIND => crate::apns::ApnsConfig::parse(config).map(|_| ()),
        other => match platform(other) {
            Some(platform) => MessengerConfig::parse(platform, config).map(|_| ()),
            None => Err(unknown_kind(other)),
        },
    }
}

/// Starts a channel from its config (its secrets already opened); it connects in the
/// background. The config is read once, here: a webhook channel's calls are then read
/// with it (an RCS key is parsed once, not on every call).
pub fn start(
    kind: &str,
    identity: ChannelIdentity,
    config: &serde_json::Value,
) -> Result<Started, ConfigError> {
    let client_error = |e: crate::whatsapp::ClientError| ConfigError::new("", e.to_string());
    match kind {
        crate::smpp::KIND => crate::smpp::start(identity, config),
        crate::webchat::KIND => crate::webchat::start(identity, config),
        crate::webpush::KIND => {
            let config = crate::webpush::WebpushConfig::parse(config)?;
            let channel = crate::webpush::WebpushChannel::new(config.clone(), &identity.id)
                .map_err(client_error)?;
            // The browsers' reports of shown and clicked notifications.
            Ok(told_by_webhooks(Arc::new(channel), move |request| {
                crate::webpush::receive_report(&identity, config.report_key(), request)
            }))
        }
        WHATSAPP => {
            let config = WhatsAppConfig::parse(config)?;
            let channel = WhatsAppChannel::new(config.clone()).map_err(client_error)?;
            Ok(told_by_webhooks(Arc::new(channel), move |request| {
                crate::whatsapp::receive_webhook(&identity, &config, request)
            }))
        }
        RCS => {
            let config = RcsConfig::parse(config)?;
            let channel = RcsChannel::new(config.clone()).map_err(client_error)?;
            Ok(told_by_webhooks(Arc::new(channel), move |request| {
                crate::rcs::receive_webhook(&identity, &config, request)
            }))
        }
        TELEGRAM => {
            let api = Arc::new(BotApi::new(TelegramConfig::parse(config)?).map_err(client_error)?);
            crate::telegram::register_webhook(api.clone(), &identity.id);
            let channel = TelegramChannel::new(api.clone());
            Ok(told_by_webhooks(Arc::new(channel), move |request| {
                crate::telegram::receive_webhook(&identity, &api, request)
            }))
        }
        VIBER => {
            let api = Arc::new(ViberApi::new(ViberConfig::parse(config)?).map_err(client_error)?);
            crate::viber::register_webhook(api.clone(), &identity.id);
            let channel = ViberChannel::new(api.clone());
            Ok(told_by_webhooks(Arc::new(channel), move |request| {
                crate::viber::receive_webhook(&identity, &api, request)
            }))
        }
        EMAIL => {
            let config = crate::email::EmailConfig::parse(config)?;
            let channel = crate::email::EmailChannel::new(config.clone())
                .map_err(|e| ConfigError::new("/tls", e.to_string()))?;
            let mailbox = Mailbox {
                addresses: vec![config.from().to_ascii_lowercase()],
                read: {
                    let (identity, config) = (identity.clone(), config.clone());
                    Arc::new(move |raw: &[u8]| {
                        crate::email::events_of_mail(&identity, &config, raw)
                    })
                },
            };
            let mut started = told_by_webhooks(Arc::new(channel), move |request| {
                crate::email::receive_webhook(&identity, &config, request)
            });
            started.mailbox = Some(mailbox);
            Ok(started)
        }
        crate::fcm::KIND => {
            let channel = crate::fcm::FcmChannel::new(crate::fcm::FcmConfig::parse(config)?)
                .map_err(client_error)?;
            Ok(outbound_only(Arc::new(channel)))
        }
        crate::apns::KIND => {
            let channel = crate::apns::ApnsChannel::new(crate::apns::ApnsConfig::parse(config)?)
                .map_err(client_error)?;
            Ok(outbound_only(Arc::new(channel)))
        }
        other => {
            let platform = platform(other).ok_or_else(|| unknown_kind(other))?;
            let config = MessengerConfig::parse(platform, config)?;
            let channel = MessengerChannel::new(config.clone()).map_err(client_error)?;
            Ok(told_by_webhooks(Arc::new(channel), move |request| {
                crate::messenger::receive_webhook(&identity, &config, request)
            }))
        }
    }
}

/// A channel that only sends (push): no events, no webhook.
fn outbound_only(adapter: Arc<dyn ChannelAdapter>) -> Started {
    Started {
        adapter,
        events: None,
        webhook: None,
        mailbox: None,
    }
}

fn told_by_webhooks(
    adapter: Arc<dyn ChannelAdapter>,
    read: impl Fn(&WebhookRequest<'_>) -> Result<WebhookAnswer, WebhookError> + Send + Sync + 'static,
) -> Started {
    Started {
        adapter,
        events: None,
        webhook: Some(Arc::new(read)),
        mailbox: None,
    }
}

/// A template of a channel's provider account, as the provider reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedTemplate {
    pub name: String,
    /// The provider's locale code (`fr`, `en_US`).
    pub language: String,
    /// `MARKETING`, `UTILITY`, `AUTHENTICATION`…
    pub category: String,
    /// `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`, `DISABLED`…
    pub status: String,
    pub components: serde_json::Value,
}

/// Why a channel's provider templates could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TemplateFetchError {
    #[error("`{0}` channels have no provider templates to synchronise")]
    NoTemplates(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Sync(#[from] crate::whatsapp::TemplateSyncError),
}

/// Every template of a configured channel's provider account (its config's secrets
/// already opened), for the channel kinds whose provider keeps templates.
pub async fn fetch_provider_templates(
    kind: &str,
    config: &serde_json::Value,
) -> Result<Vec<FetchedTemplate>, TemplateFetchError> {
    if kind != WHATSAPP {
        return Err(TemplateFetchError::NoTemplates(kind.to_owned()));
    }
    let config = WhatsAppConfig::parse(config)?;
    let client = crate::whatsapp::http_client().map_err(|e| ConfigError::new("", e.to_string()))?;
    let templates = crate::whatsapp::fetch_templates(&client, &config).await?;
    Ok(templates
        .into_iter()
        .map(|t| FetchedTemplate {
            category: t.category.as_str().to_owned(),
            status: t.status.as_str().to_owned(),
            name: t.name,
            language: t.language,
            components: t.components,
        })
        .collect())
}

/// The address from outside of a channel's `/hooks/{channel}`, on this server's
/// `public_url`: where Telegram and Viber post updates and browsers post Web Push reports.
pub fn hook_address(public_url: &str, channel_id: &str) -> String {
    format!("{public_url}/hooks/{channel_id}")
}

/// Tells a provider, in the background, to post to the channel's `/hooks/` address on
/// `public_url` (`register` makes the call: Telegram's `setWebhook`, Viber's
/// `set_webhook`); nothing without a `public_url` or a runtime. A failure is logged with
/// `consequence`, and the channel works anyway once the operator registers by hand.
pub(crate) fn register_hook_in_background<F, E>(
    provider: &'static str,
    public_url: Option<&str>,
    channel_id: &str,
    consequence: &'static str,
    register: impl FnOnce(String) -> F + Send + 'static,
) where
    F: std::future::Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    let Some(public_url) = public_url else {
        return;
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let url = hook_address(public_url, channel_id);
    let channel = channel_id.to_owned();
    runtime.spawn(async move {
        match register(url.clone()).await {
            Ok(()) => tracing::info!(channel = %channel, url = %url, "{provider} webhook set"),
            Err(error) => {
                tracing::warn!(channel = %channel, url = %url, error = %error, "{provider} refused the webhook; {consequence}")
            }
        }
    });
}

/// Whether a channel of this kind is told by its provider through `/hooks/{channel}`.
pub fn takes_webhooks(kind: &str) -> bool {
    kind == WHATSAPP
        || kind == RCS
        || kind == TELEGRAM
        || kind == VIBER
        || kind == EMAIL
        || kind == crate::webpush::KIND
        || platform(kind).is_some()
}

/// A provider's call to a channel's `/hooks/{channel}` address.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// `GET` (a subscription handshake) rather than `POST` (a delivery).
    pub is_get: bool,
    /// The query's pairs, decoded.
    pub query: &'a [(String, String)],
    /// The headers, names in lower case.
    pub headers: &'a [(String, String)],
    /// The body as it arrived: signatures are over these bytes.
    pub body: &'a [u8],
}

impl WebhookRequest<'_> {
    /// A header's value (`name` in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// What to do with a provider's call.
#[derive(Debug)]
pub enum WebhookAnswer {
    /// Answer 200 with this text (a subscription handshake's challenge).
    Echo(String),
    /// Store these events, then answer 200 (before that, the provider delivers again).
    Deliver(Vec<ChannelEvent>),
}

/// Why a provider's call is refused; nothing of it is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Unsigned, wrongly signed, or a handshake with the wrong token.
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Malformed(String),
    /// About an account (a phone number id) that is not this channel's.
    #[error("{0}")]
    OtherAccount(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_configured_channels_capabilities_give_agents_7_days_unless_the_tag_is_off() {
        let agent_window = |kind: &str, config: serde_json::Value| {
            capabilities(kind, &config).map(|caps| caps.human_agent_window_hours)
        };
        assert_eq!(agent_window(MESSENGER, json!({})), Some(Some(168)));
        assert_eq!(
            agent_window(INSTAGRAM, json!({"human_agent_tag": true})),
            Some(Some(168))
        );
        assert_eq!(
            agent_window(MESSENGER, json!({"human_agent_tag": false})),
            Some(None)
        );
        assert_eq!(agent_window(WHATSAPP, json!({})), Some(None));
        assert_eq!(agent_window("carrier-pigeon", json!({})), None);
    }

    #[test]
    fn an_unknown_kind_is_refused_with_the_known_ones() {
        let err = check_config("carrier-pigeon", &json!({})).unwrap_err();
        assert!(err.detail.contains("smpp"), "{err}");
        assert_eq!(kind_of("carrier-pigeon"), None);
        assert_eq!(kind_of("smpp"), Some(ChannelKind::Sms));
    }

    #[test]
    fn every_kind_takes_the_routing_keys_and_checks_them() {
        let whatsapp = json!({"phone_number_id": "106540352242922", "access_token": "t",
            "app_secret": "s", "verify_token": "v", "prefixes": ["+336"], "countries": ["FR"],
            "weight": 2});
        assert_eq!(check_config(WHATSAPP, &whatsapp), Ok(()));
        let smpp = json!({"host": "h", "system_id": "a", "password": "p", "weight": 5});
        assert_eq!(check_config(crate::smpp::KIND, &smpp), Ok(()));
        let mut bad = whatsapp.clone();
        bad["weight"] = json!(0);
        assert_eq!(check_config(WHATSAPP, &bad).unwrap_err().pointer, "/weight");
        let mut bad = smpp.clone();
        bad["countries"] = json!(["FR", "Gaule"]);
        assert_eq!(
            check_config(crate::smpp::KIND, &bad).unwrap_err().pointer,
            "/countries/1"
        );
        let mut typo = whatsapp;
        typo["weigth"] = json!(2);
        let err = check_config(WHATSAPP, &typo).unwrap_err();
        assert_eq!(err.pointer, "/weigth");
        assert!(err.detail.contains("weight"), "{err}");
        let rules = routing_rules(&smpp).unwrap();
        assert_eq!(rules.weight(), 5);
    }
}
