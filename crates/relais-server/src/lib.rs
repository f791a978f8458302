//! The HTTP face of Relais: REST API under `/v1`, health, metrics, OpenAPI and its docs.

mod audit;
mod charts;
pub mod extract;
mod keys;
mod openapi;
mod pages;
pub mod problem;
mod routes;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use problem::ApiError;
use relais_core::clock::Clock;
use relais_core::contact::AddressRules;
use relais_engine::inbound::InboundPipeline;
use relais_engine::nlu::NluService;
use relais_store::Store;
use std::sync::Arc;
use std::time::Instant;

pub use openapi::openapi_json;
pub use routes::events::StreamSettings;

/// Settings the HTTP layer needs; the binary fills them from flags, env and file.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest JSON body accepted, in bytes.
    pub json_body_limit: usize,
    /// Largest CSV import body accepted, in bytes (streamed, never held in memory).
    pub import_body_limit: usize,
    /// Country assumed for national phone numbers.
    pub default_country: Option<phonenumber::country::Id>,
    /// Where tenants' webhooks may point (`webhook_allow_private`: public addresses only
    /// by default).
    pub webhook_destinations: relais_engine::webhooks::Destinations,
    /// Where this server is reached from the Internet (`public_url`): the base of tracked
    /// short links (`/l/{code}`) and of click-to-chat links. `None` leaves links as they
    /// are.
    pub public_url: Option<relais_core::tracked_link::PublicBase>,
    /// Where senders' domains are looked up (`RELAIS_DNS_RESOLVER`): the system's resolver
    /// by default.
    pub dns_resolver: relais_engine::dns::Resolver,
    /// Where the sentence encoder is installed (`<data-dir>/nlu/encoder`, by `relais nlu
    /// install-encoder`): intent models are two-stage when it loads there, lexical
    /// otherwise (one log line says which). `None`: lexical.
    pub encoder_dir: Option<std::path::PathBuf>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            json_body_limit: 1024 * 1024,
            import_body_limit: 2 * 1024 * 1024 * 1024,
            default_country: None,
            webhook_destinations: relais_engine::webhooks::Destinations::PublicOnly,
            public_url: None,
            dns_resolver: relais_engine::dns::Resolver::system(),
            encoder_dir: None,
        }
    }
}

/// What every handler reads, shared: axum clones the state for each request (and each
/// extractor that takes it), so a clone is one reference count, not one per part.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<SharedState>,
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.shared
    }
}

/// The parts of [`AppState`].
#[derive(Clone)]
pub struct SharedState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<HttpSettings>,
    pub metrics: Option<PrometheusHandle>,
    pub nlu: Arc<NluService>,
    /// Where every channel's inbound messages go (keywords, conversations, NLU).
    pub inbound: Arc<InboundPipeline>,
    /// Configured SMPP channels; `relais serve` hands their registry to the dispatcher.
    pub channels: relais_engine::channels::ConfiguredChannels,
    /// The accept path: sends and batches are stored in groups (one transaction for the
    /// requests that arrive together).
    pub acceptor: relais_engine::send::Acceptor,
    /// The live event stream (`GET /v1/events/stream`): publish what happens here.
    pub events: relais_engine::events::Events,
    /// Agents, their sessions, and conversations handed to humans.
    pub desk: relais_engine::agents::Desk,
    /// How the event stream treats its clients (send timeout, heartbeat).
    pub event_stream: StreamSettings,
    /// Campaigns of the API (create, start, pause…).
    pub campaigns: relais_engine::campaigns::Campaigns,
    /// The worker that sends campaigns; `relais serve` runs its loop, tests its steps.
    pub campaign_runner: relais_engine::campaigns::CampaignRunner,
    /// API keys found recently (see `keys.rs`).
    keys: Arc<keys::KeyCache>,
    /// Twilio credentials found recently (the Twilio-compatible API's Basic auth).
    twilio: relais_engine::twilio::accounts::Authenticator,
    /// Failed logins by source address and e-mail: repeated failures slow down the next
    /// attempts, as for SMPP binds.
    logins: Arc<std::sync::Mutex<relais_smpp::BindThrottle>>,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: HttpSettings,
        metrics: Option<PrometheusHandle>,
    ) -> Self {
        let nlu = Arc::new(match &settings.encoder_dir {
            Some(dir) => NluService::with_encoder(store.clone(), dir),
            None => NluService::new(store.clone()),
        });
        let rules = AddressRules {
            default_country: settings.default_country,
        };
        let channels =
            relais_engine::channels::ConfiguredChannels::new(store.clone(), clock.clone());
        let events = relais_engine::events::Events::new(store.clone(), clock.clone());
        let inbound = Arc::new(
            InboundPipeline::new(
                store.clone(),
                nlu.clone(),
                clock.clone(),
                rules,
                relais_engine::send::SANDBOX_KINDS.to_vec(),
                Some(channels.handoff().clone()),
            )
            .with_flow_destinations(settings.webhook_destinations)
            .with_events(events.clone()),
        );
        let channels = channels.with_inbound(inbound.clone());
        let acceptor = relais_engine::send::Acceptor::start_with_links(
            store.clone(),
            clock.clone(),
            rules,
            relais_engine::send::SANDBOX_KINDS.to_vec(),
            Some(channels.handoff().clone()),
            settings
                .public_url
                .clone()
                .map(relais_engine::tracked_links::LinkTracking::new),
        );
        let desk = inbound.desk().clone();
        let campaigns = relais_engine::campaigns::Campaigns::new(store.clone(), clock.clone());
        let campaign_runner = relais_engine::campaigns::CampaignRunner::new(
            store.clone(),
            clock.clone(),
            acceptor.clone(),
            format!("campaigns-{}", relais_core::ids::new_id()),
        );
        let shared = SharedState {
            campaigns,
            campaign_runner,
            desk,
            store,
            clock,
            settings: Arc::new(settings),
            metrics,
            nlu,
            inbound,
            channels,
            acceptor,
            events,
            event_stream: Default::default(),
            keys: Arc::default(),
            twilio: Default::default(),
            logins: Arc::new(std::sync::Mutex::new(relais_smpp::BindThrottle::new(
                relais_smpp::BindThrottleConfig::default(),
            ))),
        };
        AppState {
            shared: Arc::new(shared),
        }
    }

    /// The same state with another treatment of event stream clients.
    pub fn with_event_stream(mut self, stream: StreamSettings) -> Self {
        Arc::make_mut(&mut self.shared).event_stream = stream;
        self
    }

    /// The failed logins remembered by source and e-mail.
    pub(crate) fn login_attempts(&self) -> std::sync::MutexGuard<'_, relais_smpp::BindThrottle> {
        self.logins.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn address_rules(&self) -> AddressRules {
        AddressRules {
            default_country: self.settings.default_country,
        }
    }
}

pub fn router(state: AppState) -> Router {
    let json_limit = state.settings.json_body_limit;
    Router::new()
        .merge(routes::system::router())
        .merge(pages::router())
        .merge(routes::hooks::router())
        .merge(routes::unsubscribe::router())
        .merge(routes::webchat::router())
        .merge(routes::webchat_push::router())
        .merge(routes::links::router())
        .merge(routes::twilio::router())
        .nest("/v1", routes::v1())
        .fallback(no_route)
        // Before the layers: it applies to the routes' method routers as they are now.
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            audit::audit_trail,
        ))
        .layer(middleware::from_fn(problems_only))
        .layer(middleware::from_fn(track_metrics))
        .with_state(state)
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        format!("no route for {method} {}", uri.path()),
    )
}

/// The router adds the `Allow` header to this answer.
async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(format!(
        "{method} is not allowed on {}; the Allow header lists the methods that are",
        uri.path()
    ))
}

/// The largest error body read back to be carried into a problem's `detail`.
const BARE_ERROR_TEXT: usize = 4096;

/// Makes every error answer problem+json: what axum's own extractors and layers answer
/// (plain text or nothing) is rewritten, keeping its status and headers (`Allow`…).
/// Errors of Relais's own handlers are already problems and pass untouched, and so does
/// the JSON of `GET /healthz`.
async fn problems_only(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/problem+json")
        || content_type.starts_with("application/json")
    {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, BARE_ERROR_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let mut problem = problem::from_bare(status, &text).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().append(name.clone(), value.clone());
        }
    }
    problem
}

async fn track_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("relais_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("relais_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Serves until `shutdown` resolves, then lets requests in flight finish; event stream
/// clients are sent a close frame (going away) that tells them to reconnect.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let events = state.events.clone();
    let shutdown = async move {
        shutdown.await;
        events.shut_down();
    };
    // The peer's address reaches handlers that slow down password guessing by source.
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
