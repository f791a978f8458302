//! The HTTP face of Relais: REST API under `/v1`, health, metrics, OpenAPI and its docs.

pub mod extract;
mod openapi;
pub mod problem;
mod routes;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use metrics_exporter_prometheus::PrometheusHandle;
use relais_core::clock::Clock;
use relais_core::contact::AddressRules;
use relais_engine::nlu::NluService;
use relais_store::Store;
use std::sync::Arc;
use std::time::Instant;

pub use openapi::openapi_json;

/// Settings the HTTP layer needs; the binary fills them from flags, env and file.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest JSON body accepted, in bytes.
    pub json_body_limit: usize,
    /// Largest CSV import body accepted, in bytes (streamed, never held in memory).
    pub import_body_limit: usize,
    /// Country assumed for national phone numbers.
    pub default_country: Option<phonenumber::country::Id>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            json_body_limit: 1024 * 1024,
            import_body_limit: 2 * 1024 * 1024 * 1024,
            default_country: None,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<HttpSettings>,
    pub metrics: Option<PrometheusHandle>,
    pub nlu: Arc<NluService>,
    /// Configured SMPP channels; `relais serve` hands their registry to the dispatcher.
    pub channels: relais_engine::smpp_channel::SmppChannels,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: HttpSettings,
        metrics: Option<PrometheusHandle>,
    ) -> Self {
        let nlu = Arc::new(NluService::new(store.clone()));
        let channels = relais_engine::smpp_channel::SmppChannels::new(store.clone(), clock.clone())
            .with_inbound(nlu.clone());
        AppState {
            store,
            clock,
            settings: Arc::new(settings),
            metrics,
            nlu,
            channels,
        }
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
        .nest("/v1", routes::v1())
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(middleware::from_fn(track_metrics))
        .with_state(state)
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

/// Serves until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
