//! Outgoing webhooks, signed the Standard Webhooks way: headers `webhook-id`,
//! `webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">`, keyed with the secret `whsec_<base64 key>` given once at
//! registration. Deliveries are queued in the store in the transaction that changes a
//! message's status, retried with backoff, and logged.
//!
//! Each webhook has a circuit breaker (relais-core `circuit`): after 5 attempts in a row that
//! found its endpoint down, none of its deliveries is claimed until one probe, 30 s to 10
//! minutes later, gets an answer; so a dead endpoint costs a probe per period, not a retry
//! (two writes) per pending event. Deliveries still pending [`WEBHOOK_RETRY_WINDOW`] after
//! their event are failed by a sweep, at most once a minute. The same sweep prunes the
//! delivery log: finished deliveries (delivered or failed) older than the retention
//! ([`DEFAULT_LOG_RETENTION`] unless configured) are deleted, oldest first, in batches of
//! [`PRUNE_BATCH`], at most [`PRUNE_BATCHES_PER_SWEEP`] per sweep, so that a backlog after
//! an upgrade is worked off over a few minutes instead of holding the writer at once.
//!
//! A tenant chooses where Relais connects, so a webhook could reach the server's own
//! network (server-side request forgery): unless the operator allows it
//! ([`Destinations::Any`]), a webhook may only reach public addresses. That is checked when
//! the webhook is registered ([`check_url`]) and again on every connection ([`HttpPoster`]
//! resolves names itself and checks every redirect), since DNS answers change.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use jiff::{SignedDuration, Timestamp};
use rand::{Rng, RngCore};
use relais_core::circuit::{CircuitBreaker, Reachability};
use relais_core::clock::Clock;
use relais_core::retry::{ErrorClass, RetryDecision, RetryPolicy, WEBHOOK_RETRY_WINDOW};
use relais_store::{DeliveryOutcome, DueDelivery, EndpointNews, Store, StoreError};
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub const SECRET_PREFIX: &str = "whsec_";

/// The longest URL a webhook may have.
const MAX_URL_LEN: usize = 2048;

/// How often at most the worker fails the deliveries past [`WEBHOOK_RETRY_WINDOW`]: a
/// minute late is nothing against a day, and the sweep is one statement.
const SWEEP_EVERY: SignedDuration = SignedDuration::from_mins(1);

/// How long finished deliveries stay in the log by default (`webhook_log_days`).
pub const DEFAULT_LOG_RETENTION: SignedDuration = SignedDuration::from_hours(30 * 24);

/// Deliveries deleted per statement when pruning the log.
pub const PRUNE_BATCH: u32 = 5_000;

/// Pruning statements per sweep at most: 100,000 deliveries a minute.
pub const PRUNE_BATCHES_PER_SWEEP: u32 = 20;

/// How long a claimed delivery (and a probe's half-open circuit) is held: more than the
/// 10-second timeout of a post.
const LEASE_FOR: SignedDuration = SignedDuration::from_secs(60);

/// How long registering a webhook waits for DNS before accepting the name unresolved
/// (every delivery checks the name again anyway).
const CHECK_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(
        "`{0}` is not a usable webhook URL; it must start with https:// or http:// and name a host"
    )]
    BadUrl(String),
    #[error(
        "`{host}` is not a public address ({kind}); webhooks only reach public addresses unless the operator sets webhook_allow_private"
    )]
    NotPublic { host: String, kind: &'static str },
    #[error(
        "`{host}` resolves to an address that is not public ({kind}); webhooks only reach public addresses unless the operator sets webhook_allow_private"
    )]
    ResolvesToNotPublic { host: String, kind: &'static str },
    #[error("the webhook secret is not `whsec_` followed by base64")]
    BadSecret,
    #[error("the webhook secret cannot be read: {0}")]
    Sealed(#[from] crate::secrets::SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Queues an event (`{"type", "timestamp", "data"}`) for each of the tenant's webhooks,
/// once per `key` however often the step that tells it runs. A tenant with no webhook
/// costs one read (on a reader), no write.
pub async fn queue_event(
    store: &dyn Store,
    tenant: &str,
    event_type: &str,
    data: serde_json::Value,
    key: &str,
    at: Timestamp,
) -> Result<(), StoreError> {
    if store.webhooks(tenant).await?.is_empty() {
        return Ok(());
    }
    let event = serde_json::json!({
        "type": event_type,
        "timestamp": at,
        "data": data,
    });
    store
        .queue_webhook_event(tenant, key, event_type, &event.to_string(), at)
        .await?;
    Ok(())
}

/// A new signing secret: `whsec_` and 32 random bytes in base64.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The `webhook-signature` header value for one delivery.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Result<String, WebhookError> {
    let key = STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .map_err(|_| WebhookError::BadSecret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| WebhookError::BadSecret)?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Which addresses webhooks may reach: the operator's `webhook_allow_private` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Destinations {
    /// Public addresses only (the default).
    #[default]
    PublicOnly,
    /// Any address, loopback and private networks included: for receivers on the
    /// operator's own network, and for tests.
    Any,
}

impl Destinations {
    pub fn from_allow_private(allow: bool) -> Self {
        if allow {
            Destinations::Any
        } else {
            Destinations::PublicOnly
        }
    }
}

/// What [`HttpPoster::new`] allows; `relais serve` sets it from its configuration.
static PROCESS_ALLOWS_ANY: AtomicBool = AtomicBool::new(false);

/// Sets the destinations of the posters [`HttpPoster::new`] builds from now on, for the
/// whole process (the dispatcher builds its own poster).
pub fn set_process_destinations(destinations: Destinations) {
    PROCESS_ALLOWS_ANY.store(destinations == Destinations::Any, Ordering::Relaxed);
}

pub(crate) fn process_destinations() -> Destinations {
    Destinations::from_allow_private(PROCESS_ALLOWS_ANY.load(Ordering::Relaxed))
}

/// Why `ip` is not a public internet address (`"loopback"`, `"private"`…), or `None` when
/// it is. IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64) are judged by
/// that address.
pub fn not_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => not_public_v4(v4),
        IpAddr::V6(v6) => not_public_v6(v6),
    }
}

fn not_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (0, ..) => Some("unspecified"),
        (127, ..) => Some("loopback"),
        (10, ..) => Some("private"),
        (172, 16..=31, _) => Some("private"),
        (192, 168, _) => Some("private"),
        (169, 254, _) => Some("link-local"),
        (100, 64..=127, _) => Some("shared, carrier-grade NAT"),
        (224..=239, ..) => Some("multicast"),
        _ if ip.is_broadcast() => Some("broadcast"),
        (240..=255, ..) => Some("reserved"),
        // IETF protocol assignments, benchmarking, documentation.
        (192, 0, 0) | (198, 18..=19, _) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => {
            Some("reserved")
        }
        _ => None,
    }
}

fn not_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    let s = ip.segments();
    let embedded = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d).
        [0, 0, 0, 0, 0, 0xffff, ..] | [0, 0, 0, 0, 0, 0, ..] => not_public_v4(embedded),
        // NAT64 (64:ff9b::a.b.c.d) reaches the IPv4 address through the gateway.
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => not_public_v4(embedded),
        [x, ..] if x & 0xffc0 == 0xfe80 => Some("link-local"),
        [x, ..] if x & 0xffc0 == 0xfec0 => Some("private, site-local"),
        [x, ..] if x & 0xfe00 == 0xfc00 => Some("private, unique local"),
        [x, ..] if x & 0xff00 == 0xff00 => Some("multicast"),
        [0x2001, 0x0db8, ..] | [0x0100, 0, 0, 0, ..] => Some("reserved"),
        _ => None,
    }
}

/// A webhook URL that parsed: `http` or `https`, a host, no spaces, at most 2048 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    raw: String,
    url: reqwest::Url,
}

impl WebhookUrl {
    pub fn parse(raw: &str) -> Result<WebhookUrl, WebhookError> {
        let bad = || WebhookError::BadUrl(raw.to_owned());
        // The URL parser forgives `https:///host` and spaces; the check before it does not.
        let rest = raw
            .strip_prefix("https://")
            .or_else(|| raw.strip_prefix("http://"))
            .ok_or_else(bad)?;
        if rest.is_empty()
            || rest.starts_with('/')
            || raw.chars().any(char::is_whitespace)
            || raw.len() > MAX_URL_LEN
        {
            return Err(bad());
        }
        let url = reqwest::Url::parse(raw).map_err(|_| bad())?;
        if url.host().is_none() {
            return Err(bad());
        }
        Ok(WebhookUrl {
            raw: raw.to_owned(),
            url,
        })
    }

    /// The URL as it was given.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Why the host, when it is an IP address, is not public.
    fn literal_refusal(&self) -> Option<WebhookError> {
        literal_refusal(&self.url)
    }
}

/// The address a URL names as its host, when it names one rather than a name (the URL
/// parser has already turned forms such as `0x7f.1` or `2130706433` into `127.0.0.1`).
fn host_ip(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The refusal of a URL whose host is an IP address that is not public.
fn literal_refusal(url: &reqwest::Url) -> Option<WebhookError> {
    let ip = host_ip(url)?;
    not_public(ip).map(|kind| WebhookError::NotPublic {
        host: ip.to_string(),
        kind,
    })
}

/// Checks a URL before it is stored: its form, then, unless `destinations` is
/// [`Destinations::Any`], that its host is not, and does not resolve to, an address that is
/// not public. A name that does not resolve (yet) is accepted: each delivery checks again.
pub async fn check_url(raw: &str, destinations: Destinations) -> Result<WebhookUrl, WebhookError> {
    let url = WebhookUrl::parse(raw)?;
    if destinations == Destinations::Any {
        return Ok(url);
    }
    if let Some(refusal) = url.literal_refusal() {
        return Err(refusal);
    }
    if let (None, Some(host)) = (host_ip(&url.url), url.url.host_str()) {
        let port = url.url.port_or_known_default().unwrap_or(443);
        let lookup = tokio::net::lookup_host((host, port));
        if let Ok(Ok(addrs)) = tokio::time::timeout(CHECK_LOOKUP_TIMEOUT, lookup).await {
            // One address that is not public is enough to refuse: a name of a public
            // service has none, and a mix is how a rebinding attack starts.
            if let Some(kind) = addrs.map(|a| a.ip()).find_map(not_public) {
                return Err(WebhookError::ResolvesToNotPublic {
                    host: host.to_owned(),
                    kind,
                });
            }
        }
    }
    Ok(url)
}

/// Checks a URL's form, before it is stored.
pub fn validate_url(url: &str) -> Result<(), WebhookError> {
    WebhookUrl::parse(url).map(|_| ())
}

/// Sends one HTTP POST; the status code, or why there was none.
#[async_trait]
pub trait WebhookPoster: Send + Sync {
    async fn post(&self, url: &str, headers: &[(&str, String)], body: &str) -> Result<u16, String>;
}

/// Resolves names for [`HttpPoster`] and keeps only public addresses, so the client never
/// connects elsewhere whatever the DNS answers at the time.
struct PublicResolver;

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(resolve_public(name.as_str().to_owned()))
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn resolve_public(host: String) -> Result<reqwest::dns::Addrs, BoxError> {
    let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
    let public: Vec<SocketAddr> = all
        .iter()
        .copied()
        .filter(|a| not_public(a.ip()).is_none())
        .collect();
    if public.is_empty()
        && let Some(kind) = all.iter().find_map(|a| not_public(a.ip()))
    {
        return Err(Box::new(WebhookError::ResolvesToNotPublic { host, kind }));
    }
    Ok(Box::new(public.into_iter()))
}

/// The real poster: HTTP/1.1 or 2 with keep-alive, 10-second timeout, at most 10
/// redirects, reaching only the addresses its [`Destinations`] allow.
pub struct HttpPoster {
    client: reqwest::Client,
    destinations: Destinations,
}

impl HttpPoster {
    /// A poster with the destinations of the process ([`set_process_destinations`]).
    pub fn new() -> Result<Self, String> {
        Self::with_destinations(process_destinations())
    }

    pub fn with_destinations(destinations: Destinations) -> Result<Self, String> {
        Self::build(destinations, reqwest::Client::builder())
    }

    fn build(destinations: Destinations, builder: reqwest::ClientBuilder) -> Result<Self, String> {
        let builder = builder
            .timeout(std::time::Duration::from_secs(10))
            .user_agent("Relais-Webhooks/1");
        guarded_client(destinations, builder).map(|client| HttpPoster {
            client,
            destinations,
        })
    }
}

/// A client built from `builder` that reaches only the addresses `destinations` allows:
/// with [`Destinations::PublicOnly`], names are resolved by `PublicResolver` and every
/// redirect is checked (an address in a `Location` never reaches a resolver).
pub(crate) fn guarded_client(
    destinations: Destinations,
    builder: reqwest::ClientBuilder,
) -> Result<reqwest::Client, String> {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    let mut builder = builder;
    if destinations == Destinations::PublicOnly {
        builder = builder
            .dns_resolver(PublicResolver)
            .redirect(reqwest::redirect::Policy::custom(
                |attempt| match literal_refusal(attempt.url()) {
                    Some(refusal) => attempt.error(refusal),
                    None => reqwest::redirect::Policy::default().redirect(attempt),
                },
            ));
    }
    builder.build().map_err(|e| e.to_string())
}

/// Why `url` may not be called under `destinations` when its host is an address the
/// setting forbids (names are checked when resolved).
pub(crate) fn url_refusal(url: &str, destinations: Destinations) -> Option<String> {
    if destinations == Destinations::Any {
        return None;
    }
    match WebhookUrl::parse(url) {
        Ok(parsed) => parsed.literal_refusal().map(|r| r.to_string()),
        Err(e) => Some(e.to_string()),
    }
}

/// An error with its causes: reqwest's own text leaves out why the connection failed.
pub(crate) fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl HttpPoster {
    /// Sends one POST, checking the destination again first.
    async fn send(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &str,
    ) -> Result<reqwest::Response, String> {
        if self.destinations == Destinations::PublicOnly {
            // A stored URL passed `check_url`, but the operator may have tightened the
            // setting since.
            let parsed = WebhookUrl::parse(url).map_err(|e| e.to_string())?;
            if let Some(refusal) = parsed.literal_refusal() {
                return Err(refusal.to_string());
            }
        }
        // JSON unless the caller says otherwise (Twilio's callbacks are forms).
        let typed = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        let mut request = self.client.post(url).body(body.to_owned());
        if !typed {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        request.send().await.map_err(|e| describe(&e))
    }

    /// [`WebhookPoster::post`] that reads the answer too (up to `limit` bytes: a longer
    /// one is an error), for receivers whose answer says what to do (TwiML).
    pub async fn post_reading(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &str,
        limit: usize,
    ) -> Result<(u16, String), String> {
        let mut response = self.send(url, headers, body).await?;
        let status = response.status().as_u16();
        let mut answer = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
            if answer.len() + chunk.len() > limit {
                return Err(format!("the answer is longer than {limit} bytes"));
            }
            answer.extend_from_slice(&chunk);
        }
        Ok((status, String::from_utf8_lossy(&answer).into_owned()))
    }
}

#[async_trait]
impl WebhookPoster for HttpPoster {
    async fn post(&self, url: &str, headers: &[(&str, String)], body: &str) -> Result<u16, String> {
        self.send(url, headers, body)
            .await
            .map(|r| r.status().as_u16())
    }
}

/// What one [`WebhookWorker::run_once`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookRound {
    /// Deliveries attempted (one POST each).
    pub attempts: usize,
    /// Deliveries claimed and given back unattempted, because their webhook's circuit
    /// opened in the round.
    pub released: usize,
    /// Deliveries the sweep failed, pending past the retry window.
    pub expired: u64,
    /// Finished deliveries the sweep deleted from the log, past its retention.
    pub pruned: u64,
}

/// Delivers due webhook events.
pub struct WebhookWorker {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    poster: Arc<dyn WebhookPoster>,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
    lease_owner: String,
    rng: Mutex<rand::rngs::StdRng>,
    /// When the last expiry sweep ran.
    swept_at: Mutex<Option<Timestamp>>,
    /// How long finished deliveries stay in the log; `None`: forever.
    log_retention: Option<SignedDuration>,
}

impl WebhookWorker {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        poster: Arc<dyn WebhookPoster>,
        retry: RetryPolicy,
        lease_owner: String,
    ) -> Self {
        use rand::SeedableRng;
        WebhookWorker {
            store,
            clock,
            poster,
            retry,
            breaker: CircuitBreaker::WEBHOOKS,
            lease_owner,
            rng: Mutex::new(rand::rngs::StdRng::from_entropy()),
            swept_at: Mutex::new(None),
            log_retention: Some(DEFAULT_LOG_RETENTION),
        }
    }

    /// Keeps finished deliveries in the log for `retention` (`None`: forever).
    pub fn with_log_retention(mut self, retention: Option<SignedDuration>) -> Self {
        self.log_retention = retention;
        self
    }

    /// Fails what expired (at most once a minute), then delivers what is due: each
    /// webhook's deliveries in turn, the webhooks side by side, so that a slow endpoint
    /// does not hold up the others.
    pub async fn run_once(&self) -> Result<WebhookRound, StoreError> {
        let now = self.clock.now();
        let (expired, pruned) = self.sweep(now).await?;
        let mut round = WebhookRound {
            expired,
            pruned,
            ..WebhookRound::default()
        };
        let due = self
            .store
            .claim_webhook_deliveries(now, 100, &self.lease_owner, LEASE_FOR)
            .await?;
        let mut lanes: Vec<Vec<DueDelivery>> = Vec::new();
        for item in due {
            match lanes
                .iter_mut()
                .find(|lane| lane[0].delivery.webhook_id == item.delivery.webhook_id)
            {
                Some(lane) => lane.push(item),
                None => lanes.push(vec![item]),
            }
        }
        let done =
            futures::future::join_all(lanes.into_iter().map(|lane| self.deliver(lane))).await;
        for lane in done {
            let lane = lane?;
            round.attempts += lane.attempts;
            round.released += lane.released;
        }
        Ok(round)
    }

    /// Fails the deliveries still pending past the retry window and prunes the log, if the
    /// last sweep was a minute ago or more: how many of each.
    async fn sweep(&self, now: Timestamp) -> Result<(u64, u64), StoreError> {
        {
            let mut swept_at = self.swept_at.lock().unwrap_or_else(|p| p.into_inner());
            if swept_at.is_some_and(|at| now.duration_since(at) < SWEEP_EVERY) {
                return Ok((0, 0));
            }
            *swept_at = Some(now);
        }
        let created_by = now
            .checked_sub(WEBHOOK_RETRY_WINDOW)
            .unwrap_or(Timestamp::MIN);
        let error = format!(
            "expired: not delivered within {WEBHOOK_RETRY_WINDOW:#} of the event, the endpoint being unreachable"
        );
        let expired = self
            .store
            .expire_webhook_deliveries(created_by, &error, now)
            .await?;
        if expired > 0 {
            tracing::info!(expired, "webhook deliveries expired unsent");
        }
        Ok((expired, self.prune(now).await?))
    }

    /// Deletes finished deliveries older than the retention, a batch at a time.
    async fn prune(&self, now: Timestamp) -> Result<u64, StoreError> {
        let Some(retention) = self.log_retention else {
            return Ok(0);
        };
        let created_before = now.checked_sub(retention).unwrap_or(Timestamp::MIN);
        let mut pruned = 0;
        for _ in 0..PRUNE_BATCHES_PER_SWEEP {
            let deleted = self
                .store
                .prune_webhook_deliveries(created_before, PRUNE_BATCH)
                .await?;
            pruned += deleted;
            if deleted < u64::from(PRUNE_BATCH) {
                break;
            }
        }
        if pruned > 0 {
            tracing::info!(pruned, retention = %format!("{retention:#}"), "webhook delivery log pruned");
        }
        Ok(pruned)
    }

    /// Delivers one webhook's claimed deliveries in order, until its circuit opens: the
    /// rest are given back, to be claimed when it closes.
    async fn deliver(&self, lane: Vec<DueDelivery>) -> Result<WebhookRound, StoreError> {
        let mut round = WebhookRound::default();
        let mut lane = lane.into_iter();
        while let Some(item) = lane.next() {
            let (outcome, reachability) = self.attempt(&item).await;
            round.attempts += 1;
            let news = EndpointNews {
                reachability,
                breaker: self.breaker,
                jitter: self.rng.lock().unwrap_or_else(|p| p.into_inner()).r#gen(),
            };
            let circuit = self
                .store
                .finish_webhook_delivery(
                    &item.delivery,
                    &self.lease_owner,
                    &outcome,
                    &news,
                    self.clock.now(),
                )
                .await?;
            // `delivered`, `retry` (a failed attempt tried again later) or `failed`.
            let outcome_label = match &outcome {
                DeliveryOutcome::Delivered { .. } => "delivered",
                DeliveryOutcome::Retry { .. } => "retry",
                DeliveryOutcome::Failed { .. } => "failed",
            };
            metrics::counter!("relais_webhook_deliveries_total", "outcome" => outcome_label)
                .increment(1);
            match circuit {
                Some(circuit) if circuit.is_closed() => {}
                Some(circuit) => {
                    let rest: Vec<String> = lane.map(|i| i.delivery.id).collect();
                    if !rest.is_empty() {
                        self.store
                            .release_webhook_deliveries(&rest, &self.lease_owner)
                            .await?;
                        round.released = rest.len();
                    }
                    tracing::warn!(
                        webhook = %item.delivery.webhook_id,
                        failures = circuit.failures,
                        retry_at = ?circuit.retry_at,
                        "webhook endpoint unreachable; its deliveries wait for a probe"
                    );
                    break;
                }
                None => {
                    // The webhook was deleted, or this lane took so long that the leases
                    // ran out and another node has its deliveries.
                    tracing::warn!(
                        webhook = %item.delivery.webhook_id,
                        "lease of a webhook delivery lost; leaving the rest of its webhook's"
                    );
                    break;
                }
            }
        }
        Ok(round)
    }

    /// Posts one delivery; how it went, and what that says about the endpoint.
    async fn attempt(&self, item: &DueDelivery) -> (DeliveryOutcome, Reachability) {
        let timestamp = self.clock.now().as_second();
        let d = &item.delivery;
        // Stored sealed (crate::secrets); one that does not open fails its delivery.
        let signature = crate::secrets::current()
            .open(crate::secrets::WEBHOOK_SECRET, &item.secret)
            .map_err(WebhookError::from)
            .and_then(|secret| sign(&secret, &d.id, timestamp, &d.payload));
        let signature = match signature {
            Ok(signature) => signature,
            Err(e) => {
                let failed = DeliveryOutcome::Failed {
                    code: None,
                    error: e.to_string(),
                };
                return (failed, Reachability::Untold);
            }
        };
        let headers = [
            ("webhook-id", d.id.clone()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ];
        let result = self.poster.post(&item.url, &headers, &d.payload).await;
        let give_up_at = d
            .created_at
            .checked_add(WEBHOOK_RETRY_WINDOW)
            .unwrap_or(Timestamp::MAX);
        self.outcome(result, d.attempts + 1, give_up_at)
    }

    fn outcome(
        &self,
        result: Result<u16, String>,
        attempts: i64,
        give_up_at: Timestamp,
    ) -> (DeliveryOutcome, Reachability) {
        let (code, error, class) = match result {
            Ok(code) if (200..300).contains(&code) => {
                let delivered = DeliveryOutcome::Delivered {
                    code: i64::from(code),
                };
                return (delivered, Reachability::Answered);
            }
            // The receiver refuses this event for good (but 408 and 429 say "later").
            Ok(code) if (400..500).contains(&code) && code != 408 && code != 429 => (
                Some(i64::from(code)),
                format!("HTTP {code}"),
                ErrorClass::Permanent,
            ),
            Ok(code) => (
                Some(i64::from(code)),
                format!("HTTP {code}"),
                ErrorClass::Transient,
            ),
            Err(e) => (None, e, ErrorClass::Transient),
        };
        // A refusal of one event is an answer: the endpoint is up. Everything worth
        // retrying (no connection, a timeout, 5xx, 408, 429) says it is down, or asks to
        // be left alone, which the circuit does too.
        let reachability = match class {
            ErrorClass::Permanent => Reachability::Answered,
            ErrorClass::Transient | ErrorClass::NotSent => Reachability::Down,
        };
        let now = self.clock.now();
        let decision = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            self.retry.decide(
                class,
                u32::try_from(attempts).unwrap_or(u32::MAX),
                now,
                Some(give_up_at),
                &mut *rng,
            )
        };
        let outcome = match decision {
            RetryDecision::RetryAt(due_at) => DeliveryOutcome::Retry {
                due_at,
                code,
                error,
            },
            RetryDecision::GiveUp(_) => DeliveryOutcome::Failed { code, error },
        };
        (outcome, reachability)
    }
}

/// The instant a timestamp header names, for receivers that check freshness.
pub fn timestamp_of(header: &str) -> Option<Timestamp> {
    header
        .parse::<i64>()
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, id, 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(sign("whsec_not base64!", id, 1, body).is_err());
        let fresh = generate_secret();
        assert!(fresh.starts_with(SECRET_PREFIX));
        assert_ne!(fresh, generate_secret());
    }

    #[test]
    fn urls_are_checked() {
        assert!(validate_url("https://example.com/hooks").is_ok());
        assert!(validate_url("ftp://example.com").is_err());
        assert!(validate_url("https:///path").is_err());
        assert!(validate_url("https://exa mple.com").is_err());
        assert!(validate_url("http://[::1").is_err());
    }

    #[test]
    fn addresses_outside_the_public_internet_are_named() {
        let judged = |s: &str| not_public(s.parse().unwrap());
        for (ip, kind) in [
            ("0.0.0.0", "unspecified"),
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "shared, carrier-grade NAT"),
            ("100.127.255.255", "shared, carrier-grade NAT"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("fd12:3456::1", "private, unique local"),
            ("fc00::1", "private, unique local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
        ] {
            assert_eq!(judged(ip), Some(kind), "{ip}");
        }
        for ip in [
            "93.184.215.14",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(judged(ip), None, "{ip}");
        }
    }

    #[tokio::test]
    async fn a_webhook_url_must_name_a_public_host_unless_the_operator_allows_any() {
        for url in [
            "http://127.0.0.1:8080/hook",
            "http://[::1]/hook",
            "http://[::ffff:7f00:1]/hook",
            "http://0x7f000001/hook",
            "http://2130706433/hook",
            "http://127.1/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://localhost:9/hook",
        ] {
            let e = check_url(url, Destinations::PublicOnly).await.unwrap_err();
            assert!(
                e.to_string().contains("loopback") || e.to_string().contains("link-local"),
                "{url}: {e}"
            );
            assert!(check_url(url, Destinations::Any).await.is_ok(), "{url}");
        }
        let ok = check_url("https://93.184.215.14/hook", Destinations::PublicOnly)
            .await
            .unwrap();
        assert_eq!(ok.as_str(), "https://93.184.215.14/hook");
    }

    /// A one-request HTTP server answering `answer`; counts the connections it accepted.
    async fn http_server(answer: String) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn deliveries_never_connect_to_an_address_that_is_not_public() {
        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_owned();
        let (inside, reached) = http_server(ok).await;
        let poster = HttpPoster::with_destinations(Destinations::PublicOnly).unwrap();
        for url in [
            format!("http://{inside}/hook"),
            format!("http://localhost:{}/hook", inside.port()),
        ] {
            let e = poster.post(&url, &[], "{}").await.unwrap_err();
            assert!(e.contains("loopback"), "{url}: {e}");
        }
        // Public in the DNS, an inside address in the redirect.
        let redirect = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{inside}/hook\r\ncontent-length: 0\r\n\r\n"
        );
        let (front, _) = http_server(redirect).await;
        let poster = HttpPoster::build(
            Destinations::PublicOnly,
            reqwest::Client::builder().resolve("hooks.example.com", front),
        )
        .unwrap();
        let e = poster
            .post("http://hooks.example.com/hook", &[], "{}")
            .await
            .unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        assert_eq!(
            reached.load(Ordering::SeqCst),
            0,
            "nothing reached the inside"
        );
        let allowed = HttpPoster::with_destinations(Destinations::Any).unwrap();
        let code = allowed
            .post(&format!("http://{inside}/hook"), &[], "{}")
            .await
            .unwrap();
        assert_eq!((code, reached.load(Ordering::SeqCst)), (200, 1));
    }
}
